"""WebSocket (RFC 6455) and the ASGI ``websocket`` messages: handshake, data, close codes."""

from __future__ import annotations

import json
import signal
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from ..helpers import close_code, masked_frame, parse_server_frames, upgrade_request
from .conftest import RAW
from .registry import wait_for
from .servers import Certificates, Target, start
from .wire import Reader

TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


def key() -> str:
    return uuid.uuid4().hex


def ws(target: Target, path: str, **kwargs: Any) -> ClientConnection:
    options: dict[str, Any] = {**target.ws_options(), **kwargs}
    connection: ClientConnection = connect(target.ws_url(path), **options)
    return connection


def refusal(target: Target, path: str, **kwargs: Any) -> Any:
    with pytest.raises(InvalidStatus) as refused, ws(target, path, **kwargs):
        pass  # pragma: no cover - the handshake is refused
    return refused.value.response


def closed_with(connection: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the server closes; the close frame's code and reason (None without one)."""
    try:
        for _ in range(1000):
            connection.recv(timeout=5)
    except ConnectionClosed:
        received = connection.protocol.close_rcvd
        return (received.code, received.reason) if received else (None, None)
    raise AssertionError("the server never closed")


class Raw:
    """An upgraded socket driven frame by frame."""

    def __init__(
        self,
        sock: socket.socket,
        port: int,
        path: str,
        extra: str = "",
        reader: Reader | None = None,
    ) -> None:
        self.sock = sock
        sock.sendall(upgrade_request(path, port=port, extra=extra))
        self.reader = reader or Reader(sock)
        head = self.reader.until(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        self.head = head

    def send(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        self.sock.sendall(masked_frame(opcode, payload, fin=fin))

    def frames(self, count: int) -> list[tuple[int, bytes]]:
        """Read until ``count`` whole frames arrived (bounded by the socket timeout)."""
        data = self.reader.buffer
        self.reader.buffer = b""
        while len(parse_server_frames(data)) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return parse_server_frames(data)[:count]


# handshake ----------------------------------------------------------------------------------


def test_accept_plain(raw: Target) -> None:
    with ws(raw, "/ws/echo") as connection:
        assert connection.subprotocol is None
        connection.send("hi")
        assert connection.recv(timeout=5) == "hi"


def test_accept_with_subprotocol(raw: Target) -> None:
    offer = [Subprotocol("one"), Subprotocol("two")]
    with ws(raw, "/ws/echo?pick=two", subprotocols=offer) as connection:
        assert connection.subprotocol == "two"
        assert connection.response is not None
        assert connection.response.headers["sec-websocket-protocol"] == "two"


def test_no_subprotocol_when_the_app_picks_none(raw: Target) -> None:
    with ws(raw, "/ws/echo", subprotocols=[Subprotocol("one")]) as connection:
        assert connection.subprotocol is None
        assert connection.response is not None
        assert "sec-websocket-protocol" not in connection.response.headers


def test_accept_with_extra_headers(raw: Target) -> None:
    with ws(raw, "/ws/echo?headers=1") as connection:
        assert connection.response is not None
        headers = connection.response.headers
        assert headers["x-accepted"] == "yes"
        assert headers["set-cookie"] == "ws=1"


def test_handshake_response_is_101_with_accept_key(raw: Target) -> None:
    with raw.raw() as sock:
        handshake = Raw(sock, raw.port, "/ws/echo", extra="")
    assert handshake.status == 101
    assert b"sec-websocket-accept:" in handshake.head.lower()


def test_firefox_style_connection_header(raw: Target) -> None:
    """``Connection: keep-alive, Upgrade`` and ``Upgrade: WebSocket`` (tokens, any case)."""
    data = upgrade_request("/ws/echo", port=raw.port).replace(
        b"Upgrade: websocket\r\nConnection: Upgrade",
        b"Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade",
    )
    with raw.raw() as sock:
        sock.sendall(data)
        head = Reader(sock).until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")


def test_subprotocols_over_several_header_lines(raw: Target) -> None:
    extra = "Sec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Protocol: c\r\n"
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/scope", extra=extra)
        frames = client.frames(1)
    scope = json.loads(frames[0][1])
    assert scope["subprotocols"] == ["a", "b", "c"]


def test_bad_websocket_version_is_refused(raw: Target) -> None:
    with raw.raw() as sock:
        sock.sendall(upgrade_request("/ws/echo", port=raw.port, version="8"))
        response = Reader(sock).response()
    assert response.status in (400, 426)


def test_missing_key_is_refused(raw: Target) -> None:
    data = (
        b"GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with raw.raw() as sock:
        sock.sendall(data)
        reader = Reader(sock)
        try:
            response = reader.response()
        except (EOFError, ConnectionError):
            return
    assert 400 <= response.status < 500


def test_close_before_accept_is_403(raw: Target) -> None:
    assert refusal(raw, "/ws/close-before-accept").status_code == 403


def test_http_response_denial(raw: Target) -> None:
    response = refusal(raw, "/ws/deny")
    assert response.status_code == 401
    assert response.headers["x-denied"] == "1"
    assert response.body == b"denied"


def test_raise_before_accept_is_500(raw: Target) -> None:
    assert refusal(raw, "/ws/raise-before").status_code == 500


def test_return_before_accept_is_refused(raw: Target) -> None:
    assert refusal(raw, "/ws/return-before").status_code in (403, 500)


def test_send_before_accept_is_an_app_error(raw: Target) -> None:
    name = key()
    assert refusal(raw, f"/ws/send-before-accept?key={name}").status_code in (403, 500)
    with raw.http() as client:
        assert wait_for(client, name)[0].startswith("raised")


def test_unknown_route_closed_before_accept(raw: Target) -> None:
    assert refusal(raw, "/ws/nowhere").status_code == 403


def test_accept_twice_is_an_app_error(raw: Target) -> None:
    name = key()
    with ws(raw, f"/ws/accept-twice?key={name}") as connection:
        code, _ = closed_with(connection)
    assert code in (1011, 1006, None)
    with raw.http() as client:
        assert wait_for(client, name)[0].startswith("raised")


# messages -----------------------------------------------------------------------------------


def test_text_both_ways(raw: Target) -> None:
    with ws(raw, "/ws/echo") as connection:
        for text in ("a", "é ü ∑", "x" * 1000):
            connection.send(text)
            assert connection.recv(timeout=5) == text


def test_bytes_both_ways(raw: Target) -> None:
    with ws(raw, "/ws/echo") as connection:
        for data in (b"\x00", bytes(range(256)), b"\xff" * 70000):
            connection.send(data)
            assert connection.recv(timeout=5) == data


def test_app_sends_text_and_bytes_frames(raw: Target) -> None:
    with ws(raw, "/ws/types") as connection:
        first = connection.recv(timeout=5)
        second = connection.recv(timeout=5)
    assert first == "text frame"
    assert second == b"\x00\x01binary"


def test_empty_messages(raw: Target) -> None:
    with ws(raw, "/ws/echo") as connection:
        connection.send("")
        assert connection.recv(timeout=5) == ""
        connection.send(b"")
        assert connection.recv(timeout=5) == b""


@pytest.mark.parametrize("size", [125, 126, 65535, 65536, 4 << 20])
def test_large_messages(raw: Target, size: int) -> None:
    with ws(raw, "/ws/echo") as connection:
        payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        connection.send(payload)
        assert connection.recv(timeout=10) == payload


def test_many_messages_in_order(raw: Target) -> None:
    with ws(raw, "/ws/count?n=500") as connection:
        received = [connection.recv(timeout=5) for _ in range(500)]
        code, _ = closed_with(connection)
    assert received == [str(n) for n in range(500)]
    assert code == 1000


def test_burst_of_small_messages_both_ways(raw: Target) -> None:
    with ws(raw, "/ws/echo") as connection:
        for number in range(1000):
            connection.send(f"m{number}" if number % 2 else f"m{number}".encode())
        received = [connection.recv(timeout=10) for _ in range(1000)]
    assert received == [f"m{n}" if n % 2 else f"m{n}".encode() for n in range(1000)]


def test_burst_of_raw_frames_in_one_write(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        sock.sendall(b"".join(masked_frame(TEXT, b"%d" % n) for n in range(300)))
        frames = client.frames(300)
    assert frames == [(TEXT, b"%d" % n) for n in range(300)]


def test_fragmented_text_is_one_message(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(TEXT, b"frag", fin=False)
        client.send(CONTINUATION, b"men", fin=False)
        client.send(CONTINUATION, b"ted", fin=True)
        frames = client.frames(1)
    assert [(op, data) for op, data in frames] == [(TEXT, b"fragmented")]


def test_fragmented_binary_with_ping_between(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(BINARY, b"\x01\x02", fin=False)
        client.send(PING, b"mid")
        client.send(CONTINUATION, b"\x03", fin=True)
        frames = client.frames(2)
    assert (PONG, b"mid") in frames
    assert (BINARY, b"\x01\x02\x03") in frames


def test_ping_answered_by_the_server(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(PING, b"are you there")
        assert client.frames(1) == [(PONG, b"are you there")]


def test_client_library_ping_pong(raw: Target) -> None:
    with ws(raw, "/ws/echo") as connection:
        assert connection.ping(b"p").wait(5)


def test_unsolicited_pong_is_ignored(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(PONG, b"unasked")
        client.send(TEXT, b"still here")
        assert client.frames(1) == [(TEXT, b"still here")]


def test_invalid_utf8_closes_1007(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(TEXT, b"\xff\xfe")
        frames = client.frames(1)
    assert frames[0][0] == CLOSE
    assert close_code(frames[0][1]) == 1007


def test_unmasked_frame_closes_1002(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        sock.sendall(bytes([0x81, 0x02]) + b"hi")
        frames = client.frames(1)
    if frames:
        assert frames[0][0] == CLOSE
        assert close_code(frames[0][1]) == 1002


def test_reserved_opcode_closes_1002(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(0x3, b"?")
        frames = client.frames(1)
    assert frames[0][0] == CLOSE
    assert close_code(frames[0][1]) == 1002


# close --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"), [(1000, ""), (1001, "going"), (4000, "custom"), (4999, "é")]
)
def test_app_closes_with_code_and_reason(raw: Target, code: int, reason: str) -> None:
    with ws(raw, "/ws/echo") as connection:
        connection.send(f"close {code} {reason}")
        assert closed_with(connection) == (code, reason)


def test_app_close_without_code_is_1000(raw: Target) -> None:
    with ws(raw, "/ws/return-after") as connection:
        assert connection.recv(timeout=5) == "bye"
        code, _ = closed_with(connection)
    assert code in (1000, None)  # uvicorn (websockets) drops TCP without a close frame


def test_app_raises_after_accept_is_1011(raw: Target) -> None:
    with ws(raw, "/ws/raise-after") as connection:
        connection.send("go")
        code, _ = closed_with(connection)
    assert code in (1011, None)  # RFC 6455 7.4.1: 1011 (uvicorn: no close frame, seen as 1006)


@pytest.mark.parametrize(
    ("code", "reason"), [(1000, "done"), (1001, ""), (3000, "app"), (4321, "bye now")]
)
def test_client_close_code_reaches_the_app(raw: Target, code: int, reason: str) -> None:
    name = key()
    with ws(raw, f"/ws/echo?key={name}") as connection:
        connection.send("x")
        connection.recv(timeout=5)
        connection.close(code, reason)
    with raw.http() as client:
        assert wait_for(client, name) == [f"disconnect {code}"]


def test_client_close_without_code_is_1005(raw: Target) -> None:
    name = key()
    with raw.raw() as sock:
        client = Raw(sock, raw.port, f"/ws/echo?key={name}")
        client.send(CLOSE, b"")
        frames = client.frames(1)
    assert frames[0][0] == CLOSE
    with raw.http() as client_:
        assert wait_for(client_, name) == ["disconnect 1005"]


def test_client_drop_is_1006(raw: Target) -> None:
    name = key()
    with raw.raw() as sock:
        client = Raw(sock, raw.port, f"/ws/echo?key={name}")
        client.send(TEXT, b"x")
        client.frames(1)
    with raw.http() as client_:
        assert wait_for(client_, name) == ["disconnect 1006"]


def test_server_echoes_the_close_code(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(CLOSE, (4100).to_bytes(2, "big") + b"later")
        frames = client.frames(1)
    assert frames[0][0] == CLOSE
    assert close_code(frames[0][1]) == 4100


def test_server_closes_tcp_after_close_handshake(raw: Target) -> None:
    with raw.raw() as sock:
        client = Raw(sock, raw.port, "/ws/echo")
        client.send(CLOSE, (1000).to_bytes(2, "big"))
        client.frames(1)
        assert client.reader.closed()


def test_receive_after_disconnect_says_disconnect_again(raw: Target) -> None:
    name = key()
    with ws(raw, f"/ws/after-disconnect?key={name}") as connection:
        connection.close(1000)
    with raw.http() as client:
        events = wait_for(client, name, count=3)
    assert events[0] == "first websocket.disconnect 1000"
    assert events[1] == "again websocket.disconnect"


def test_send_after_disconnect_raises_oserror(raw: Target) -> None:
    name = key()
    with ws(raw, f"/ws/after-disconnect?key={name}") as connection:
        connection.close(1000)
    with raw.http() as client:
        events = wait_for(client, name, count=3)
    assert events[-1].startswith("send OSError"), events


def test_close_after_the_client_closed(raw: Target) -> None:
    """ASGI leaves it open; uvicorn ignores or raises an OSError: never anything else."""
    name = key()
    with ws(raw, f"/ws/close-after-disconnect?key={name}") as connection:
        connection.close(1000)
    with raw.http() as client:
        events = wait_for(client, name)
    assert events[0] in (
        "returned",
        "raised ClientDisconnected",
        "raised ClientDisconnectedError",
    ), events


def test_send_raises_once_a_flooded_client_drops(
    kind: str, log_dir: Path, certs: Certificates
) -> None:
    """A server of its own: a server that stops turning its loop here is lost for other cases."""
    target = start(kind, RAW, log_dir, certs)
    try:
        name = key()
        with target.raw() as sock:
            client = Raw(sock, target.port, f"/ws/flood?key={name}")
            assert client.frames(1)[0][0] == BINARY
        with target.http(timeout=2) as http:
            events = wait_for(http, name, timeout=4)
        assert events[0].startswith("send raised"), events
    finally:
        target.stop(signal.SIGKILL)


def test_send_after_close_raises(raw: Target) -> None:
    name = key()
    with ws(raw, f"/ws/send-after-close?key={name}") as connection:
        closed_with(connection)
    with raw.http() as client:
        events = wait_for(client, name)
    assert events[0].startswith("raised"), events


def test_accept_with_an_unoffered_subprotocol_is_never_a_101_with_it(raw: Target) -> None:
    """RFC 6455 4.2.2: the selected subprotocol is one the client offered."""
    extra = "Sec-WebSocket-Protocol: offered\r\n"
    with raw.raw() as sock:
        handshake = Raw(sock, raw.port, "/ws/wrong-subprotocol", extra=extra)
    assert not (handshake.status == 101 and b"never-offered" in handshake.head)


def test_tls_1_3_websocket(raw: Target) -> None:
    """WSS with TLS 1.3 through the asyncio client (one thread per socket: no race)."""
    if raw.client_context is None:
        pytest.skip("TLS only")
    context = raw.client_context

    async def talk() -> tuple[str | bytes, object]:
        from websockets.asyncio.client import connect as async_connect

        async with async_connect(raw.ws_url("/ws/echo"), ssl=context, open_timeout=10) as client:
            await client.send("over tls 1.3")
            answer = await client.recv()
            version = client.transport.get_extra_info("ssl_object").version()
            return answer, version

    import asyncio

    answer, version = asyncio.run(talk())
    assert answer == "over tls 1.3"
    assert version == "TLSv1.3"


# concurrency --------------------------------------------------------------------------------


def test_many_concurrent_sockets(raw: Target) -> None:
    errors: list[BaseException] = []

    def chat(number: int) -> None:
        try:
            with ws(raw, "/ws/echo") as connection:
                for turn in range(5):
                    connection.send(f"{number}-{turn}")
                    assert connection.recv(timeout=10) == f"{number}-{turn}"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=chat, args=(n,)) for n in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors[:3]
    assert not any(thread.is_alive() for thread in threads)


def test_http_and_websocket_on_one_server_at_once(raw: Target) -> None:
    with ws(raw, "/ws/echo") as connection, raw.http() as client:
        connection.send("first")
        assert client.get("/method").text == "GET 0"
        assert connection.recv(timeout=5) == "first"
