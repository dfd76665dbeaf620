"""A spikard app mounted in Starlette and FastAPI (``Mount("/rt", app=...)``) under uvicorn.

The hosts run the spikard app's lifespan inside their own (``app.lifespan_context()``);
routing is on ``path`` minus ``root_path``, as Starlette >= 0.33 passes them.
"""

from __future__ import annotations

import anyio
import httpx
import pytest

from ..helpers import handshake_refusal, ws_connect
from .servers import Served
from .test_websocket import BOUND

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["starlette", "fastapi"])
def host(request: pytest.FixtureRequest) -> Served:
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]


async def test_http_under_the_mount(host: Served) -> None:
    async with httpx.AsyncClient(base_url=host.url, timeout=BOUND) as http:
        hello = await http.get("/rt/hello", params={"name": "mount"})
        assert hello.text == "hello mount at /hello"  # the path inside the spikard app
        assert (await http.get("/rt/items/3")).json() == {"id": 3, "q": "none", "limit": 10}
        state = (await http.get("/rt/state")).json()
        assert state == {"greeting": "hello from lifespan", "broker": True}
        home = await http.get("/")
        assert home.status_code == 200  # the host's own route
        assert (await http.get("/rt/nothing")).status_code == 404  # spikard's 404


async def test_fastapi_dependency_sees_the_spikard_lifespan(fastapi_server: Served) -> None:
    async with httpx.AsyncClient(base_url=fastapi_server.url, timeout=BOUND) as http:
        assert (await http.get("/")).json() == {
            "host": "fastapi",
            "spikard says": "hello from lifespan",
        }


async def test_websocket_under_the_mount(host: Served) -> None:
    async with ws_connect(host.ws_url("/rt/echo")) as socket:
        await socket.send("through the mount")
        with anyio.fail_after(BOUND):
            assert await socket.recv() == "through the mount"
    async with ws_connect(
        host.ws_url("/rt/game/9"),
        subprotocols=["game.v2"],
        additional_headers={"authorization": "Bearer letmein"},
    ) as socket:
        assert socket.subprotocol == "game.v2"
        await socket.send("x")
        with anyio.fail_after(BOUND):
            assert await socket.recv() == "table 9: x"
    refused = await handshake_refusal(host.ws_url("/rt/game/9"))
    assert refused.status_code == 401


async def test_redirects_keep_the_mount_prefix(starlette_server: Served) -> None:
    async with httpx.AsyncClient(base_url=starlette_server.url, timeout=BOUND) as http:
        response = await http.get("/rt/stream", params={"n": 2})
        assert response.text == "0\n1\n"


async def test_without_the_denial_extension_a_refusal_is_403(starlette_server: Served) -> None:
    refused = await handshake_refusal(starlette_server.ws_url("/nodenial/callbacks?token=no"))
    assert refused.status_code == 403  # the 401 cannot be said: the server answers 403
    async with ws_connect(starlette_server.ws_url("/nodenial/callbacks?token=ok")) as socket:
        await socket.send("still works")
        with anyio.fail_after(BOUND):
            assert await socket.recv() == "cb:still works"


async def test_an_app_whose_lifespan_never_ran_says_so(starlette_server: Served) -> None:
    async with httpx.AsyncClient(base_url=starlette_server.url, timeout=BOUND) as http:
        response = await http.get("/orphan/hello")
        assert response.status_code == 500
        assert "lifespan_context()" in response.text
    refused = await handshake_refusal(starlette_server.ws_url("/orphan/ws"))
    assert refused.status_code == 500
    assert b"lifespan_context()" in refused.body
    with anyio.fail_after(BOUND):
        while "lifespan has not run" not in starlette_server.output():
            await anyio.sleep(0.05)
    assert starlette_server.output().count("lifespan has not run") == 1  # logged once
