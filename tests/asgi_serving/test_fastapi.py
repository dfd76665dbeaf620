"""A real FastAPI app on spikard's server: dependencies, validation, lifespan state, WebSocket."""

from __future__ import annotations

from ..helpers import ws_connect
from .apps import fastapi_app
from .serving import client, serve


async def test_dependencies_and_lifespan_state() -> None:
    async with serve(fastapi_app) as running, client(running) as http:
        found = await http.get("/items/hat", headers={"x-token": "secret"})
        missing = await http.get("/items/cap", headers={"x-token": "secret"})
        forbidden = await http.get("/items/hat", headers={"x-token": "guess"})
        no_header = await http.get("/items/hat")
    assert found.status_code == 200
    assert found.json() == {"name": "hat", "price": 9.5}
    assert missing.status_code == 404
    assert missing.json() == {"detail": "no such item"}
    assert forbidden.status_code == 403
    assert no_header.status_code == 422
    assert no_header.json()["detail"][0]["loc"] == ["header", "x-token"]


async def test_pydantic_bodies() -> None:
    async with serve(fastapi_app) as running, client(running) as http:
        created = await http.post("/items", json={"name": "hat", "price": 9.5})
        invalid = await http.post("/items", json={"name": "hat", "price": "cheap"})
        docs = await http.get("/openapi.json")
    assert created.status_code == 201
    assert created.json() == {"name": "hat", "price": 9.5}
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body", "price"]
    assert "/items/{name}" in docs.json()["paths"]


async def test_websocket_route_with_a_path_parameter_and_a_dependency() -> None:
    async with serve(fastapi_app) as running, ws_connect(running.ws_url("/ws/blue")) as ws:
        await ws.send("ada")
        assert await ws.recv() == '{"room":"blue","hello":"ada"}'
