"""Typed HTTP parameters: the request, path and query parameters, and a JSON body model.

Every request goes over a real socket (``spikard.testing``); 422 bodies are checked field by
field, as a client reads them.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import sys
import uuid
from typing import Annotated, Any, Literal, TypedDict

import msgspec
import pydantic
import pytest

from spikard import Request, RequestValidationError, RoutingError, Spikard

pytestmark = pytest.mark.anyio


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class ItemStruct(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


class ItemModel(pydantic.BaseModel):
    name: str
    price: float = pydantic.Field(gt=0)


@dataclasses.dataclass
class ItemData:
    name: str
    count: int


class ItemDict(TypedDict):
    name: str
    count: int


@dataclasses.dataclass
class Fresh:
    """Codecs are built once per type: the missing-library tests use types no other test has."""

    name: str


@dataclasses.dataclass
class Counted:
    name: str
    count: int


def build_app() -> Spikard:
    app = Spikard()

    @app.get("/search")
    def search(
        q: str,
        limit: int = 10,
        ratio: float = 0.5,
        exact: bool = False,
        tags: list[str] | None = None,
        ids: list[int] | None = None,
        color: Color = Color.RED,
        mode: Literal["fast", "slow"] = "fast",
        since: datetime.date | None = None,
    ) -> dict[str, Any]:
        return {
            "q": q,
            "limit": limit,
            "ratio": ratio,
            "exact": exact,
            "tags": tags,
            "ids": ids,
            "color": color.value,
            "mode": mode,
            "since": since.isoformat() if since else None,
        }

    @app.get("/items/{item_id}")
    def item(item_id: int, request: Request, verbose: bool = False) -> dict[str, Any]:
        return {"id": item_id, "path": request.path, "verbose": verbose}

    @app.get("/things/{key:int}")
    def thing(key: int, key_type: str = "") -> dict[str, Any]:
        return {"key": key, "type": type(key).__name__}

    @app.get("/uuid/{ident}")
    def by_uuid(ident: uuid.UUID) -> str:
        return str(ident.version)

    @app.get("/legacy/{name}")
    def legacy(request, name):  # type: ignore[no-untyped-def]  # today's rule, kept: unannotated first = the Request
        return f"{request.method} {name}"

    @app.post("/struct")
    def create_struct(item: ItemStruct, dry_run: bool = False) -> ItemStruct:
        return ItemStruct(item.name.upper(), item.price * 2, item.tags) if not dry_run else item

    @app.post("/model")
    async def create_model(item: ItemModel) -> ItemModel:
        return item

    @app.post("/data")
    def create_data(item: ItemData) -> ItemData:
        return dataclasses.replace(item, count=item.count + 1)

    @app.post("/dict")
    def create_dict(item: ItemDict) -> dict[str, Any]:
        return {"kind": type(item).__name__, **item}

    @app.get("/annotated")
    def annotated(n: Annotated[int, "a note"] = 3) -> int:
        return n  # an int is not a route return type: 500

    return app


APP = build_app()


async def test_query_parameters_are_converted_by_annotation() -> None:
    async with APP.test_server() as server:
        reply = await server.request(
            "GET",
            "/search?q=shoes&limit=5&ratio=0.25&exact=yes&tags=a&tags=b&ids=1&ids=2"
            "&color=blue&mode=slow&since=2026-01-02",
        )
        assert reply.status == 200, reply.text
        assert reply.json() == {
            "q": "shoes",
            "limit": 5,
            "ratio": 0.25,
            "exact": True,
            "tags": ["a", "b"],
            "ids": [1, 2],
            "color": "blue",
            "mode": "slow",
            "since": "2026-01-02",
        }
        defaults = await server.request("GET", "/search?q=x")
        assert defaults.json() == {
            "q": "x",
            "limit": 10,
            "ratio": 0.5,
            "exact": False,
            "tags": None,
            "ids": None,
            "color": "red",
            "mode": "fast",
            "since": None,
        }


async def test_bad_query_values_answer_422_naming_every_field() -> None:
    async with APP.test_server() as server:
        reply = await server.request(
            "GET", "/search?limit=many&exact=maybe&ids=1&ids=x&color=green&mode=medium"
        )
        assert reply.status == 422
        assert reply.headers["content-type"].startswith("application/json")
        detail = reply.json()["detail"]
        by_loc = {tuple(error["loc"]): error for error in detail}
        assert set(by_loc) == {
            ("query", "q"),
            ("query", "limit"),
            ("query", "exact"),
            ("query", "ids", 1),
            ("query", "color"),
            ("query", "mode"),
        }
        assert by_loc[("query", "q")]["type"] == "missing"
        assert by_loc[("query", "limit")]["type"] == "int_parsing"
        assert by_loc[("query", "exact")]["type"] == "bool_parsing"
        assert by_loc[("query", "color")]["type"] == "enum"
        assert "'red'" in by_loc[("query", "color")]["msg"]
        assert by_loc[("query", "mode")]["type"] == "literal_error"
        assert all(isinstance(error["msg"], str) and error["msg"] for error in detail)


async def test_path_parameters_convert_by_annotation_or_placeholder() -> None:
    async with APP.test_server() as server:
        reply = await server.request("GET", "/items/42?verbose=1")
        assert reply.json() == {"id": 42, "path": "/items/42", "verbose": True}
        bad = await server.request("GET", "/items/forty-two")
        assert bad.status == 422
        assert bad.json()["detail"][0]["loc"] == ["path", "item_id"]
        assert (await server.request("GET", "/things/7")).json() == {"key": 7, "type": "int"}
        assert (await server.request("GET", "/things/x")).status == 404  # the placeholder's type
        ident = uuid.uuid4()
        assert (await server.request("GET", f"/uuid/{ident}")).text == "4"
        assert (await server.request("GET", "/uuid/nope")).status == 422


async def test_an_unannotated_first_parameter_still_gets_the_request() -> None:
    async with APP.test_server() as server:
        assert (await server.request("GET", "/legacy/ann")).text == "GET ann"


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/struct", {"name": "hat", "price": 2.5}, {"name": "HAT", "price": 5.0, "tags": []}),
        ("/model", {"name": "hat", "price": 2.5}, {"name": "hat", "price": 2.5}),
        ("/data", {"name": "hat", "count": 1}, {"name": "hat", "count": 2}),
        ("/dict", {"name": "hat", "count": 1}, {"kind": "dict", "name": "hat", "count": 1}),
    ],
)
async def test_a_model_parameter_binds_the_json_body(
    path: str, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    async with APP.test_server() as server:
        reply = await server.request("POST", path, json=body)
        assert reply.status == 200, reply.text
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.json() == expected


@pytest.mark.parametrize("path", ["/struct", "/model", "/data", "/dict"])
async def test_malformed_json_answers_400(path: str) -> None:
    async with APP.test_server() as server:
        reply = await server.request(
            "POST", path, body=b'{"name": ', headers={"content-type": "application/json"}
        )
        assert reply.status == 400
        assert "Invalid JSON" in reply.text


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/struct", {"name": "hat", "price": "cheap"}, ["body", "price"]),
        ("/struct", {"price": 1}, ["body", "name"]),
        ("/struct", {"name": "hat", "price": 1, "tags": ["a", 3]}, ["body", "tags", 1]),
        ("/model", {"name": "hat", "price": -1}, ["body", "price"]),
        ("/model", {"price": 1}, ["body", "name"]),
        ("/data", {"name": "hat", "count": "x"}, ["body", "count"]),
        ("/dict", {"name": 5, "count": 1}, ["body", "name"]),
    ],
)
async def test_a_body_of_the_wrong_shape_answers_422(
    path: str, body: dict[str, Any], loc: list[Any]
) -> None:
    async with APP.test_server() as server:
        reply = await server.request("POST", path, json=body)
        assert reply.status == 422, reply.text
        detail = reply.json()["detail"]
        assert detail[0]["loc"] == loc
        assert detail[0]["msg"]
        assert detail[0]["type"]


async def test_query_and_body_errors_are_reported_together() -> None:
    async with APP.test_server() as server:
        reply = await server.request("POST", "/struct?dry_run=perhaps", json={"name": 1})
        locs = [error["loc"] for error in reply.json()["detail"]]
        assert ["query", "dry_run"] in locs
        assert any(loc[0] == "body" for loc in locs)


async def test_an_empty_body_for_a_model_is_a_missing_field() -> None:
    async with APP.test_server() as server:
        reply = await server.request("POST", "/struct")
        assert reply.status == 422
        assert reply.json()["detail"] == [
            {"loc": ["body"], "msg": "Field required", "type": "missing"}
        ]


async def test_validation_errors_can_be_handled_by_the_app() -> None:
    app = build_app()

    @app.exception_handler(RequestValidationError)
    def explain(request: Request, exc: RequestValidationError) -> dict[str, Any]:
        return {"problems": len(exc.errors)}

    async with app.test_server() as server:
        reply = await server.request("GET", "/search?limit=x")
        assert reply.status == 200
        assert reply.json() == {"problems": 2}


async def test_returning_an_unsupported_type_names_the_function_and_route(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with APP.test_server() as server:
        reply = await server.request("GET", "/annotated")
        assert reply.status == 500
    messages = [r.getMessage() + str(r.exc_info and r.exc_info[1]) for r in caplog.records]
    assert any("GET /annotated" in m and "annotated()" in m and "'int'" in m for m in messages)


# ---- registration mistakes ------------------------------------------------------------------


def test_a_placeholder_no_parameter_takes_is_refused_at_registration() -> None:
    app = Spikard()
    with pytest.raises(RoutingError) as caught:

        @app.get("/items/{item_id}")
        def item(verbose: bool = False) -> str:
            return ""

    message = str(caught.value)
    assert "GET /items/{item_id}" in message
    assert "item()" in message
    assert "test_http_params.py:" in message
    assert "'item_id'" in message
    assert "add a parameter named 'item_id'" in message


def test_a_request_parameter_or_kwargs_covers_placeholders() -> None:
    app = Spikard()

    @app.get("/a/{x}")
    def with_request(request: Request) -> str:
        return ""

    @app.get("/b/{x}")
    def with_kwargs(**params: Any) -> str:
        return ""


def test_an_annotation_that_cannot_be_resolved_is_named() -> None:
    app = Spikard()

    @dataclasses.dataclass
    class Local:
        name: str

    with pytest.raises(RoutingError) as caught:

        @app.post("/x")
        def create(item: Local) -> str:  # a string under the future import: unresolvable
            return ""

    assert "cannot resolve the annotation 'Local'" in str(caught.value)


def test_a_parameter_nothing_can_fill_is_refused() -> None:
    app = Spikard()
    with pytest.raises(RoutingError) as caught:

        @app.get("/x")
        def odd(options: dict[str, int]) -> str:
            return ""

    assert "'options'" in str(caught.value)
    assert "nothing can fill" in str(caught.value)


def test_two_body_models_are_refused() -> None:
    app = Spikard()
    with pytest.raises(RoutingError, match="two body parameters"):

        @app.post("/x")
        def two(a: ItemStruct, b: ItemModel) -> str:
            return ""


def test_a_query_parameter_annotated_with_a_str_keeps_the_request_out() -> None:
    """``def q(name: str)`` used to receive the Request in ``name``; now it reads ``?name=``."""
    app = Spikard()

    @app.get("/q")
    def q(name: str) -> str:
        return name

    route = app.routes[0]
    assert route.function is q


def test_a_model_without_its_library_fails_at_registration_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "msgspec", None)
    monkeypatch.setitem(sys.modules, "pydantic", None)
    app = Spikard()
    with pytest.raises(RoutingError) as caught:

        @app.post("/x")
        def create(item: Fresh) -> str:
            return ""

    assert "[msgspec]" in str(caught.value)


async def test_a_dataclass_body_falls_back_to_pydantic_without_msgspec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "msgspec", None)
    app = Spikard()

    @app.post("/x")
    def create(item: Counted) -> str:
        return f"{item.name}:{item.count}"

    async with app.test_server() as server:
        assert (await server.request("POST", "/x", json={"name": "a", "count": 2})).text == "a:2"
        bad = await server.request("POST", "/x", json={"name": "a", "count": "many"})
        assert bad.status == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "count"]


def test_other_parameters_resolve_when_one_annotation_cannot() -> None:
    app = Spikard()

    @dataclasses.dataclass
    class Local:
        name: str

    with pytest.raises(RoutingError) as caught:

        @app.post("/x")
        def create(limit: int, request: Request, item: Local) -> str:
            return ""

    assert "parameter 'item'" in str(caught.value)
    assert "'limit'" not in str(caught.value)
