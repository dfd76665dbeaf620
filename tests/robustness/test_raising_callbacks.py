"""A callback handler whose every callback raises never takes the server down."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from websockets.exceptions import ConnectionClosedError

from spikard import Request, Spikard, WebSocket, WebSocketMessage, WebSocketResponse

from ..helpers import handshake_refusal, ws_connect


def make_app(fail_connect: bool) -> tuple[Spikard, list[str]]:
    app = Spikard()
    calls: list[str] = []

    @app.websocket("/cursed")
    async def cursed(request: Request) -> WebSocketResponse:
        def on_connect() -> None:
            calls.append("connect")
            if fail_connect:
                raise RuntimeError("on_connect failed")

        async def on_message(message: WebSocketMessage) -> WebSocketMessage | None:
            calls.append("message")
            raise RuntimeError("on_message failed")

        async def on_error(error: str) -> None:
            calls.append(f"error: {error}")
            raise RuntimeError("on_error failed too")

        def on_close(frame: tuple[int, str] | None) -> None:
            calls.append(f"close: {frame}")
            raise RuntimeError("on_close failed as well")

        return WebSocketResponse(
            on_connect=on_connect, on_message=on_message, on_error=on_error, on_close=on_close
        )

    @app.websocket("/echo")
    async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        async for message in socket:
            yield message

    return app, calls


async def test_every_callback_raising(caplog: pytest.LogCaptureFixture) -> None:
    app, calls = make_app(fail_connect=False)
    async with app.test_server() as server:
        for _ in range(3):
            async with ws_connect(server.ws_url("/cursed")) as ws:
                await ws.send("x")
                with pytest.raises(ConnectionClosedError) as caught:
                    await ws.recv()
                assert caught.value.rcvd is not None
                assert caught.value.rcvd.code == 1011
        async with ws_connect(server.ws_url("/echo")) as ws:
            await ws.send("still serving")
            assert await ws.recv() == "still serving"
    assert calls[:4] == [
        "connect",
        "message",
        "error: RuntimeError: on_message failed",
        "close: (1011, 'internal error')",  # the client echoes our close frame
    ]
    assert "on_close raised" in caplog.text
    assert "on_error raised" in caplog.text


async def test_on_connect_raising_refuses_with_403() -> None:
    app, calls = make_app(fail_connect=True)
    async with app.test_server() as server:
        for _ in range(3):
            caught = await handshake_refusal(server.ws_url("/cursed"))
            assert caught.status_code == 403
        async with ws_connect(server.ws_url("/echo")) as ws:
            await ws.send("still serving")
            assert await ws.recv() == "still serving"
    assert calls == ["connect"] * 3
