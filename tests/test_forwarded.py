"""Trusted proxies: ``Forwarded`` / ``X-Forwarded-*`` believed only from ``forwarded_allow_ips``.

Unit tests of the sans-I/O resolution, then real sockets: the client address a handler, the
access log and the same-origin check see, from a trusted peer and from an untrusted one
(another loopback address, 127.0.0.2).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spikard import HandshakeRejected, HTTPConfig, Request, Spikard, WebSocket
from spikard.datastructures import Address, Headers
from spikard.protocol.forwarded import TrustedProxies, resolve

pytestmark = pytest.mark.anyio

PROXY = Address("10.0.0.1", 5000)
TRUSTED = TrustedProxies(("10.0.0.0/8", "::1"))


def forwarded(**headers: str) -> Any:
    pairs = [(name.replace("_", "-"), value) for name, value in headers.items()]
    return resolve(Headers(pairs), PROXY, "http", TRUSTED)


def test_x_forwarded_for_takes_the_rightmost_untrusted_address() -> None:
    result = forwarded(x_forwarded_for="6.6.6.6, 203.0.113.7, 10.0.0.2")
    assert result.client == Address("203.0.113.7", 0)
    assert result.scheme == "http"
    assert result.host is None


def test_every_entry_trusted_gives_the_leftmost() -> None:
    assert forwarded(x_forwarded_for="10.1.1.1, 10.0.0.2").client.host == "10.1.1.1"


def test_proto_and_host_line_up_with_the_client() -> None:
    result = forwarded(
        x_forwarded_for="203.0.113.7, 10.0.0.2",
        x_forwarded_proto="https, http",
        x_forwarded_host="public.example, internal",
    )
    assert (result.scheme, result.host) == ("https", "public.example")
    single = forwarded(x_forwarded_for="203.0.113.7", x_forwarded_proto="https")
    assert single.scheme == "https"
    nonsense = forwarded(x_forwarded_proto="gopher")
    assert nonsense.scheme == "http"
    assert nonsense.client == PROXY


def test_rfc_7239_forwarded_wins_over_x_forwarded() -> None:
    result = forwarded(
        forwarded='for="[2001:db8::7]:4711";proto=https;host="public.example", for=10.0.0.2',
        x_forwarded_for="6.6.6.6",
    )
    assert result.client == Address("2001:db8::7", 4711)
    assert (result.scheme, result.host) == ("https", "public.example")
    hidden = forwarded(forwarded="for=_hidden;proto=https")
    assert hidden.client == PROXY  # an obfuscated node is no address: the peer stays
    assert hidden.scheme == "https"


def test_an_untrusted_peer_is_never_believed() -> None:
    headers = Headers([("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=1.2.3.4")])
    assert resolve(headers, Address("192.0.2.9", 1), "http", TRUSTED) is None
    assert resolve(headers, None, "http", TRUSTED) is None
    assert resolve(Headers([]), PROXY, "http", TRUSTED) is None


def test_star_and_bad_entries() -> None:
    assert TrustedProxies(("*",))("192.0.2.1")
    assert TrustedProxies(("::1",))("::ffff:127.0.0.1") is False
    assert TrustedProxies(("127.0.0.1",))("::ffff:127.0.0.1")
    with pytest.raises(ValueError, match="forwarded_allow_ips"):
        HTTPConfig(forwarded_allow_ips=("localhost",))
    with pytest.raises(TypeError):
        TrustedProxies("127.0.0.1")


@given(st.text(max_size=200), st.text(max_size=200), st.text(max_size=60))
def test_any_header_text_resolves_without_raising(
    forwarded_value: str, xff: str, proto: str
) -> None:
    headers = Headers(
        [("forwarded", forwarded_value), ("x-forwarded-for", xff), ("x-forwarded-proto", proto)]
    )
    result = resolve(headers, PROXY, "https", TRUSTED)
    if result is not None:  # None: the headers said nothing usable
        assert result.scheme in ("http", "https")
        assert result.client is not None


def build_app(trusted: tuple[str, ...] = ("127.0.0.1",)) -> Spikard:
    app = Spikard(http=HTTPConfig(forwarded_allow_ips=trusted))

    @app.get("/whoami")
    def whoami(request: Request) -> dict[str, Any]:
        client = request.client
        return {
            "client": client.host if client else None,
            "scheme": request.scheme,
            "url": request.url,
        }

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.send(socket.client.host if socket.client else "")

    return app


PROXIED = {
    "x-forwarded-for": "203.0.113.7",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "public.example",
}


async def test_a_trusted_peer_sets_client_scheme_and_url(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="spikard.access"):
        async with build_app().test_server() as server:
            reply = await server.request("GET", "/whoami?x=1", headers=PROXIED)
    assert reply.json() == {
        "client": "203.0.113.7",
        "scheme": "https",
        "url": "https://public.example/whoami?x=1",
    }
    assert any(r.getMessage().startswith("203.0.113.7:0 - ") for r in caplog.records)


async def test_forged_headers_from_an_untrusted_peer_are_ignored() -> None:
    async with build_app().test_server() as server:
        reply = await server.request("GET", "/whoami", headers=PROXIED, local_host="127.0.0.2")
        assert reply.json()["client"] == "127.0.0.2"
        assert reply.json()["scheme"] == "http"
        assert reply.json()["url"].startswith(f"http://127.0.0.1:{server.port}/")
    async with build_app(trusted=()).test_server() as server:
        assert (await server.request("GET", "/whoami", headers=PROXIED)).json()[
            "client"
        ] == "127.0.0.1"


async def test_same_origin_sees_the_scheme_and_host_through_the_proxy() -> None:
    async with build_app().test_server() as server:
        headers = {**PROXIED, "origin": "https://public.example"}
        async with server.connect("/ws", headers=headers) as ws:
            assert await ws.receive_text() == "203.0.113.7"
        with pytest.raises(HandshakeRejected) as refused:  # the same, not through a proxy
            async with server.connect("/ws", headers=headers, local_host="127.0.0.2"):
                pass
        assert refused.value.status_code == 403
