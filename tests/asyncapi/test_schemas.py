"""Schemas as AsyncAPI 3.0 wants them: draft 07, string discriminators, free component names."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Literal

import msgspec
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikard.app.routing import PathPattern, Route
from spikard.asyncapi import build_document
from spikard.asyncapi.schemas import REF_PREFIX, SchemaRegistry, component_name

from .checks import assert_valid


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF_PREFIX + name}


def test_component_names_keep_to_the_key_pattern() -> None:
    assert component_name("Page[int]") == "Page_int_"
    assert component_name("mod.Outer.<locals>.Msg") == "mod.Outer._locals_.Msg"
    assert component_name("Café") == "Caf_"
    assert component_name("M-Input") == "M-Input"
    assert component_name("") == "Schema"


@dataclasses.dataclass
class Point:
    x: int


class Shape(pydantic.BaseModel):
    corner: Point  # pydantic describes this Point its own way (with titles)


def test_a_name_taken_by_another_schema_moves_with_what_refers_to_it() -> None:
    routes = [
        Route(PathPattern("/a"), frozenset(), None, kind="websocket", receive_type=Point),
        Route(PathPattern("/b"), frozenset(), None, kind="websocket", receive_type=Shape),
    ]
    document = build_document(routes)
    assert_valid(document)
    schemas = document["components"]["schemas"]
    assert sorted(schemas) == ["Point", "Point_2", "Shape"]
    assert schemas["Point"]["properties"] == {"x": {"type": "integer"}}  # msgspec's
    assert schemas["Point_2"]["properties"]["x"]["title"] == "X"  # pydantic's
    assert schemas["Shape"]["properties"]["corner"] == ref("Point_2")


def test_different_types_of_one_name_in_one_batch() -> None:
    first = msgspec.defstruct("Item", [("a", int)])
    second = msgspec.defstruct("Item", [("b", str)])
    registry = SchemaRegistry()
    one, two = registry.describe([(first, "validation", "a"), (second, "validation", "b")])
    assert one != two
    assert len(registry.components) == 2
    assert {registry.components[r["$ref"][len(REF_PREFIX) :]]["title"] for r in (one, two)} == {
        "Item"
    }


class Keywords(msgspec.Struct):
    default: int  # property names that are also keywords
    prefixItems: str
    discriminator: tuple[int, str] = (1, "a")


def test_property_names_are_names_and_defaults_are_data() -> None:
    registry = SchemaRegistry()
    assert registry.describe([(Keywords, "validation", "k")]) == [ref("Keywords")]
    properties = registry.components["Keywords"]["properties"]
    assert set(properties) == {"default", "prefixItems", "discriminator"}
    assert properties["default"] == {"type": "integer"}
    assert properties["prefixItems"] == {"type": "string"}
    pair = properties["discriminator"]
    assert pair["items"] == [{"type": "integer"}, {"type": "string"}]
    assert pair["default"] == [1, "a"]  # a JSON list, not the tuple msgspec wrote


# ---- any type msgspec can describe makes a valid document ----------------------------------

_NAMES = ("Item", "Other")  # few names, so that different Structs collide


def _struct(fields: list[tuple[str, Any]], name: str) -> Any:
    return msgspec.defstruct(name, [(f"f{i}", t) for i, (_, t) in enumerate(fields)])


base = st.sampled_from(
    [int, str, float, bool, bytes, type(None), Color, Literal["a", "b"], Any, dict[str, int]]
)
types = st.recursive(
    base,
    lambda inner: st.one_of(
        inner.map(lambda t: list[t]),  # type: ignore[valid-type]
        inner.map(lambda t: dict[str, t]),  # type: ignore[valid-type]
        inner.map(lambda t: t | None),
        st.tuples(inner, inner).map(lambda pair: tuple[pair[0], pair[1]]),  # type: ignore[valid-type]
        st.builds(
            _struct,
            st.lists(st.tuples(st.just(""), inner), min_size=1, max_size=3),
            st.sampled_from(_NAMES),
        ),
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(types, min_size=1, max_size=3))
def test_any_types_make_a_valid_document(declared: list[Any]) -> None:
    routes = [
        Route(
            PathPattern(f"/r{index}/{{id:int}}"),
            frozenset({"GET"}),
            None,
            kind="websocket",
            receive_type=receive,
            send_type=receive,
        )
        for index, receive in enumerate(declared)
    ]
    document = build_document(routes)
    assert_valid(document)
    assert len(document["channels"]) == len(declared)


class Opaque:
    """A plain class: no JSON Schema in msgspec or pydantic."""


@pytest.mark.parametrize("declared", [Opaque, list[Opaque], object()])
def test_what_neither_library_describes_is_a_type_error(declared: Any) -> None:
    with pytest.raises(TypeError, match="has no JSON Schema in msgspec or pydantic"):
        SchemaRegistry().describe([(declared, "validation", "here")])
