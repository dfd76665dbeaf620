"""The RFC 6455 opening handshake, sans-I/O: ``read_offer`` and ``accept_response``."""

from __future__ import annotations

import base64

import h11
import pytest

from spikard.datastructures import Headers
from spikard.errors import HandshakeRejected
from spikard.protocol.handshake import (
    HandshakeOffer,
    accept_response,
    is_websocket_upgrade,
    read_offer,
)

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def handshake_headers(**overrides: str | None) -> Headers:
    """A valid upgrade request's headers; ``name=None`` removes a field, ``name="v"`` sets it."""
    fields = {
        "host": "example.com",
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-key": RFC_KEY,
        "sec-websocket-version": "13",
    }
    for name, value in overrides.items():
        name = name.replace("_", "-")
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return Headers(fields.items())


def rejection(
    method: str = "GET", version: str = "1.1", **overrides: str | None
) -> HandshakeRejected:
    with pytest.raises(HandshakeRejected) as caught:
        read_offer(method, version, handshake_headers(**overrides))
    return caught.value


def parse_101(response: bytes) -> h11.InformationalResponse:
    """Parse ``response`` with h11's client; fails unless it is well-formed HTTP/1.1."""
    client = h11.Connection(h11.CLIENT)
    client.send(
        h11.Request(
            method="GET",
            target="/",
            headers=[("Host", "example.com"), ("Upgrade", "websocket"), ("Connection", "Upgrade")],
        )
    )
    client.send(h11.EndOfMessage())
    client.receive_data(response)
    event = client.next_event()
    assert isinstance(event, h11.InformationalResponse)
    assert client.their_state is h11.SWITCHED_PROTOCOL
    assert client.trailing_data == (b"", False)
    return event


def header_map(event: h11.InformationalResponse) -> dict[bytes, bytes]:
    return dict(event.headers)


# ---- is_websocket_upgrade ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["websocket", "WebSocket", "foo, websocket", " websocket "])
def test_is_websocket_upgrade(value: str) -> None:
    assert is_websocket_upgrade(handshake_headers(upgrade=value))


@pytest.mark.parametrize("value", [None, "h2c", "websockets", ""])
def test_is_not_websocket_upgrade(value: str | None) -> None:
    assert not is_websocket_upgrade(handshake_headers(upgrade=value))


# ---- read_offer: valid -------------------------------------------------------------------------


def test_read_offer_accepts_a_valid_handshake() -> None:
    offer = read_offer("GET", "1.1", handshake_headers())
    assert offer == HandshakeOffer(key=RFC_KEY.encode(), subprotocols=(), extensions=())


def test_read_offer_collects_subprotocols_and_extensions_in_order() -> None:
    headers = Headers(
        [
            *handshake_headers().multi_items(),
            ("Sec-WebSocket-Protocol", "chat, superchat"),
            ("sec-websocket-protocol", " v2.rpc "),
            ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits, x-foo"),
        ]
    )
    offer = read_offer("GET", "1.1", headers)
    assert offer.subprotocols == ("chat", "superchat", "v2.rpc")
    assert offer.extensions == ("permessage-deflate; client_max_window_bits", "x-foo")


@pytest.mark.parametrize("connection", ["Upgrade", "upgrade", "keep-alive, Upgrade", "UPGRADE "])
def test_read_offer_connection_token_is_case_insensitive(connection: str) -> None:
    offer = read_offer("GET", "1.1", handshake_headers(connection=connection))
    assert offer.key == RFC_KEY.encode()


def test_read_offer_strips_key_whitespace() -> None:
    offer = read_offer("GET", "1.1", handshake_headers(sec_websocket_key=f"  {RFC_KEY} "))
    assert offer.key == RFC_KEY.encode()


# ---- read_offer: rejections --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "HEAD", "PUT", "get"])
def test_read_offer_rejects_non_get(method: str) -> None:
    assert rejection(method=method).status_code == 400


@pytest.mark.parametrize("version", ["1.0", "2", "0.9"])
def test_read_offer_rejects_other_http_versions(version: str) -> None:
    assert rejection(version=version).status_code == 400


