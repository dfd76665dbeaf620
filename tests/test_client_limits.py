"""Per-client WebSocket limits: open sockets and handshake rate per client address (429)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
import pytest

from spikard import HandshakeRejected, Spikard, WebSocket, WebSocketConfig, WebSocketMessage
from spikard.connection.client_limits import MAX_ENTRIES, SWEEP_AT, ClientLimits, client_key

pytestmark = pytest.mark.anyio


def test_open_sockets_are_counted_and_released() -> None:
    limits = ClientLimits()
    assert limits.admit("a", 0.0, max_open=2, rate=None, burst=1) is None
    assert limits.admit("a", 0.0, max_open=2, rate=None, burst=1) is None
    refused = limits.admit("a", 0.0, max_open=2, rate=None, burst=1)
    assert refused is not None
    assert refused.reason == "open WebSockets"
    assert refused.first
    again = limits.admit("a", 0.0, max_open=2, rate=None, burst=1)
    assert again is not None
    assert not again.first  # logged once per episode
    assert limits.admit("b", 0.0, max_open=2, rate=None, burst=1) is None  # another client
    limits.release("a")
    assert limits.admit("a", 0.0, max_open=2, rate=None, burst=1) is None


def test_the_handshake_bucket_refills_at_the_rate() -> None:
    limits = ClientLimits()
    for _ in range(3):
        assert limits.admit("a", 10.0, max_open=None, rate=2.0, burst=3) is None
    refused = limits.admit("a", 10.0, max_open=None, rate=2.0, burst=3)
    assert refused is not None
    assert refused.reason == "handshake rate"
    assert refused.retry_after == 1
    assert limits.admit("a", 10.4, max_open=None, rate=2.0, burst=3) is not None  # 0.8 token
    assert limits.admit("a", 10.5, max_open=None, rate=2.0, burst=3) is None  # 1 token
    slow = ClientLimits()
    assert slow.admit("a", 0.0, max_open=None, rate=0.1, burst=1) is None
    late = slow.admit("a", 0.0, max_open=None, rate=0.1, burst=1)
    assert late is not None
    assert late.retry_after == 10


def test_ipv6_clients_are_grouped_by_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert client_key("192.0.2.7") == "192.0.2.7"


def test_the_table_stays_bounded_under_a_flood_of_addresses() -> None:
    limits = ClientLimits()
    now = 0.0
    for n in range(3 * SWEEP_AT):
        now += 1.0  # each bucket is full again long before the sweep
        limits.admit(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}", now, max_open=5, rate=200, burst=2)
        limits.release(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}")
    assert len(limits) <= SWEEP_AT
    held = ClientLimits()  # addresses that keep a socket open are never dropped
    for n in range(SWEEP_AT + 10):
        held.admit(f"h{n}", 0.0, max_open=5, rate=None, burst=1)
    assert len(held) == SWEEP_AT + 10
    assert MAX_ENTRIES > SWEEP_AT


def build_app(**config: object) -> Spikard:
    app = Spikard(websocket=WebSocketConfig(**config))  # type: ignore[arg-type]

    @app.websocket("/echo")
    async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        async for message in socket:
            yield message

    return app


async def refused_with(server: object, **options: object) -> HandshakeRejected:
    with pytest.raises(HandshakeRejected) as refused:
        async with server.connect("/echo", **options):  # type: ignore[attr-defined]
            pass
    return refused.value


async def test_a_client_may_hold_max_connections_per_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = build_app(max_connections_per_client=2)
    with caplog.at_level(logging.INFO):
        async with app.test_server() as server:
            async with server.connect("/echo"), server.connect("/echo"):
                refused = await refused_with(server)
                assert refused.status_code == 429
                assert refused.headers["retry-after"] == "1"
                await refused_with(server)
                async with server.connect("/echo", local_host="127.0.0.2") as other:
                    await other.send("another client")
                    assert await other.receive_text() == "another client"
            with anyio.fail_after(5):  # the slots come back when the sockets end
                while True:
                    try:
                        async with server.connect("/echo") as ws:
                            await ws.send("room again")
                            assert await ws.receive_text() == "room again"
                        break
                    except HandshakeRejected:
                        await anyio.sleep(0.02)
    warnings = [r for r in caplog.records if "max_connections_per_client" in r.getMessage()]
    assert len(warnings) == 1  # two refusals, one line
    access = [r.getMessage() for r in caplog.records if r.name == "spikard.access"]
    assert sum(line.endswith(" 429") for line in access) == 2


async def test_the_handshake_rate_answers_429_with_retry_after() -> None:
    app = build_app(handshake_rate=4.0, handshake_burst=3)
    async with app.test_server() as server:
        for _ in range(3):
            async with server.connect("/echo"):
                pass
        refused = await refused_with(server)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        await anyio.sleep(0.3)  # 1.2 tokens
        async with server.connect("/echo") as ws:
            await ws.send("later")
            assert await ws.receive_text() == "later"


async def test_limits_count_the_forwarded_client_behind_a_trusted_proxy() -> None:
    app = build_app(max_connections_per_client=1)
    async with app.test_server() as server:  # 127.0.0.1 is trusted by default
        first = {"x-forwarded-for": "203.0.113.1"}
        async with server.connect("/echo", headers=first):
            assert (await refused_with(server, headers=first)).status_code == 429
            async with server.connect("/echo", headers={"x-forwarded-for": "203.0.113.2"}):
                pass


async def test_none_turns_both_limits_off() -> None:
    app = build_app(max_connections_per_client=None, handshake_rate=None, handshake_burst=1)
    async with app.test_server() as server:
        for _ in range(5):
            async with server.connect("/echo"):
                pass


def test_the_defaults_and_their_checks() -> None:
    config = WebSocketConfig()
    assert config.per_client_limit == 1000
    assert config.handshake_rate == 200.0
    assert config.handshake_burst == 1000
    assert WebSocketConfig(max_connections=5).per_client_limit == 1
    with pytest.raises(ValueError, match="max_connections_per_client"):
        WebSocketConfig(max_connections_per_client=0)
    with pytest.raises(TypeError):
        WebSocketConfig(max_connections_per_client="many")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="handshake_rate"):
        WebSocketConfig(handshake_rate=0)
