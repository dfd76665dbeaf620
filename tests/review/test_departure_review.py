"""Review of the departure watch (``DepartureWatch``), its users and absolute-form targets.

Tests marked ``xfail(strict=True)`` prove a defect: they assert the behaviour a user should
see and fail today. The others pin down behaviour checked and found correct that no other
test asserts.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import pytest

from spikard import HTTPConfig, PlainTextResponse, Request, Spikard, StreamingResponse
from spikard.asgi.serving import ASGIApplication, Receive, Scope, Send, default_http_config
from spikard.forms import UploadFile

from ..asgi_serving.serving import serve
from ..helpers import read_all, read_until

pytestmark = pytest.mark.anyio
BOUND = 5.0


async def _wait_for(items: list[object], count: int = 1) -> None:
    while len(items) < count:
        await anyio.sleep(0.01)


# ---- ASGI serving: HEAD of a streamed response ---------------------------------------------


async def test_an_asgi_app_streaming_to_a_head_request_learns_that_the_client_left() -> None:
    told: list[object] = []
    streaming = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})

        async def listen() -> None:
            told.append((await receive())["type"])
            group.cancel_scope.cancel()

        with anyio.move_on_after(1.0):  # bound the test; a told app ends long before
            async with anyio.create_task_group() as group:
                group.start_soon(listen)
                try:
                    while True:  # an SSE stream: a chunk, a pause, forever
                        chunk = b"data: x\n\n"
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        streaming.set()
                        await anyio.sleep(0.02)
                except OSError:
                    told.append("send raised")
                    group.cancel_scope.cancel()
        if not told:
            told.append("never told")

    async with serve(app) as running:
        with anyio.fail_after(BOUND):
            async with await anyio.connect_tcp("127.0.0.1", running.port) as stream:
                await stream.send(b"HEAD /events HTTP/1.1\r\nHost: x\r\n\r\n")
                head = await read_until(stream, b"\r\n\r\n")
                await streaming.wait()
            await _wait_for(told)
    assert head.startswith(b"HTTP/1.1 200")
    assert told[0] in ("http.disconnect", "send raised")


# ---- Request.wait_disconnected() with a request body nobody reads -------------------------


def unread_body_app(seen: list[object], reached: anyio.Event) -> Spikard:
    """A long poll that ignores its request body and waits for the client to leave."""
    app = Spikard()

    @app.post("/poll")
    async def poll(request: Request) -> PlainTextResponse:
        reached.set()
        with anyio.move_on_after(1.0):
            seen.append(await request.wait_disconnected())
            return PlainTextResponse("gone")
        seen.append("never told")
        return PlainTextResponse("answered")

    return app


@pytest.mark.xfail(
    strict=True,
    reason="DepartureWatch waits for body_finished first; a body the handler never reads "
    "never finishes, so the watch never reads the socket: the client's leaving is not seen",
)
@pytest.mark.parametrize(
    "rest",
    [b"", b"hel", b"hello"],
    ids=["body-not-sent", "body-half-sent", "body-sent-after-the-head"],
)
async def test_wait_disconnected_sees_the_client_leave_when_the_body_is_not_read(
    rest: bytes,
) -> None:
    seen: list[object] = []
    reached = anyio.Event()
    app = unread_body_app(seen, reached)
    async with app.test_server() as server:
        with anyio.fail_after(BOUND):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(b"POST /poll HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
                await reached.wait()
                if rest:
                    await stream.send(rest)
                    await anyio.sleep(0.05)
            await _wait_for(seen)
    assert seen == [True]


@pytest.mark.xfail(
    strict=True,
    reason="the same wait under Expect: 100-continue: no 100 goes out, no body comes, "
    "and the watch waits for the body forever",
)
async def test_wait_disconnected_sees_a_client_waiting_for_100_continue_leave() -> None:
    seen: list[object] = []
    reached = anyio.Event()
    app = unread_body_app(seen, reached)
    async with app.test_server() as server:
        with anyio.fail_after(BOUND):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(
                    b"POST /poll HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                    b"Expect: 100-continue\r\n\r\n"
                )
                await reached.wait()
            await _wait_for(seen)
    assert seen == [True]


# ---- absolute-form request targets (RFC 9112 3.2.2) --------------------------------------


def echo_url_app() -> Spikard:
    app = Spikard()

    @app.get("/x")
    async def x(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"{request.host} {request.url} {request.path}")

    return app


async def _get(port: int, head: bytes) -> bytes:
    with anyio.fail_after(BOUND):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(head)
            return await read_all(stream)


async def test_an_absolute_form_target_is_routed_by_its_path_and_keeps_its_query() -> None:
    async with echo_url_app().test_server() as server:
        data = await _get(
            server.port,
            b"GET http://a.example:8080/x?q=http://y/z HTTP/1.1\r\nHost: a.example:8080\r\n"
            b"Connection: close\r\n\r\n",
        )
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"a.example:8080 http://a.example:8080/x?q=http://y/z /x")


async def test_an_absolute_form_targets_authority_wins_over_the_host_header() -> None:
    async with echo_url_app().test_server() as server:
        data = await _get(
            server.port,
            b"GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        )
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"a.example http://a.example/x /x")


# ---- ASGI serving: the app task's cancellation respects anyio shields -----------------------


async def test_an_asgi_apps_shielded_cleanup_runs_to_its_end_when_shutdown_cuts_it() -> None:
    log: list[object] = []
    reached = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await receive()
        try:
            reached.set()
            await anyio.sleep(30)  # a slow call, never answered
        finally:
            with anyio.CancelScope(shield=True):  # as Starlette closes a FileResponse's file
                try:
                    await anyio.sleep(0.5)
                    log.append("cleaned up")
                except BaseException as exc:
                    log.append(f"cleanup interrupted: {type(exc).__name__}")
                    raise

    config = dataclasses.replace(default_http_config(), shutdown_timeout=0.2)
    adapter = ASGIApplication(app, lifespan="off", http_config=config)
    with anyio.fail_after(BOUND):
        async with serve(adapter) as running:
            stream = await anyio.connect_tcp("127.0.0.1", running.port)
            await stream.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await reached.wait()
        await stream.aclose()
    assert log == ["cleaned up"]


# ---- confirmed correct: regression tests --------------------------------------------------


def handover_app(seen: list[object], reached: anyio.Event, kept: anyio.Event) -> Spikard:
    """Two waiters; the first (reading) one is cancelled after the pipelined bytes came."""
    app = Spikard()

    @app.post("/upload")
    async def upload(request: Request) -> PlainTextResponse:
        return PlainTextResponse(b"got " + await request.body())

    @app.get("/poll")
    async def poll(request: Request) -> PlainTextResponse:
        first_scope = anyio.CancelScope()

        async def first() -> None:
            with first_scope:
                await request.wait_disconnected()
                seen.append("first returned")

        async def second() -> None:
            with anyio.move_on_after(0.4):
                seen.append(await request.wait_disconnected())
                return
            seen.append("answered")

        async with anyio.create_task_group() as group:
            group.start_soon(first)
            await anyio.sleep(0.02)  # the first waiter reads the socket now
            group.start_soon(second)  # and this one waits for its turn
            reached.set()
            await kept.wait()  # the client sent meanwhile: the first reader kept the bytes
            first_scope.cancel()
        return PlainTextResponse("polled")

    return app


async def test_a_cancelled_reader_hands_the_watch_over_and_loses_no_pipelined_byte() -> None:
    seen: list[object] = []
    reached, kept = anyio.Event(), anyio.Event()
    app = handover_app(seen, reached, kept)
    body = bytes(range(256)) * 40  # 10 KiB of the next request, read by the watch
    async with app.test_server() as server:
        with anyio.fail_after(BOUND):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
                await reached.wait()
                await stream.send(
                    b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await anyio.sleep(0.05)
                kept.set()
                data = await read_all(stream)
    assert seen == ["answered"]
    first, _, second = data.partition(b"polled")
    assert first.startswith(b"HTTP/1.1 200")
    assert second.endswith(b"got " + body)


async def test_after_a_handover_the_remaining_waiter_sees_the_client_leave() -> None:
    seen: list[object] = []
    reached, kept = anyio.Event(), anyio.Event()
    app = handover_app(seen, reached, kept)
    async with app.test_server() as server:
        with anyio.fail_after(BOUND):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
                await reached.wait()
                kept.set()
                await anyio.sleep(0.05)
            await _wait_for(seen)
    assert seen == [True]


def streaming_echo_app() -> Spikard:
    app = Spikard()

    @app.get("/ticks")
    async def ticks() -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            for i in range(20):
                yield f"tick {i}\n"
                await anyio.sleep(0.01)

        return StreamingResponse(chunks())

    @app.post("/echo")
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(await request.body())

    return app


def streaming_echo_asgi() -> ASGIApplication:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/echo":
            await send({"type": "http.response.body", "body": body})
            return

        async def listen() -> None:  # as sse-starlette does beside its stream
            await receive()
            group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(listen)
            for i in range(20):
                chunk = f"tick {i}\n".encode()
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await anyio.sleep(0.01)
            await send({"type": "http.response.body", "body": b""})
            group.cancel_scope.cancel()

    return ASGIApplication(app, lifespan="off")


@pytest.mark.parametrize("kind", ["spikard", "asgi"])
async def test_a_large_request_pipelined_during_a_streamed_response_is_served_whole_after_it(
    kind: str,
) -> None:
    body = bytes(range(256)) * 1024  # 256 KiB: past the watch's budget (max_header_bytes)
    pipelined = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    async with contextlib.AsyncExitStack() as stack:
        if kind == "spikard":
            port = (await stack.enter_async_context(streaming_echo_app().test_server())).port
        else:
            port = (await stack.enter_async_context(serve(streaming_echo_asgi()))).port
        with anyio.fail_after(BOUND):
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(b"GET /ticks HTTP/1.1\r\nHost: x\r\n\r\n")
                data = await read_until(stream, b"tick 0")
                async with anyio.create_task_group() as group:
                    group.start_soon(stream.send, pipelined)
                    data += await read_all(stream)
    streamed, _, echoed = data.partition(b"tick 19\n")
    assert streamed.startswith(b"HTTP/1.1 200")
    assert b"tick 18\n" in streamed
    assert echoed.count(b"HTTP/1.1 200") == 1
    assert echoed.endswith(b"\r\n\r\n" + body)


async def test_over_tls_a_handler_is_told_when_its_client_leaves() -> None:
    import ssl

    import trustme

    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    seen: list[object] = []
    reached = anyio.Event()
    app = Spikard()

    @app.get("/poll")
    async def poll(request: Request) -> PlainTextResponse:
        reached.set()
        with anyio.move_on_after(1.0):
            seen.append(await request.wait_disconnected())
            return PlainTextResponse("gone")
        seen.append("never told")
        return PlainTextResponse("answered")

    async with app.test_server(ssl_context=server_context) as server:
        with anyio.fail_after(BOUND):
            stream = await anyio.connect_tcp(
                "127.0.0.1", server.port, ssl_context=client_context, tls_standard_compatible=False
            )
            async with stream:
                await stream.send(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
                await reached.wait()
            await _wait_for(seen)
    assert seen == [True]


# ---- a spikard app hosted by an ASGI server: the http.disconnect after the response ------


def after_response_app(seen: list[object]) -> Spikard:
    """A handler whose background task still waits for the client when the response ends."""
    app = Spikard()

    @app.get("/after")
    async def after(request: Request) -> PlainTextResponse:
        async def later() -> None:
            seen.append(await request.wait_disconnected())

        app.state.group.start_soon(later)
        await anyio.sleep(0.05)  # the waiter is in the server's receive() now
        return PlainTextResponse("now")

    return app


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("server_kind", ["hypercorn", "uvicorn"])
async def test_hosted_a_wait_still_pending_when_the_response_completes_ends_with_false(
    server_kind: str, anyio_backend: str
) -> None:
    if server_kind == "uvicorn" and anyio_backend != "asyncio":
        pytest.skip("uvicorn serves on asyncio only")
    seen: list[object] = []
    app = after_response_app(seen)
    port = _free_port()
    stop = anyio.Event()

    async def run_server() -> None:
        if server_kind == "uvicorn":
            import uvicorn

            server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
            )
            async with anyio.create_task_group() as inner:
                inner.start_soon(server.serve)
                await stop.wait()
                server.should_exit = True
            return
        from hypercorn.config import Config

        if anyio_backend == "trio":
            from hypercorn.trio import serve as hypercorn_serve
        else:
            from hypercorn.asyncio import serve as hypercorn_serve  # type: ignore[assignment]
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.loglevel = "WARNING"
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait, mode="asgi")  # type: ignore[arg-type]

    with anyio.fail_after(3 * BOUND):
        async with anyio.create_task_group() as group:
            app.state.group = group
            async with app.lifespan_context():
                group.start_soon(run_server)
                while True:
                    try:
                        stream = await anyio.connect_tcp("127.0.0.1", port)
                        break
                    except OSError:
                        await anyio.sleep(0.05)
                async with stream:
                    await stream.send(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
                    data = await read_until(stream, b"now")
                    await _wait_for(seen)  # the client is still connected
                stop.set()
    assert data.startswith(b"HTTP/1.1 200")
    assert seen == [False]


# ---- the end of an exchange cut by shutdown: the form's files are still closed ------------


@pytest.mark.parametrize(
    "watched",
    [
        False,
        True,
    ],
    ids=["no-watch", "watched-from-another-task"],
)
async def test_a_forms_files_are_closed_when_shutdown_cuts_a_handler_with_a_pending_watch(
    watched: bool,
) -> None:
    uploads: list[UploadFile] = []
    reached = anyio.Event()
    app = Spikard(http=HTTPConfig(shutdown_timeout=0.2))

    @app.post("/upload")
    async def upload(request: Request) -> PlainTextResponse:
        form = await request.form()
        file = form["file"]
        assert isinstance(file, UploadFile)
        uploads.append(file)

        async def watch() -> None:  # holds the watch's lock while it reads the socket
            await request.wait_disconnected()

        if watched:
            app.state.group.start_soon(watch)
        reached.set()
        await anyio.sleep(30)  # never answers: the shutdown deadline cuts it
        return PlainTextResponse("late")

    boundary = b"xyz"
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nhello\r\n--xyz--\r\n"
    )
    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as group:
            app.state.group = group
            async with app.test_server() as server:
                stream = await anyio.connect_tcp("127.0.0.1", server.port)
                await stream.send(
                    b"POST /upload HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: multipart/form-data; boundary="
                    + boundary
                    + b"\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await reached.wait()
                await anyio.sleep(0.05)
            await stream.aclose()
    assert uploads
    closed = uploads[0].file.closed
    uploads[0].file.close()  # left open by the defect: no ResourceWarning in a later test
    assert closed


# ---- ASGI serving: a body over max_body_size read by a Starlette app ---------------------


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 20\r\n\r\n" + b"x" * 20,
        b"Transfer-Encoding: chunked\r\n\r\n14\r\n" + b"x" * 20 + b"\r\n0\r\n\r\n",
    ],
    ids=["content-length", "chunked"],
)
async def test_a_starlette_app_reading_a_body_over_max_body_size_answers_413(
    framing: bytes,
) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import PlainTextResponse as StarlettePlainText
    from starlette.routing import Route

    async def upload(request: StarletteRequest) -> StarlettePlainText:
        return StarlettePlainText(str(len(await request.body())))

    starlette = Starlette(routes=[Route("/up", upload, methods=["POST"])])
    adapter = ASGIApplication(starlette, lifespan="off", max_body_size=10)
    async with serve(adapter) as running:
        data = await _get(
            running.port, b"POST /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + framing
        )
    assert data.startswith(b"HTTP/1.1 413")
