"""WebSockets of ASGI apps on spikard's server: handshake, messages, close codes, denial."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from websockets.exceptions import ConnectionClosed

from spikard import HTTPConfig, WebSocketConfig
from spikard.asgi.serving import ASGIApplication, Receive, Scope, Send

from ..helpers import handshake_refusal, upgrade_request, ws_connect
from .apps import EVENTS, starlette_app
from .serving import serve


async def close(ws: Any, code: int, reason: str = "") -> None:
    """Close with ``code`` (websockets' trio client calls it ``aclose``)."""
    closing = getattr(ws, "aclose", None) or ws.close
    await closing(code, reason)


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    EVENTS.clear()


async def test_text_and_bytes_with_a_subprotocol_and_headers() -> None:
    async with (
        serve(starlette_app) as running,
        ws_connect(running.ws_url("/ws"), subprotocols=["chat.v1", "chat.v2"]) as ws,
    ):
        assert ws.subprotocol == "chat.v2"
        assert ws.response.headers["x-room"] == "lobby"
        await ws.send("hello")
        assert await ws.recv() == "HELLO"
        await ws.send(b"\x01\x02\x03")
        assert await ws.recv() == b"\x03\x02\x01"


async def test_the_client_close_code_reaches_the_app() -> None:
    async with serve(starlette_app) as running:
        async with ws_connect(running.ws_url("/ws")) as ws:
            await ws.send("x")
            await ws.recv()
            await close(ws, 4002, "done here")
        with anyio.fail_after(5):
            while "disconnect 4002" not in EVENTS:
                await anyio.sleep(0.01)
    assert EVENTS == ["startup", "disconnect 4002", "shutdown"]


async def test_the_app_close_code_and_reason_reach_the_client() -> None:
    async with serve(starlette_app) as running, ws_connect(running.ws_url("/ws")) as ws:
        await ws.send("close please")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4001
    assert ws.close_reason == "as you asked"


async def test_close_before_accept_is_403() -> None:
    async with serve(starlette_app) as running:
        response = await handshake_refusal(running.ws_url("/refuse"))
    assert response.status_code == 403


async def test_the_denial_extension_sends_the_apps_response() -> None:
    async with serve(starlette_app) as running:
        response = await handshake_refusal(running.ws_url("/deny"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.body == b"no entry"


async def test_the_scope_offers_the_denial_extension_and_subprotocols() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        seen.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})

    async with serve(app, lifespan="off") as running:
        async with ws_connect(running.ws_url("/a%20b?q=1"), subprotocols=["p1", "p2"]) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 1000
    scope = seen[0]
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/a b"
    assert scope["raw_path"] == b"/a%20b"
    assert scope["query_string"] == b"q=1"
    assert scope["subprotocols"] == ["p1", "p2"]
    assert "websocket.http.response" in scope["extensions"]
    assert scope["asgi"]["version"] == "3.0"
    assert scope["server"] == ("127.0.0.1", running.port)


async def test_a_failure_after_accept_closes_1011_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        raise ValueError("ws broke")

    async with serve(app, lifespan="off") as running, ws_connect(running.ws_url("/")) as ws:
        await ws.send("go")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1011
    logged = [r for r in caplog.records if r.exc_info and "ws broke" in str(r.exc_info[1])]
    assert len(logged) == 1


async def test_a_failure_before_accept_is_500() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            raise ValueError("no handshake for you")

    async with serve(app, lifespan="off") as running:
        response = await handshake_refusal(running.ws_url("/"))
    assert response.status_code == 500


async def test_send_before_accept_is_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        try:
            await send({"type": "websocket.send", "text": "too early"})
        except RuntimeError as exc:
            raised.append(exc)
            raise

    async with serve(app, lifespan="off") as running:
        response = await handshake_refusal(running.ws_url("/"))
    assert response.status_code == 500
    assert "'websocket.send' before 'websocket.accept'" in str(raised[0])
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1


async def test_an_unknown_subprotocol_is_a_clear_error() -> None:
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        try:
            await send({"type": "websocket.accept", "subprotocol": "nope"})
        except RuntimeError as exc:
            raised.append(exc)

    async with serve(app, lifespan="off") as running:
        response = await handshake_refusal(running.ws_url("/"), subprotocols=["yes"])
    assert response.status_code == 500
    assert "did not offer" in str(raised[0])


async def test_send_after_the_client_left_raises_oserror() -> None:
    outcome: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        outcome.append(f"{message['type']} {message['code']}")
        try:
            await send({"type": "websocket.send", "text": "anyone?"})
        except OSError:
            outcome.append("OSError")

    async with serve(app, lifespan="off") as running:
        async with ws_connect(running.ws_url("/")) as ws:
            await close(ws, 1001)
        with anyio.fail_after(5):
            while len(outcome) < 2:
                await anyio.sleep(0.01)
    assert outcome == ["websocket.disconnect 1001", "OSError"]


async def test_incoming_messages_are_read_only_as_the_app_asks() -> None:
    release = anyio.Event()
    got: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        await release.wait()
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            got.append(message["text"])
            if len(got) == 2000:
                await send({"type": "websocket.send", "text": "all"})

    async with serve(app, lifespan="off") as running:
        server = running.server
        async with ws_connect(running.ws_url("/"), max_queue=None) as ws:

            async def flood() -> None:
                for number in range(2000):
                    await ws.send(f"{number:04d}" * 256)  # 1 KiB each

            async with anyio.create_task_group() as group:
                group.start_soon(flood)
                await anyio.sleep(0.3)
                held = server.buffered_bytes
                release.set()
            with anyio.fail_after(10):
                assert await ws.recv() == "all"
    # The app read nothing: the server held a queue's worth (16 + 1 messages) and at most
    # 4 reads of bytes; the rest waited in the kernel (TCP flow control), never 2 MiB.
    assert held <= 17 * 1024 + 5 * 65536
    assert got[:2] == ["0000" * 256, "0001" * 256]


async def test_an_unanswered_handshake_is_500_after_accept_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cancelled: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.append(True)

    config = WebSocketConfig(accept_timeout=0.2)
    adapter = ASGIApplication(app, lifespan="off", websocket_config=config)
    async with serve(adapter) as running:
        with anyio.fail_after(5):
            response = await handshake_refusal(running.ws_url("/slow"))
    assert response.status_code == 500
    assert cancelled == [True]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "accept_timeout" in warnings[0].getMessage()


@pytest.mark.parametrize("accept_timeout", [0.3, 30.0])
async def test_a_client_that_leaves_before_the_answer_ends_within_handler_grace(
    caplog: pytest.LogCaptureFixture, accept_timeout: float
) -> None:
    # The app waits in receive() without answering: the server's end of the WebSocket (the
    # grace after the client left) is what says disconnect, never the accept_timeout 500.
    seen: list[Any] = []
    got = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        seen.append(await receive())
        got.set()

    config = WebSocketConfig(accept_timeout=accept_timeout, handler_grace=0.5)
    adapter = ASGIApplication(app, lifespan="off", websocket_config=config)
    async with serve(adapter) as running:
        stream = await anyio.connect_tcp("127.0.0.1", running.port)
        await stream.send(upgrade_request("/leaves", port=running.port))
        await anyio.sleep(0.05)
        await stream.aclose()
        left = anyio.current_time()
        with anyio.fail_after(5):
            await got.wait()
        waited = anyio.current_time() - left
    assert seen == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]
    assert 0.4 <= waited < 2.0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_an_app_that_outstays_its_websocket_is_cancelled_at_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # It ignores the disconnect and sleeps on: the server stops waiting after handler_grace
    # and closes the socket; at shutdown the app gets shutdown_timeout, then is cancelled.
    stages: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        stages.append((await receive())["type"])
        try:
            await anyio.sleep_forever()
        finally:
            stages.append("cancelled")

    http = HTTPConfig(shutdown_timeout=0.3)
    config = WebSocketConfig(handler_grace=0.1)
    adapter = ASGIApplication(app, lifespan="off", http_config=http, websocket_config=config)
    with anyio.fail_after(10):
        async with serve(adapter) as running:
            async with ws_connect(running.ws_url("/stays")) as ws:
                await close(ws, 1000)
            while not stages:
                await anyio.sleep(0.01)
        assert stages == ["websocket.disconnect", "cancelled"]
    assert "cancelling 1 ASGI call(s) still running at shutdown" in caplog.text