@pytest.mark.parametrize("connection", [None, "keep-alive", "close", "upgrades"])
def test_read_offer_needs_connection_upgrade(connection: str | None) -> None:
    assert rejection(connection=connection).status_code == 400


@pytest.mark.parametrize(
    "key",
    [
        None,
        "",
        "not base64!",
        base64.b64encode(b"x" * 15).decode(),  # decodes to 15 bytes
        base64.b64encode(b"x" * 17).decode(),  # 17 bytes
        base64.b64encode(b"x" * 32).decode(),
        RFC_KEY[:-2],  # broken padding
        "dGhlIHNhbXBsZSBub25jZQé=",  # not ASCII
    ],
)
def test_read_offer_rejects_missing_or_invalid_key(key: str | None) -> None:
    error = rejection(sec_websocket_key=key)
    assert error.status_code == 400
    assert "Sec-WebSocket-Key" in str(error.body)


def test_read_offer_rejects_two_keys() -> None:
    headers = Headers([*handshake_headers().multi_items(), ("Sec-WebSocket-Key", RFC_KEY)])
    with pytest.raises(HandshakeRejected) as caught:
        read_offer("GET", "1.1", headers)
    assert caught.value.status_code == 400


@pytest.mark.parametrize("version", [None, "8", "7", "12", "14", "13, 8", ""])
def test_read_offer_answers_426_to_unsupported_versions(version: str | None) -> None:
    error = rejection(sec_websocket_version=version)
    assert error.status_code == 426
    assert error.headers["sec-websocket-version"] == "13"


# ---- accept_response ---------------------------------------------------------------------------


def test_accept_token_of_the_rfc_example() -> None:
    response = accept_response(read_offer("GET", "1.1", handshake_headers()))
    event = parse_101(response)
    assert event.status_code == 101
    headers = header_map(event)
    assert headers[b"sec-websocket-accept"] == RFC_ACCEPT.encode()
    assert headers[b"upgrade"].lower() == b"websocket"
    assert headers[b"connection"].lower() == b"upgrade"
    assert b"sec-websocket-protocol" not in headers
    assert b"sec-websocket-extensions" not in headers


def test_accept_response_with_subprotocol_and_headers() -> None:
    offer = HandshakeOffer(key=RFC_KEY.encode(), subprotocols=("chat", "rpc"), extensions=())
    response = accept_response(offer, subprotocol="rpc", headers={"X-Server": "spikard"})
    headers = header_map(parse_101(response))
    assert headers[b"sec-websocket-protocol"] == b"rpc"
    assert headers[b"x-server"] == b"spikard"


def test_accept_response_rejects_a_subprotocol_not_offered() -> None:
    offer = HandshakeOffer(key=RFC_KEY.encode(), subprotocols=("chat",), extensions=())
    with pytest.raises(ValueError, match="not offered"):
        accept_response(offer, subprotocol="rpc")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Bad": "a\r\nSet-Cookie: x=1"},
        {"X-Bad": "a\nb"},
        {"X-Bad": "a\rb"},
        {"X-Bad\r\nSet-Cookie": "x"},
        {"X-Bad\n": "x"},
    ],
)
def test_accept_response_rejects_cr_lf_in_headers(headers: dict[str, str]) -> None:
    offer = HandshakeOffer(key=RFC_KEY.encode(), subprotocols=(), extensions=())
    with pytest.raises(ValueError, match="CR or LF"):
        accept_response(offer, headers=headers)


@pytest.mark.parametrize(
    ("headers", "extensions"),
    [
        ({"X Bad": "v"}, None),
        ({"X-Bad:": "v"}, None),
        ({"": "v"}, None),
        (None, "permessage-deflate\r\nSet-Cookie: x=1"),
    ],
)
def test_accept_response_rejects_malformed_header_fields(
    headers: dict[str, str] | None, extensions: str | None
) -> None:
    offer = HandshakeOffer(key=RFC_KEY.encode(), subprotocols=(), extensions=())
    with pytest.raises(ValueError):  # noqa: PT011 - any message will do
        accept_response(offer, headers=headers, extensions=extensions)
