"""The examples, exercised over real loopback sockets with the real `websockets` client.

Every async test runs on asyncio and trio (see conftest.py) unless it pins ``anyio_backend``
because it uses aiostream operators that need asyncio.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from examples import binary, callbacks, chat, echo, json_rpc, live_feed, pipeline
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus

from spikard.testing.server import TestServerInfo

from .helpers import read_all, read_until, upgrade_request, ws_connect

# conftest.py marks async tests for anyio only after collection, which loses the ids of
# parametrized tests; marking the module up front lets anyio parametrize them properly.
pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


async def http_get(server: TestServerInfo, path: str) -> tuple[int, dict[str, str], bytes]:
    """A one-shot HTTP/1.1 GET over a raw socket: status, headers (lower-case), body."""
    with anyio.fail_after(5):
        async with await anyio.connect_tcp(server.host, server.port) as stream:
            await stream.send(
                f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            data = await read_all(stream)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


async def recv_json(ws: Any) -> Any:
    with anyio.fail_after(5):
        return json.loads(await ws.recv())


async def recv(ws: Any) -> Any:
    with anyio.fail_after(5):
        return await ws.recv()


async def client_close(ws: Any) -> None:
    """Close from the client side (websockets' trio client calls it ``aclose``)."""
    with anyio.fail_after(5):
        await (ws.aclose() if hasattr(ws, "aclose") else ws.close())


async def expect_close(ws: Any) -> tuple[int, str]:
    """Wait for the server to close; return its close code and reason."""
    with anyio.fail_after(5), pytest.raises((ConnectionClosedOK, ConnectionClosedError)) as closed:
        await ws.recv()
    received = closed.value.rcvd
    assert received is not None
    return received.code, received.reason


# ---- echo ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/echo", "/"])
async def test_echo_text_and_binary(path: str) -> None:
    async with echo.app.test_server() as server, ws_connect(server.ws_url(path)) as ws:
        for message in ["hello", "", "héllo ✓", b"\x00\xff", b""]:
            await ws.send(message)
            assert await recv(ws) == message


async def test_echo_default_limit_closes_1009() -> None:
    big = b"x" * (1024 * 1024 + 1)
    async with echo.app.test_server() as server, ws_connect(server.ws_url("/echo")) as ws:
        try:
            await ws.send(big)
        except ConnectionClosedError:
            pass  # the server refuses the frame at its header, while the client may still send
        code, _ = await expect_close(ws)
    assert code == 1009


async def test_echo_max_message_size_raises_the_limit() -> None:
    app = echo.create_app(max_message_size=4 * 1024 * 1024)
    assert app.websocket_config.max_message_size == 4 * 1024 * 1024
    big = bytes(range(256)) * 8192  # 2 MiB
    async with app.test_server() as server, ws_connect(server.ws_url("/echo"), max_size=None) as ws:
        await ws.send(big)
        assert await recv(ws) == big


# ---- chat ----------------------------------------------------------------------------------


async def test_chat_rooms_broadcast_and_presence() -> None:
    async with chat.app.test_server() as server:
        async with ws_connect(server.ws_url("/ws/red?name=alice")) as alice:
            assert await recv_json(alice) == {
                "type": "join",
                "room": "red",
                "name": "alice",
                "members": ["alice"],
            }
            async with (
                ws_connect(server.ws_url("/ws/red?name=bob")) as bob,
                ws_connect(server.ws_url("/ws/blue?name=carol")) as carol,
            ):
                joined = {"type": "join", "room": "red", "name": "bob", "members": ["alice", "bob"]}
                assert await recv_json(alice) == joined
                assert await recv_json(bob) == joined
                assert (await recv_json(carol))["members"] == ["carol"]

                status, headers, body = await http_get(server, "/rooms")
                assert status == 200
                assert headers["content-type"].startswith("application/json")
                assert json.loads(body) == {"blue": ["carol"], "red": ["alice", "bob"]}

                await alice.send("hi bob")
                said = {"type": "message", "room": "red", "name": "alice", "text": "hi bob"}
                assert await recv_json(alice) == said
                assert await recv_json(bob) == said

                await bob.send(json.dumps({"text": "hi alice"}))  # what the page sends
                assert (await recv_json(alice))["text"] == "hi alice"
                assert (await recv_json(bob))["text"] == "hi alice"

                # Had red's messages reached carol, they would be queued before her own.
                await carol.send("anyone?")
                assert await recv_json(carol) == {
                    "type": "message",
                    "room": "blue",
                    "name": "carol",
                    "text": "anyone?",
                }

                await client_close(bob)
                assert await recv_json(alice) == {
                    "type": "leave",
                    "room": "red",
                    "name": "bob",
                    "members": ["alice"],
                }
        # The handlers have finished by the time the clients' close() returned.
        assert chat.local_rooms == {}
        _, _, body = await http_get(server, "/rooms")
        assert json.loads(body) == {}


async def test_chat_requires_a_name() -> None:
    async with chat.app.test_server() as server:
        for url in ["/ws/red", "/ws/red?name=", f"/ws/red?name={'x' * 33}"]:
            with anyio.fail_after(5), pytest.raises(InvalidStatus) as caught:
                async with ws_connect(server.ws_url(url)):
                    pass
            assert caught.value.response.status_code == 400
    assert chat.local_rooms == {}


async def test_chat_closes_1003_on_binary() -> None:
    async with (
        chat.app.test_server() as server,
        ws_connect(server.ws_url("/ws/red?name=dave")) as ws,
    ):
        await recv_json(ws)  # own join
        await ws.send(b"\x01")
        assert await expect_close(ws) == (1003, "text messages only")
    assert chat.local_rooms == {}


async def test_chat_slow_member_loses_old_messages_instead_of_blocking() -> None:
    async with chat.app.test_server() as server:
        # A member that never reads a byte (raw TCP, so no client library reads for it).
        slow = await anyio.connect_tcp("127.0.0.1", server.port)
        await slow.send(upgrade_request("/ws/r?name=slow", port=server.port))
        assert (await read_until(slow, b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        async with ws_connect(server.ws_url("/ws/r?name=fast")) as fast:
            await recv_json(fast)  # fast's own join
            total = chat.MEMBER_BACKLOG * 8
            with anyio.fail_after(20):  # slow never reads, yet fast is never held up
                for number in range(total):
                    await fast.send(f"message {number!s:>400}")  # fills slow's TCP buffers
                    assert (await recv_json(fast))["text"] == f"message {number!s:>400}"
        await slow.aclose()
    assert chat.local_rooms == {}


async def test_chat_page_is_served() -> None:
    async with chat.app.test_server() as server:
        status, headers, body = await http_get(server, "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    page = body.decode()
    assert "<script>" in page
    assert "new WebSocket(" in page
    assert "/ws/" in page
    # Self-contained: no external scripts, styles or fonts.
    assert "src=" not in page
    assert "http://" not in page
    assert "https://" not in page


# ---- JSON-RPC ------------------------------------------------------------------------------


async def rpc_call(ws: Any, payload: Any) -> Any:
    await ws.send(payload if isinstance(payload, (str, bytes)) else json.dumps(payload))
    return await recv_json(ws)


async def test_json_rpc_results() -> None:
    async with json_rpc.app.test_server() as server, ws_connect(server.ws_url("/rpc")) as ws:
        cases = [
            ("add", [2, 3], 5),
            ("subtract", {"a": 10, "b": 4}, 6),
            ("multiply", [2.5, 4], 10.0),
            ("divide", [7, 2], 3.5),
        ]
        for number, (method, params, result) in enumerate(cases):
            reply = await rpc_call(
                ws, {"jsonrpc": "2.0", "method": method, "params": params, "id": number}
            )
            assert reply == {"jsonrpc": "2.0", "result": result, "id": number}

        # A notification gets no reply: the next reply belongs to the next request.
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "add", "params": [1, 1]}))
        reply = await rpc_call(
            ws, {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": "after"}
        )
        assert reply == {"jsonrpc": "2.0", "result": 3, "id": "after"}

        batch = await rpc_call(
            ws,
            [
                {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1},
                {"jsonrpc": "2.0", "method": "multiply", "params": [3, 3]},
                {"jsonrpc": "2.0", "method": "nope", "id": 2},
            ],
        )
        assert batch[0] == {"jsonrpc": "2.0", "result": 3, "id": 1}
        assert batch[1]["error"]["code"] == -32601
        assert len(batch) == 2


@pytest.mark.parametrize(
    ("payload", "code", "reply_id"),
    [
        ("{not json", -32700, None),
        (b"\xff\xfe", -32700, None),
        ("[]", -32600, None),
        ("42", -32600, None),
        ({"method": "add", "params": [1, 2], "id": 1}, -32600, 1),
        ({"jsonrpc": "2.0", "method": 5, "id": 2}, -32600, 2),
        ({"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": [1]}, -32600, None),
        ({"jsonrpc": "2.0", "method": "power", "params": [2, 8], "id": 3}, -32601, 3),
        ({"jsonrpc": "2.0", "method": "add", "params": [1], "id": 4}, -32602, 4),
        ({"jsonrpc": "2.0", "method": "add", "params": ["1", 2], "id": 5}, -32602, 5),
        ({"jsonrpc": "2.0", "method": "add", "params": [True, 2], "id": 6}, -32602, 6),
        ({"jsonrpc": "2.0", "method": "add", "params": {"x": 1}, "id": 7}, -32602, 7),
        ({"jsonrpc": "2.0", "method": "divide", "params": [1, 0], "id": 8}, 1, 8),
        ({"jsonrpc": "2.0", "method": "multiply", "params": [1e308, 10], "id": 9}, -32603, 9),
    ],
)
async def test_json_rpc_errors(payload: Any, code: int, reply_id: Any) -> None:
    async with json_rpc.app.test_server() as server, ws_connect(server.ws_url("/rpc")) as ws:
        reply = await rpc_call(ws, payload)
        assert reply["jsonrpc"] == "2.0"
        assert reply["id"] == reply_id
        assert reply["error"]["code"] == code
        assert isinstance(reply["error"]["message"], str)
        assert "result" not in reply
        # An error never closes the connection.
        ok = await rpc_call(ws, {"jsonrpc": "2.0", "method": "add", "params": [1, 1], "id": 0})
        assert ok["result"] == 2


async def test_json_rpc_error_messages() -> None:
    expected = {
        -32700: "Parse error",
        -32600: "Invalid Request",
        -32601: "Method not found",
        -32602: "Invalid params",
        1: "Division by zero",
    }
    async with json_rpc.app.test_server() as server, ws_connect(server.ws_url("/rpc")) as ws:
        for payload in [
            "{",
            "[]",
            '{"jsonrpc": "2.0", "method": "x", "id": 1}',
            '{"jsonrpc": "2.0", "method": "add", "id": 1}',
            '{"jsonrpc": "2.0", "method": "divide", "params": [1, 0], "id": 1}',
        ]:
            error = (await rpc_call(ws, payload))["error"]
            assert error["message"] == expected[error["code"]]


async def test_json_rpc_over_http_post() -> None:
    request = json.dumps({"jsonrpc": "2.0", "method": "add", "params": [20, 22], "id": 1})
    async with json_rpc.app.test_server() as server:
        with anyio.fail_after(5):
            async with await anyio.connect_tcp(server.host, server.port) as stream:
                await stream.send(
                    f"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(request)}\r\nConnection: close\r\n\r\n{request}".encode()
                )
                data = await read_all(stream)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"application/json" in head
    assert json.loads(body) == {"jsonrpc": "2.0", "result": 42, "id": 1}


# ---- binary --------------------------------------------------------------------------------


async def test_binary_round_trip() -> None:
    payload = b"Hello, spikard! \x00\x01\xfe"
    expected = {
        binary.Op.CRC32: zlib.crc32(payload).to_bytes(4, "big"),
        binary.Op.UPPER: b"HELLO, SPIKARD! \x00\x01\xfe",
        binary.Op.REVERSE: payload[::-1],
    }
    async with binary.app.test_server() as server, ws_connect(server.ws_url("/records")) as ws:
        for request_id, (op, result) in enumerate(expected.items(), start=100):
            await ws.send(binary.encode_request(op, request_id, payload))
            reply = binary.decode_response(await recv(ws))
            assert reply == binary.Reply(binary.Status.OK, request_id, result)

        await ws.send(binary.encode_request(binary.Op.SHA256, 7, b""))
        reply = binary.decode_response(await recv(ws))
        assert reply.payload.hex().startswith("e3b0c442")  # SHA-256 of nothing
        assert reply.request_id == 7


@pytest.mark.parametrize(
    ("record", "status"),
    [
        (b"\x01\x01", binary.Status.BAD_HEADER),
        (binary.encode_request(binary.Op.CRC32, 1, b"abc")[:-1], binary.Status.BAD_LENGTH),
        (binary.encode_request(binary.Op.CRC32, 1, b"abc", version=9), binary.Status.BAD_VERSION),
        (binary.encode_request(99, 1, b"abc"), binary.Status.UNKNOWN_OP),
    ],
)
async def test_binary_malformed_records(record: bytes, status: binary.Status) -> None:
    async with binary.app.test_server() as server, ws_connect(server.ws_url("/records")) as ws:
        await ws.send(record)
        reply = binary.decode_response(await recv(ws))
        assert reply.status is status
        assert reply.payload  # a reason
        await ws.send(binary.encode_request(binary.Op.REVERSE, 2, b"ok"))
        assert binary.decode_response(await recv(ws)).payload == b"ko"


async def test_binary_rejects_text_with_1003() -> None:
    async with binary.app.test_server() as server, ws_connect(server.ws_url("/records")) as ws:
        await ws.send(binary.encode_request(binary.Op.UPPER, 1, b"x"))
        assert binary.decode_response(await recv(ws)).payload == b"X"
        await ws.send("hello")
        assert await expect_close(ws) == (1003, "binary only")


# ---- pipeline ------------------------------------------------------------------------------


async def test_pipeline_shout() -> None:
    async with pipeline.app.test_server() as server, ws_connect(server.ws_url("/shout")) as ws:
        await ws.send("hello")
        await ws.send(b"binary is filtered out")
        await ws.send("straße")
        assert await recv(ws) == "HELLO"
        assert await recv(ws) == "STRASSE"


async def test_pipeline_numbers_running_sum_then_close() -> None:
    async with pipeline.app.test_server() as server, ws_connect(server.ws_url("/numbers")) as ws:
        for text in ["1", "2", "not a number", "3.5", "-0.5"]:
            await ws.send(text)
        assert [await recv(ws) for _ in range(4)] == [
            "1: sum=1",
            "2: sum=3",
            "3: sum=6.5",
            "4: sum=6",
        ]
        await ws.send("end")
        assert await expect_close(ws) == (1000, "")


@asyncio_only
async def test_pipeline_ticker_merges_echo_and_ticks(anyio_backend: str) -> None:
    async with pipeline.app.test_server() as server, ws_connect(server.ws_url("/ticker")) as ws:
        await ws.send("ping")
        received = {await recv(ws) for _ in range(4)}
    assert received == {"echo: ping", "tick 0", "tick 1", "tick 2"}


# ---- callbacks -----------------------------------------------------------------------------


async def test_callbacks_good_token_and_on_close() -> None:
    callbacks.sessions.clear()
    async with callbacks.app.test_server() as server:
        async with ws_connect(server.ws_url("/secure?token=alice-token")) as ws:
            await ws.send("whoami")
            assert await recv(ws) == "alice"
            await ws.send("quiet")  # no reply
            await ws.send("hello")
            assert await recv(ws) == "alice: hello"
            await ws.send(b"\x00" * 3)
            assert await recv(ws) == "alice: 3 bytes"
            record = callbacks.sessions[-1]
            assert not record.closed
        # on_close has run by the time the client's close() returned.
        assert record.closed
        assert record.close_frame == (1000, "")
        assert record.messages == 4
        assert record.errors == []
        status, _, body = await http_get(server, "/sessions")
        assert status == 200
        assert json.loads(body)[-1]["user"] == "alice"


@pytest.mark.parametrize("query", ["?token=wrong", "", "?token="])
async def test_callbacks_bad_token_gets_401(query: str) -> None:
    callbacks.sessions.clear()
    async with callbacks.app.test_server() as server:
        with anyio.fail_after(5), pytest.raises(InvalidStatus) as caught:
            async with ws_connect(server.ws_url("/secure" + query)):
                pass
    response = caught.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="spikard"'
    assert b"token" in response.body
    assert callbacks.sessions == []


async def test_callbacks_on_error_closes_1011() -> None:
    callbacks.sessions.clear()
    async with callbacks.app.test_server() as server:
        async with ws_connect(server.ws_url("/secure?token=bob-token")) as ws:
            await ws.send("boom")
            code, _ = await expect_close(ws)
        assert code == 1011
        record = callbacks.sessions[-1]
        assert record.errors == ["RuntimeError: boom requested"]
        assert record.closed


async def test_callbacks_server_side_close() -> None:
    callbacks.sessions.clear()
    async with callbacks.app.test_server() as server:
        async with ws_connect(server.ws_url("/secure?token=bob-token")) as ws:
            await ws.send("bye")
            assert await expect_close(ws) == (1000, "goodbye")
        record = callbacks.sessions[-1]
        assert record.closed
        assert record.close_frame == (1000, "goodbye")  # the client's reply


# ---- running the examples as programs ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_listening(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("server did not start listening in time")


def _start(args: list[str], port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    log = (tmp_path / "server.log").open("wb")
    with log:
        process = subprocess.Popen(
            [sys.executable, *args, "--port", str(port)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_echo_script_serves_and_stops_on_sigint(backend: str, tmp_path: Path) -> None:
    from websockets.sync.client import connect

    port = _free_port()
    process = _start(["examples/echo.py", "--backend", backend], port, tmp_path)
    try:
        _wait_listening(port, process, time.monotonic() + 15)
        with connect(f"ws://127.0.0.1:{port}/echo", open_timeout=5, proxy=None) as ws:
            ws.send("over the wire")
            assert ws.recv(timeout=5) == "over the wire"
            ws.send(b"\x01\x02")
            assert ws.recv(timeout=5) == b"\x01\x02"
            process.send_signal(signal.SIGINT)
            # Graceful shutdown: the open socket is closed with 1001 (going away).
            with pytest.raises(ConnectionClosedOK) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
        assert process.wait(timeout=5) == 0
    finally:
        _stop(process)
    log = (tmp_path / "server.log").read_text()
    assert "SIGINT received" in log, log


def test_python_m_spikard_serves_an_example(tmp_path: Path) -> None:
    port = _free_port()
    process = _start(["-m", "spikard", "examples.chat:app"], port, tmp_path)
    try:
        _wait_listening(port, process, time.monotonic() + 15)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200")
        assert b"new WebSocket(" in data
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 0
    finally:
        _stop(process)


@pytest.mark.parametrize("name", ["binary", "callbacks", "chat", "echo", "json_rpc", "pipeline"])
def test_every_example_has_a_command_line(name: str) -> None:
    result = subprocess.run(
        [sys.executable, f"examples/{name}.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--backend"):
        assert option in result.stdout


# ---- limits ------------------------------------------------------------------------------


async def test_request_head_over_max_header_bytes_gets_431() -> None:
    limit = chat.app.http_config.max_header_bytes  # 16 KiB
    padding = "a" * (limit + 4096)  # well over the limit, well under one 64 KiB read
    async with chat.app.test_server() as server:
        with anyio.fail_after(5):
            async with await anyio.connect_tcp(server.host, server.port) as stream:
                await stream.send(
                    f"GET /rooms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    f"X-Padding: {padding}\r\n\r\n".encode()
                )
                data = await read_all(stream)
    assert data.startswith(b"HTTP/1.1 431"), data[:40]


# ---- live_feed (Server-Sent Events) ------------------------------------------------------


async def _post(port: int, text: str) -> bytes:
    body = f"text={text}".encode()
    head = (
        "POST /say HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(head.encode() + body)
        with anyio.fail_after(5):
            return await read_all(stream)


async def _listen(port: int, last_event_id: str | None = None) -> anyio.abc.SocketStream:
    stream = await anyio.connect_tcp("127.0.0.1", port)
    resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
    await stream.send(f"GET /events HTTP/1.1\r\nHost: x\r\n{resume}\r\n".encode())
    return stream


async def test_live_feed_delivers_posts_and_resumes_after_a_reconnect() -> None:
    live_feed.history.clear()
    async with live_feed.app.test_server() as server:
        listener = await _listen(server.port)
        async with listener:
            with anyio.fail_after(5):
                await read_until(listener, b"\r\n\r\n")  # an early post is replayed anyway
            assert b'"id":' in await _post(server.port, "first")
            with anyio.fail_after(5):
                first = await read_until(listener, b"data: first\n\n")
        first_id = first.split(b"id: ")[1].split(b"\n")[0].decode()
        await _post(server.port, "missed")  # nobody listens now
        async with await _listen(server.port, last_event_id=first_id) as resumed:
            with anyio.fail_after(5):
                replay = await read_until(resumed, b"data: missed\n\n")
    assert b"data: first" not in replay  # only what came after Last-Event-ID


async def test_live_feed_page_uses_event_source() -> None:
    async with (
        live_feed.app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with anyio.fail_after(5):
            page = await read_all(stream)
    assert b'new EventSource("/events")' in page
