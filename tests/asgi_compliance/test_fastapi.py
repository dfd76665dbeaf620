"""A real FastAPI app served over real sockets: DI, validation, lifespan state, WebSockets."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from .registry import wait_for
from .servers import Target
from .wire import request


def key() -> str:
    return uuid.uuid4().hex


def test_root(fastapi: Target) -> None:
    with fastapi.http() as client:
        response = client.get("/")
    assert response.json() == {"hello": "fastapi"}
    assert response.headers["content-type"] == "application/json"


def test_sync_route_in_threadpool(fastapi: Target) -> None:
    with fastapi.http() as client:
        assert client.get("/sync").json() == {"ran": "in a thread"}


def test_router_prefix_path_and_query(fastapi: Target) -> None:
    with fastapi.http() as client:
        response = client.get("/api/items/7", params={"q": "x y"})
    assert response.json() == {"item_id": 7, "q": "x y", "pool": "pool-1"}


def test_path_validation_422(fastapi: Target) -> None:
    with fastapi.http() as client:
        response = client.get("/api/items/seven")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "item_id"]


def test_query_validation_422(fastapi: Target) -> None:
    with fastapi.http() as client:
        assert client.get("/api/limited", params={"n": 11}).status_code == 422
        assert client.get("/api/limited", params={"n": 3}).json() == {"n": 3}


def test_body_model_201(fastapi: Target) -> None:
    with fastapi.http() as client:
        response = client.post("/api/items", json={"name": "pen", "price": 1.5, "tags": ["a"]})
    assert response.status_code == 201
    assert response.json() == {"name": "pen", "price": 1.5, "tags": ["a"]}


def test_body_model_invalid_422(fastapi: Target) -> None:
    with fastapi.http() as client:
        response = client.post("/api/items", json={"name": "", "price": -1})
    assert response.status_code == 422
    assert {tuple(error["loc"]) for error in response.json()["detail"]} == {
        ("body", "name"),
        ("body", "price"),
    }


def test_malformed_json_body_422(fastapi: Target) -> None:
    with fastapi.http() as client:
        response = client.post(
            "/api/items", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert response.status_code == 422


def test_custom_exception_handler(fastapi: Target) -> None:
    with fastapi.http() as client:
        response = client.post("/api/items", json={"name": "taken", "price": 2})
    assert (response.status_code, response.json()) == (409, {"conflict": "taken"})


def test_http_exception_with_headers(fastapi: Target) -> None:
    with fastapi.http() as client:
        response = client.get("/api/secure", headers={"x-token": "wrong"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Token"
    assert response.json() == {"detail": "bad token"}


def test_header_dependency(fastapi: Target) -> None:
    with fastapi.http() as client:
        assert client.get("/api/secure", headers={"x-token": "secret"}).json() == {
            "token": "secret"
        }
        assert client.get("/api/secure").status_code == 422


def test_yield_dependency_teardown_runs(fastapi: Target) -> None:
    name = key()
    with fastapi.http() as client:
        assert client.get("/api/resource", params={"key": name}).json() == {"value": "resource"}
        assert wait_for(client, name, count=2) == ["dependency setup", "dependency teardown"]


def test_http_exception_404(fastapi: Target) -> None:
    with fastapi.http() as client:
        response = client.get("/missing")
    assert (response.status_code, response.json()) == (404, {"detail": "no such thing"})


def test_unhandled_error_500(fastapi: Target) -> None:
    with fastapi.http() as client:
        assert client.get("/crash").status_code == 500
    with fastapi.http() as client:
        assert client.get("/").status_code == 200


def test_is_disconnected_long_poll(fastapi: Target) -> None:
    name = key()
    with fastapi.raw() as sock:
        sock.sendall(request("GET", f"/poll?key={name}"))
        with fastapi.http() as client:
            assert wait_for(client, name) == ["polling"]
    with fastapi.http() as client:
        assert wait_for(client, name, count=2, timeout=3) == ["polling", "disconnected"]


def test_lifespan_state(fastapi: Target) -> None:
    with fastapi.http() as client:
        assert client.get("/state").json() == {"pool": "pool-1", "settings": {"mode": "compliance"}}


def test_background_task_after_response(fastapi: Target) -> None:
    name = key()
    with fastapi.http() as client:
        assert client.post("/notify", params={"key": name}).json() == {"queued": name}
        assert wait_for(client, name, count=2) == ["responded", "background ran"]


def test_streaming_response(fastapi: Target) -> None:
    with fastapi.http() as client:
        response = client.get("/stream", params={"n": 30})
    assert response.text == "".join(f"line {n}\n" for n in range(30))


def test_plain_text_response_class(fastapi: Target) -> None:
    with fastapi.http() as client:
        response = client.get("/text")
    assert response.text == "plain text"
    assert response.headers["content-type"].startswith("text/plain")


def test_openapi_and_docs(fastapi: Target) -> None:
    with fastapi.http() as client:
        schema = client.get("/openapi.json").json()
        docs = client.get("/docs")
    assert "/api/items/{item_id}" in schema["paths"]
    assert docs.status_code == 200


def test_websocket_with_path_query_and_dependency(fastapi: Target) -> None:
    with connect(fastapi.ws_url("/ws/lobby?name=ada"), **fastapi.ws_options()) as ws:
        assert json.loads(ws.recv(timeout=5)) == {"room": "lobby", "name": "ada", "pool": "pool-1"}
        ws.send("hello")
        assert ws.recv(timeout=5) == "ada@lobby: hello"


def test_websocket_disconnect_reaches_the_route(fastapi: Target) -> None:
    name = key()
    with connect(fastapi.ws_url(f"/ws/room?name={name}"), **fastapi.ws_options()) as ws:
        ws.recv(timeout=5)
        ws.close(1001)
    with fastapi.http() as client:
        assert wait_for(client, name) == ["disconnect 1001"]


def test_websocket_close_before_accept_is_403(fastapi: Target) -> None:
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(fastapi.ws_url("/ws-auth"), **fastapi.ws_options()),
    ):
        pass  # pragma: no cover
    assert refused.value.response.status_code == 403


def test_websocket_exception_before_accept_is_403(fastapi: Target) -> None:
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(fastapi.ws_url("/ws-guarded"), **fastapi.ws_options()),
    ):
        pass  # pragma: no cover
    assert refused.value.response.status_code == 403
    with connect(fastapi.ws_url("/ws-guarded?token=t"), **fastapi.ws_options()) as ws:
        assert ws.recv(timeout=5) == "guarded ok"


def test_websocket_accepted_then_closed(fastapi: Target) -> None:
    with connect(fastapi.ws_url("/ws-auth?token=secret"), **fastapi.ws_options()) as ws:
        assert ws.recv(timeout=5) == "welcome"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.protocol.close_rcvd is not None
        assert ws.protocol.close_rcvd.code == 1000


def test_100_concurrent_requests(fastapi: Target) -> None:
    async def run() -> list[int]:
        async with fastapi.async_http(limits=_limits()) as client:
            responses = await asyncio.gather(*(client.get(f"/api/items/{n}") for n in range(100)))
        return [response.json()["item_id"] for response in responses]

    assert asyncio.run(run()) == list(range(100))


def _limits() -> object:
    import httpx

    return httpx.Limits(max_connections=100, max_keepalive_connections=100)
