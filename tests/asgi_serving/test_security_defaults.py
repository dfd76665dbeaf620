"""A plain ASGI app on spikard's server: no origin check, no per-client limits, as under uvicorn.

Unless asked for: ``--ws-allowed-origins``, ``--ws-max-connections-per-client`` and
``--ws-handshake-rate`` turn spikard's on; ``--forwarded-allow-ips`` sets the trusted proxies.
"""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from spikard import HandshakeRejected, Spikard
from spikard.asgi.serving import ASGIApplication, default_websocket_config
from spikard.server.cli import build_parser, resolve_app
from spikard.testing import TestServerInfo

from .serving import serve

pytestmark = pytest.mark.anyio


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    assert scope["type"] == "websocket"
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text") or ""})


def parsed(*options: str) -> argparse.Namespace:
    return build_parser().parse_args(["target:app", *options])


async def handshake(running: Any, **options: Any) -> int:
    info = TestServerInfo("127.0.0.1", running.port)
    try:
        async with info.connect("/", **options) as ws:
            await ws.send("hi")
            assert await ws.receive_text() == "hi"
    except HandshakeRejected as refused:
        return refused.status_code
    return 101


async def test_by_default_any_origin_and_no_per_client_limit() -> None:
    config = default_websocket_config()
    assert config.allowed_origins == "*"
    assert config.per_client_limit is None
    assert config.handshake_rate is None
    adapter = resolve_app(echo_app, "target:app", parsed())
    assert isinstance(adapter, ASGIApplication)
    async with serve(adapter) as running:
        assert await handshake(running, headers={"origin": "https://elsewhere.example"}) == 101


async def test_cli_options_turn_spikards_checks_on() -> None:
    adapter = resolve_app(
        echo_app,
        "target:app",
        parsed("--ws-allowed-origins", "same-origin", "--ws-max-connections-per-client", "1"),
    )
    assert isinstance(adapter, ASGIApplication)
    async with serve(adapter) as running:
        assert await handshake(running, headers={"origin": "https://elsewhere.example"}) == 403
        own = {"origin": f"http://127.0.0.1:{running.port}"}
        assert await handshake(running, headers=own) == 101
        info = TestServerInfo("127.0.0.1", running.port)
        async with info.connect("/"):
            assert await handshake(running) == 429
    listed = resolve_app(
        echo_app,
        "target:app",
        parsed("--ws-allowed-origins", "https://a.example,https://b.example"),
    )
    assert isinstance(listed, ASGIApplication)
    assert listed.websocket_config.allowed_origins == ("https://a.example", "https://b.example")


def test_forwarded_allow_ips_from_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    app = Spikard()
    served = resolve_app(app, "target:app", parsed("--forwarded-allow-ips", "10.0.0.0/8, ::1"))
    assert served is app
    assert app.http_config.forwarded_allow_ips == ("10.0.0.0/8", "::1")
    adapter = resolve_app(echo_app, "target:app", parsed("--forwarded-allow-ips", "*"))
    assert isinstance(adapter, ASGIApplication)
    assert adapter.http_config.forwarded_allow_ips == ("*",)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "192.0.2.1")
    assert build_parser().parse_args(["t:app"]).forwarded_allow_ips == ("192.0.2.1",)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["t:app", "--forwarded-allow-ips", "localhost"])
