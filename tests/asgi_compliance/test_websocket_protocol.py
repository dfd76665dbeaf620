"""WebSocket protocol errors (RFC 6455) and the server's WebSocket options (uvicorn's names)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time

import pytest
from websockets.sync.client import connect
from websockets.typing import Origin

from ..helpers import close_code, parse_server_frames
from .conftest import RAW, Pool
from .servers import Certificates, Target
from .test_websocket import BINARY, CLOSE, CONTINUATION, PING, TEXT, Raw
from .wire import Reader, request


def close_of(client: Raw) -> int | None:
    frames = client.frames(1)
    assert frames, "no close frame before EOF"
    assert frames[0][0] == CLOSE
    return close_code(frames[0][1])


def test_continuation_without_start_closes_1002(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(CONTINUATION, b"orphan")
        assert close_of(client) == 1002


def test_new_data_frame_inside_a_fragmented_message_closes_1002(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(TEXT, b"start", fin=False)
        client.send(BINARY, b"interleaved")
        assert close_of(client) == 1002


def test_fragmented_ping_closes_1002(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(PING, b"split", fin=False)
        assert close_of(client) == 1002


def test_oversized_control_frame_closes_1002(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(PING, b"p" * 126)
        assert close_of(client) == 1002


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2999, 5000])
def test_invalid_close_code_from_the_client_closes_1002(raw: Target, code: int) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(CLOSE, code.to_bytes(2, "big"))
        assert close_of(client) == 1002


def test_one_byte_close_payload_closes_1002(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(CLOSE, b"\x03")
        assert close_of(client) == 1002


def test_invalid_utf8_close_reason_closes_1007(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(CLOSE, (1000).to_bytes(2, "big") + b"\xff")
        assert close_of(client) in (1002, 1007)


def test_invalid_utf8_across_fragments_closes_1007(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(TEXT, b"ok \xe2\x82", fin=False)
        client.send(CONTINUATION, b"\xff", fin=True)
        assert close_of(client) == 1007


def test_utf8_split_across_fragments_is_fine(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(TEXT, b"euro \xe2\x82", fin=False)
        client.send(CONTINUATION, b"\xac", fin=True)
        assert client.frames(1) == [(TEXT, "euro €".encode())]


def test_permessage_deflate_is_negotiated_by_default(raw: Target) -> None:
    with connect(raw.ws_url("/ws/echo"), **raw.ws_options()) as ws:
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers.get("sec-websocket-extensions", "")
        ws.send("compressible " * 1000)
        assert ws.recv(timeout=5) == "compressible " * 1000


def test_no_extension_when_none_offered(raw: Target) -> None:
    with connect(raw.ws_url("/ws/echo"), compression=None, **raw.ws_options()) as ws:
        assert ws.response is not None
        assert "sec-websocket-extensions" not in ws.response.headers


def test_default_max_size_is_16_mib(raw: Target) -> None:
    with connect(raw.ws_url("/ws/echo"), compression=None, **raw.ws_options()) as ws:
        ws.send(b"a" * (16 * 1024 * 1024))
        assert len(ws.recv(timeout=20)) == 16 * 1024 * 1024


def test_cross_origin_handshake_is_left_to_the_app(raw: Target) -> None:
    origin = Origin("http://elsewhere.example")
    with connect(raw.ws_url("/ws/echo"), origin=origin, **raw.ws_options()) as ws:
        ws.send("from afar")
        assert ws.recv(timeout=5) == "from afar"


def test_ws_max_size_option_closes_1009(pool: Pool, kind: str) -> None:
    target = pool.get(RAW, kind, ("--ws-max-size", "1000"))
    with connect(target.ws_url("/ws/echo"), compression=None, **target.ws_options()) as ws:
        ws.send(b"b" * 1000)
        assert ws.recv(timeout=5) == b"b" * 1000
    with target.raw() as sock:
        client = Raw(sock, target.port, "/ws/echo")
        client.send(BINARY, b"b" * 1001)
        assert close_of(client) == 1009


def test_ws_per_message_deflate_false(pool: Pool, kind: str) -> None:
    target = pool.get(RAW, kind, ("--ws-per-message-deflate", "false"))
    with connect(target.ws_url("/ws/echo"), **target.ws_options()) as ws:
        assert ws.response is not None
        assert "sec-websocket-extensions" not in ws.response.headers


def test_ws_ping_interval_sends_pings(pool: Pool, kind: str) -> None:
    target = pool.get(RAW, kind, ("--ws-ping-interval", "0.3", "--ws-ping-timeout", "5"))
    with target.raw() as sock:
        client = Raw(sock, target.port, "/ws/echo")
        started = time.monotonic()
        frames = client.frames(1)
        assert frames[0][0] == PING
        assert time.monotonic() - started < 3


def test_ws_ping_timeout_closes_an_unanswering_client(pool: Pool, kind: str) -> None:
    target = pool.get(RAW, kind, ("--ws-ping-interval", "0.3", "--ws-ping-timeout", "0.3"))
    with target.raw(timeout=5) as sock:
        Raw(sock, target.port, "/ws/echo")
        started = time.monotonic()
        while True:  # never answer the pings; the server gives up within a few seconds
            data = sock.recv(65536)
            if not data or any(op == CLOSE for op, _ in client_frames(data)):
                break
            assert time.monotonic() - started < 5
    assert time.monotonic() - started < 5


def client_frames(data: bytes) -> list[tuple[int, bytes]]:
    return parse_server_frames(data)


def test_upgrade_after_keep_alive_requests_on_one_connection(raw: Target) -> None:
    with raw.raw() as sock:
        sock.sendall(request("GET", "/method"))
        reader = Reader(sock)
        assert reader.response().body == b"GET 0"
        client = Raw(sock, raw.port, "/ws/echo", reader=reader)
        assert client.status == 101
        client.send(TEXT, b"after http")
        assert client.frames(1) == [(TEXT, b"after http")]


def test_tls_alpn_offering_h2_gets_http_1_1(raw: Target, certs: Certificates) -> None:
    if not raw.tls:
        pytest.skip("TLS only")
    context = ssl.create_default_context(cafile=str(certs.cafile))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", raw.port), timeout=5) as plain,
        context.wrap_socket(plain, server_hostname="127.0.0.1") as secure,
    ):
        assert secure.selected_alpn_protocol() in (None, "http/1.1")
        secure.sendall(request("GET", "/method"))
        assert Reader(secure).response().body == b"GET 0"


def test_plain_http_on_the_tls_port_does_not_hurt(raw: Target) -> None:
    if not raw.tls:
        pytest.skip("TLS only")
    with socket.create_connection(("127.0.0.1", raw.port), timeout=5) as plain:
        plain.sendall(request("GET", "/method"))
        with contextlib.suppress(OSError):
            plain.recv(65536)
    with raw.http() as client:
        assert client.get("/method").text == "GET 0"


def test_failed_tls_handshake_does_not_hurt(raw: Target) -> None:
    if not raw.tls:
        pytest.skip("TLS only")
    distrusting = ssl.create_default_context()  # does not trust the test authority
    plain = socket.create_connection(("127.0.0.1", raw.port), timeout=5)
    with plain, pytest.raises(ssl.SSLError):
        distrusting.wrap_socket(plain, server_hostname="127.0.0.1")
    with raw.http() as client:
        assert client.get("/method").text == "GET 0"
