"""``HTTPConfig.allowed_hosts``: requests for other ``Host`` names get 400 (DNS rebinding)."""

from __future__ import annotations

import logging

import pytest

from spikard import HandshakeRejected, HTTPConfig, Spikard, WebSocket
from spikard.protocol.hosts import HostMatcher

pytestmark = pytest.mark.anyio


def build_app(allowed: tuple[str, ...] | None) -> Spikard:
    app = Spikard(http=HTTPConfig(allowed_hosts=allowed))

    @app.get("/")
    def index() -> str:
        return "ok"

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.send("hi")

    return app


async def test_any_host_by_default() -> None:
    async with build_app(None).test_server() as server:
        reply = await server.request("GET", "/", headers={"host": "anything.example"})
        assert reply.text == "ok"


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1", 200),
        ("127.0.0.1:8000", 200),
        ("app.example.com", 200),
        ("APP.example.com.", 200),
        ("a.b.example.com:443", 200),
        ("example.com", 400),  # the pattern is for subdomains only
        ("evil.example", 400),
        ("", 400),
    ],
)
async def test_listed_hosts_only(host: str, status: int) -> None:
    app = build_app(("127.0.0.1", "*.example.com"))
    async with app.test_server() as server:
        reply = await server.request("GET", "/", headers={"host": host})
        assert reply.status == status


async def test_a_websocket_handshake_for_another_host_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = build_app(("localhost",))
    with caplog.at_level(logging.INFO, logger="spikard.http"):
        async with app.test_server() as server:
            with pytest.raises(HandshakeRejected) as refused:
                async with server.connect("/ws"):  # Host: 127.0.0.1:PORT
                    pass
    assert refused.value.status_code == 400
    lines = [r.getMessage() for r in caplog.records if "allowed_hosts" in r.getMessage()]
    assert len(lines) == 1


def test_entries_are_checked_when_the_config_is_made() -> None:
    for bad in ("https://example.com", "example.com:80", "ex*ample.com", ""):
        with pytest.raises(ValueError, match="allowed_hosts"):
            HTTPConfig(allowed_hosts=(bad,))
    with pytest.raises(TypeError):
        HostMatcher("example.com")


def test_ipv6_and_star() -> None:
    matcher = HostMatcher(("[::1]",))
    assert matcher("[::1]:8000")
    assert not matcher("[::2]")
    assert HostMatcher(("*",))("whatever")
