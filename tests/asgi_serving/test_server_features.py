"""Server features for ASGI apps: shutdown 1012, TLS, limits, keepalive, deflate, access log."""

from __future__ import annotations

import logging
import ssl

import anyio
import pytest
import trustme
from websockets.exceptions import ConnectionClosed

from spikard import WebSocketConfig
from spikard.asgi.serving import ASGIApplication, Receive, Scope, Send

from ..helpers import read_until, upgrade_request, ws_connect
from .apps import EVENTS, starlette_app
from .serving import client, serve


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    EVENTS.clear()


async def test_graceful_shutdown_closes_websockets_with_1012() -> None:
    async with serve(starlette_app) as running, ws_connect(running.ws_url("/ws")) as ws:
        await ws.send("hi")
        assert await ws.recv() == "HI"
        running.server.shutdown()
        with anyio.fail_after(5), pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1012
    assert "disconnect 1012" in EVENTS


async def test_tls(tmp_path: object) -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    async with serve(starlette_app, ssl_context=server_context) as running:
        async with client(running, verify=client_context) as http:
            scope = (await http.get("/scope/x")).json()
        async with ws_connect(running.ws_url("/ws"), ssl=client_context) as ws:
            await ws.send("secure")
            assert await ws.recv() == "SECURE"
    assert scope["scheme"] == "https"


async def test_limit_concurrency_answers_503() -> None:
    release = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"slow"})

    slow: list[int] = []
    async with (
        serve(app, lifespan="off", limit_concurrency=1) as running,
        client(running) as first,
        client(running) as second,
        anyio.create_task_group() as group,
    ):

        async def call() -> None:
            slow.append((await first.get("/")).status_code)

        group.start_soon(call)
        await anyio.sleep(0.2)
        refused = await second.get("/")
        release.set()
    assert refused.status_code == 503
    assert slow == [200]


async def test_keepalive_pings_reach_a_silent_client() -> None:
    config = WebSocketConfig(ping_interval=0.1, ping_timeout=5)
    adapter = ASGIApplication(starlette_app, websocket_config=config)
    async with serve(adapter) as running:
        with anyio.fail_after(5):
            async with await anyio.connect_tcp("127.0.0.1", running.port) as stream:
                await stream.send(upgrade_request("/ws", port=running.port))
                data = await read_until(stream, b"\r\n\r\n")
                assert data.startswith(b"HTTP/1.1 101 ")
                rest = data.split(b"\r\n\r\n", 1)[1]
                while len(rest) < 2:
                    rest += await stream.receive()
    assert rest[0] == 0x89  # a ping frame, FIN set, unmasked from the server


async def test_permessage_deflate_is_on_by_default(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="spikard.access")
    async with serve(starlette_app) as running:
        async with ws_connect(running.ws_url("/ws"), compression="deflate") as ws:
            await ws.send("z" * 10000)
            assert await ws.recv() == "Z" * 10000
        async with client(running) as http:
            await http.get("/?name=log")
    assert "permessage-deflate" in ws.response.headers["sec-websocket-extensions"]
    lines = [r.getMessage() for r in caplog.records if r.name == "spikard.access"]
    assert any('"WEBSOCKET /ws HTTP/1.1" 101' in line for line in lines)
    assert any('"GET /?name=log HTTP/1.1" 200' in line for line in lines)


async def test_ws_max_size_closes_1009() -> None:
    adapter = ASGIApplication(
        starlette_app, websocket_config=WebSocketConfig(max_message_size=1000)
    )
    async with serve(adapter) as running, ws_connect(running.ws_url("/ws")) as ws:
        await ws.send("y" * 2000)
        with anyio.fail_after(5), pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1009
