"""HTTP through spikard's server for ASGI apps: scope, bodies both ways, failures, keep-alive."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from spikard.asgi.serving import Receive, Scope, Send

from ..helpers import read_all, read_until
from .apps import EVENTS, raw_app, starlette_app
from .serving import client, serve


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    EVENTS.clear()


async def wait_for_event(event: str, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while event not in EVENTS:
            await anyio.sleep(0.01)


async def raw_exchange(port: int, data: bytes) -> bytes:
    with anyio.fail_after(5):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(data)
            return await read_all(stream)


async def test_routes_and_the_http_scope() -> None:
    async with serve(starlette_app) as running, client(running) as http:
        response = await http.get("/", params={"name": "asgi"})
        assert response.status_code == 200
        assert response.text == "hello asgi"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        response = await http.get("/scope/a%20b", params={"x": "1"}, headers={"X-Thing": "T"})
        scope = response.json()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope/a b"
    assert scope["raw_path"] == "/scope/a%20b"
    assert scope["query_string"] == "x=1"
    assert scope["root_path"] == ""
    assert ["x-thing", "T"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", running.port]
    assert scope["state"] == ["greeting"]


async def test_root_path_prefixes_the_path() -> None:
    async with serve(starlette_app, root_path="/api") as running, client(running) as http:
        scope = (await http.get("/scope/x")).json()
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/scope/x"


async def test_request_bodies_stream_in_parts_without_spikards_default_limit() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 65536
            await anyio.sleep(0.01)

    async with serve(starlette_app) as running, client(running) as http:
        chunked = (await http.post("/upload", content=parts())).json()
        whole = (await http.post("/upload", content=b"y" * (3 * 1024 * 1024))).json()
        empty = (await http.post("/upload")).json()
    assert chunked["size"] == 4 * 65536
    assert chunked["parts"] >= 2
    assert whole["size"] == 3 * 1024 * 1024
    assert empty == {"size": 0, "parts": 0}


async def test_more_body_is_pulled_as_the_app_asks() -> None:
    seen: list[tuple[int, bool]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            seen.append((len(message["body"]), message["more_body"]))
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async with serve(app) as running:
        with anyio.fail_after(5):
            async with await anyio.connect_tcp("127.0.0.1", running.port) as stream:
                head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n"
                await stream.send(head + b"\r\n12345")
                await anyio.sleep(0.1)
                assert seen == [(5, True)]  # the rest is not there: the app waits for it
                await stream.send(b"67890")
                reply = await read_all(stream)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert seen == [(5, True), (5, False)]


async def test_streaming_responses_and_sse() -> None:
    async with serve(starlette_app) as running, client(running) as http:
        numbers = await http.get("/numbers", params={"count": "50"})
        async with http.stream("GET", "/ticks") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            body = b"".join([chunk async for chunk in events.aiter_bytes()])
    assert numbers.text == "".join(f"{n}\n" for n in range(50))
    assert numbers.headers["transfer-encoding"] == "chunked"
    text = body.decode().replace("\r\n", "\n")
    for number in range(3):
        assert f"id: {number}\nevent: tick\ndata: {number}\n" in text
    await wait_for_event("numbers closed")


async def test_a_client_leaving_a_stream_closes_the_apps_generator() -> None:
    async with serve(starlette_app) as running:
        with anyio.fail_after(5):
            async with await anyio.connect_tcp("127.0.0.1", running.port) as stream:
                await stream.send(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
                await read_until(stream, b"xxxx")
        await wait_for_event("forever closed")


async def test_http_disconnect_reaches_an_app_listening_while_it_streams() -> None:
    told: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        assert (await receive())["type"] == "http.request"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        async with anyio.create_task_group() as group:

            async def listen() -> None:
                told.append((await receive())["type"])
                group.cancel_scope.cancel()

            group.start_soon(listen)
            while True:
                await send({"type": "http.response.body", "body": b"tick", "more_body": True})
                await anyio.sleep(0.01)

    async with serve(app) as running:
        with anyio.fail_after(5):
            async with await anyio.connect_tcp("127.0.0.1", running.port) as stream:
                await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await read_until(stream, b"tick")
            while not told:
                await anyio.sleep(0.01)
    assert told == ["http.disconnect"]


async def test_send_returns_only_as_the_client_takes_chunks() -> None:
    sent = [0]
    chunk = b"z" * 65536

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(1000):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent[0] += 1
        await send({"type": "http.response.body", "body": b""})

    async with serve(app) as running:
        with anyio.fail_after(10):
            async with await anyio.connect_tcp("127.0.0.1", running.port) as stream:
                await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                await anyio.sleep(0.3)
                stalled = sent[0]
                await anyio.sleep(0.2)
                assert sent[0] == stalled  # the client reads nothing: the app waits
                assert stalled < 200  # ~kernel buffers, never the 64 MiB body
                received = 0
                while True:
                    try:
                        received += len(await stream.receive())
                    except anyio.EndOfStream:
                        break
    assert sent[0] == 1000
    assert received > 1000 * len(chunk)


async def test_background_tasks_run_after_the_response() -> None:
    async with serve(starlette_app) as running, client(running) as http:
        response = await http.get("/background")
        assert response.text == "sent first"
        assert "background done" not in EVENTS
        await wait_for_event("background done")


async def test_head_keeps_the_apps_content_length() -> None:
    async with serve(starlette_app) as running, client(running) as http:
        get = await http.get("/")
        head = await http.head("/")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))


async def test_keep_alive_and_pipelining() -> None:
    async with serve(starlette_app) as running:
        requests = b"GET /?name=a HTTP/1.1\r\nHost: x\r\n\r\n" * 2
        requests += b"GET /?name=b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        reply = await raw_exchange(running.port, requests)
    assert reply.count(b"HTTP/1.1 200 OK") == 3
    assert reply.index(b"hello a") < reply.rindex(b"hello a") < reply.index(b"hello b")


async def test_a_failure_before_the_response_is_a_500_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raise ValueError("the app broke")

    async with serve(app, lifespan="off") as running, client(running) as http:
        response = await http.get("/")
        assert (await http.get("/")).status_code == 500  # the connection serves on
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    logged = [r for r in caplog.records if r.exc_info and "the app broke" in str(r.exc_info[1])]
    assert len(logged) == 2  # once per request


async def test_starlette_errors_are_its_500_and_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serve(starlette_app) as running, client(running) as http:
        response = await http.get("/boom")
    assert response.status_code == 500
    logged = [r for r in caplog.records if r.exc_info and "boom" in str(r.exc_info[1])]
    assert len(logged) == 1


async def test_a_failure_mid_body_cuts_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("mid-body")

    async with serve(app, lifespan="off") as running:
        reply = await raw_exchange(running.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert b"partial" in reply
    assert not reply.endswith(b"0\r\n\r\n")  # never the end of a chunked body
    logged = [r for r in caplog.records if r.exc_info and "mid-body" in str(r.exc_info[1])]
    assert len(logged) == 1


async def test_an_app_that_returns_without_a_response_gets_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": []})

    async with serve(app, lifespan="off") as running, client(running) as http:
        response = await http.get("/")
    assert response.status_code == 500
    assert [r.levelno for r in caplog.records if "without completing" in r.getMessage()] == [
        logging.ERROR
    ]


@pytest.mark.parametrize(
    ("messages", "complaint"),
    [
        ([{"type": "http.response.body", "body": b"x"}], "before 'http.response.start'"),
        (
            [
                {"type": "http.response.start", "status": 200},
                {"type": "http.response.start", "status": 200},
            ],
            "sent twice",
        ),
        ([{"type": "http.response.start", "status": 42}], "status 42"),
        ([{"type": "websocket.accept"}], "'websocket.accept' in an HTTP request"),
        (
            [
                {"type": "http.response.start", "status": 200, "headers": [(b"x", b"a\r\nb: c")]},
                {"type": "http.response.body", "body": b"streamed", "more_body": True},
            ],
            "a response header that cannot be sent",
        ),
    ],
    ids=["body-first", "start-twice", "bad-status", "websocket-message", "bad-header-streamed"],
)
async def test_out_of_order_messages_are_a_500_and_one_error(
    messages: list[dict[str, Any]], complaint: str, caplog: pytest.LogCaptureFixture
) -> None:
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            for message in messages:
                await send(message)
        except RuntimeError as exc:
            raised.append(exc)
            raise

    async with serve(app, lifespan="off") as running, client(running) as http:
        response = await http.get("/")
    assert response.status_code == 500
    assert len(raised) == 1
    assert complaint in str(raised[0])
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert complaint in errors[0].getMessage()


async def test_receive_after_the_response_says_disconnect_at_once() -> None:
    after: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        with anyio.fail_after(1):
            after.append((await receive())["type"])

    async with serve(app, lifespan="off") as running, client(running) as http:
        assert (await http.get("/")).text == "done"
        with anyio.fail_after(5):
            while not after:
                await anyio.sleep(0.01)
    assert after == ["http.disconnect"]


async def test_a_raw_app_without_lifespan_in_auto_mode(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with serve(raw_app) as running, client(running) as http:
        response = await http.get("/")
    assert response.text == "raw"
    assert response.headers["x-raw"] == "1"
    assert any("does not support lifespan" in r.getMessage() for r in caplog.records)


async def test_a_second_concurrent_receive_waits_for_the_end_of_the_exchange() -> None:
    listener: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        async with anyio.create_task_group() as group:

            async def listen() -> None:
                listener.append((await receive())["type"])

            first = await receive()  # the body's first part is on its way
            group.start_soon(listen)
            body = first["body"]
            while first["more_body"]:
                first = await receive()
                body += first["body"]
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

    async def parts() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"p" * 1000
            await anyio.sleep(0.05)

    async with serve(app, lifespan="off") as running, client(running) as http:
        response = await http.post("/", content=parts())
    assert response.content == b"p" * 3000
    assert listener == ["http.disconnect"]


async def test_a_head_is_bounded_by_its_size_only_as_under_uvicorn() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        count = str(len(scope["headers"])).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": count})

    many = b"".join(b"X-H%d: %d\r\n" % (n, n) for n in range(300))
    async with serve(app) as running:
        reply = await raw_exchange(
            running.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"Connection: close\r\n\r\n"
        )
        assert reply.startswith(b"HTTP/1.1 200")
        assert reply.endswith(b"302")
        too_big = b"X-Big: " + b"b" * (16 * 1024) + b"\r\n"
        refused = await raw_exchange(
            running.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + too_big + b"\r\n"
        )
        assert refused.startswith(b"HTTP/1.1 431")


async def test_an_absolute_form_target_is_served_by_its_path() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        shown = f"{scope['path']}|{scope['raw_path'].decode()}|{scope['query_string'].decode()}"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": shown.encode()})

    async with serve(app) as running:
        target = f"http://127.0.0.1:{running.port}/a%20b/c?x=1"
        reply = await raw_exchange(
            running.port, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
    assert reply.startswith(b"HTTP/1.1 200")
    assert reply.endswith(b"/a b/c|/a%20b/c|x=1")
