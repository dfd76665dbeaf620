"""The HTTP bridge: an ASGI ``http`` scope answered by a spikard app.

Theory of operation
-------------------
The request is built from the scope (:mod:`.scope`) with a body read from ``http.request``
events as the handler pulls it (:mod:`.body`), and the app answers it exactly as on
spikard's own server (:meth:`~spikard.Spikard.handle`: routing, middleware, exception
handlers, ``FileResponse.prepare``). The response goes out as ASGI events:

- a whole :class:`~spikard.Response`: ``http.response.start`` and one
  ``http.response.body`` (empty for HEAD; the head keeps its ``content-length``);
- a :class:`~spikard.StreamingResponse` (SSE included): one ``http.response.body`` with
  ``more_body`` per chunk, the next chunk pulled only once ``send`` returned for the last
  (backpressure is the server's ``send``), then an empty final event. SSE keepalive
  comments go out while the body is silent. An ``http.disconnect`` (watched once the request
  body is finished) stops the body: its generator is closed, so its ``finally`` runs. A HEAD
  request never starts the body;
- a whole-file :class:`~spikard.FileResponse` through ``http.response.pathsend`` when the
  server offers that extension, slices through ``http.response.zerocopysend`` when it offers
  that one, else chunks read in a worker thread.

Every ``send`` is bounded by ``HTTPConfig.write_timeout``. A failure before the response
started answers 500; after it, the response is left incomplete, which makes the server drop
the connection (the client sees a cut-off body, never a whole-looking one). Either is
logged once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import IO, Any

import anyio

from ...connection.departure import DepartureWatch
from ...errors import ClientDisconnected
from ...files import FileResponse
from ...requests import Request
from ...responses import PlainTextResponse, Response, StreamingResponse
from .body import ASGIRequestBody, announces_body
from .scope import build_request, scope_headers
from .types import HostedApp, Message, Receive, Scope, Send

__all__ = ["serve_http"]

logger = logging.getLogger("spikard.http")

_PATHSEND = "http.response.pathsend"
_ZEROCOPY = "http.response.zerocopysend"


class _SendFailed(Exception):
    """The server's ``send`` raised or stalled: the client is gone; stop quietly."""


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


async def serve_http(app: HostedApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one ASGI ``http`` scope with ``app``."""
    config = app.http_config
    peer = _peer(scope)
    headers = scope_headers(scope)
    expected, length = announces_body(
        headers, scope.get("http_version") or "1.1", scope.get("method", "GET").upper()
    )
    body = ASGIRequestBody(
        receive, config.body_timeout, expected=expected, length=length, peer=peer
    )
    departures = _Departures(receive, body)
    request = build_request(
        scope,
        headers,
        source=body,
        max_body_size=config.max_body_size,
        departures=departures,
    )
    responder = _Responder(scope, receive, send, request, departures, config.write_timeout)
    try:
        try:
            response = await app.handle(request, None)
        except Exception:
            logger.exception("the app failed on %s %s", request.method, request.path)
            response = PlainTextResponse("Internal Server Error", 500)
        if response is None:
            response = Response(status_code=500)
        await responder.respond(response)
    except _SendFailed:
        pass
    finally:
        with anyio.CancelScope(shield=True):  # bounded: stop() cancels the receiver
            await departures.stop()
        await request.aclose()


class _Departures:
    """The client leaving, as ``http.disconnect`` tells it, for every waiter of one request.

    One task receives at a time (:class:`~spikard.connection.departure.DepartureWatch`):
    some servers hand each message to one ``receive`` call only. Made on the first wait.
    """

    __slots__ = ("_body", "_completing", "_receive", "_stopped", "_watch")

    def __init__(self, receive: Receive, body: ASGIRequestBody) -> None:
        self._receive = receive
        self._body = body
        self._watch: DepartureWatch | None = None
        self._stopped = False
        self._completing = False

    async def _until_disconnect(self, max_bytes: int) -> bytes:
        while (await self._receive())["type"] != "http.disconnect":
            pass  # nothing else is due once the body ended
        if self._completing:
            # Servers say http.disconnect once the response was sent too (some while its
            # last event is still in send): that is the end of the exchange, not a
            # departure. stop() ends this wait.
            await anyio.sleep_forever()
        return b""

    def completing(self) -> None:
        """The response's last event is being sent: a later ``http.disconnect`` is its end."""
        self._completing = True

    async def _body_settled(self) -> bool | None:
        body = self._body
        await body.wait_finished()
        if body.error is None:
            return False
        return True if isinstance(body.error, ClientDisconnected) else None

    async def wait_departure(self, exchange: int) -> bool:
        """Wait until ``http.disconnect`` (True) or the end of the response (False)."""
        if self._stopped:
            return False
        watch = self._watch
        if watch is None:
            watch = self._watch = DepartureWatch(
                self._until_disconnect, _ignore, 2**62, self._body_settled
            )
        return await watch.wait()

    async def stop(self) -> None:
        """The response is over: every wait ends (False)."""
        self._stopped = True
        watch = self._watch
        if watch is not None:
            await watch.stop()


def _ignore(data: bytes) -> None:
    """No bytes come through ``receive`` once the body ended."""


class _Responder:
    """Send one response to an ASGI ``http`` scope (see the module docs)."""

    __slots__ = (
        "_departures",
        "_extensions",
        "_head",
        "_lock",
        "_receive",
        "_request",
        "_send",
        "_timeout",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: Request,
        departures: _Departures,
        timeout: float,
    ) -> None:
        self._receive = receive
        self._send = send
        self._request = request
        self._departures = departures
        self._timeout = timeout
        self._extensions: dict[str, Any] = scope.get("extensions") or {}
        self._head = request.method == "HEAD"
        self._lock: anyio.Lock | None = None
        """Only while a keepalive task sends beside the chunk loop."""

    async def _emit(self, message: Message) -> None:
        """``send`` one event (the caller bounds the time).

        Raises:
            _SendFailed: the server's ``send`` raised: the client is gone.
        """
        if message["type"] != "http.response.start" and not message.get("more_body"):
            self._departures.completing()  # the response's last event
        try:
            await self._send(message)
        except Exception as exc:
            logger.debug("the ASGI server refused %s: %r", message["type"], exc)
            raise _SendFailed from None

    async def _bounded(self, message: Message) -> None:
        """``send`` one event of a streamed body within the write timeout, one at a time.

        Raises:
            _SendFailed: ``send`` raised or made no progress for ``write_timeout``.
        """
        lock = self._lock
        with anyio.move_on_after(self._timeout) as scope:
            if lock is None:
                await self._emit(message)
            else:
                async with lock:
                    await self._emit(message)
        if scope.cancelled_caught:
            self._stalled()

    def _stalled(self) -> None:
        logger.info(
            "response to %s %s stalled for %.0f s; leaving it incomplete",
            self._request.method,
            self._request.path,
            self._timeout,
        )
        raise _SendFailed

    async def _start(self, response: Response) -> bool:
        """Send the head; False when its headers cannot be sent (a 500 went instead)."""
        try:
            headers = response.raw_headers()
        except UnicodeEncodeError as exc:
            logger.error(
                "the response to %s %s has a header that cannot be sent (%s); answering 500",
                self._request.method,
                self._request.path,
                exc,
            )
            await self._whole(PlainTextResponse("Internal Server Error", 500))
            return False
        await self._emit(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        return True

    async def respond(self, response: Response) -> None:
        """Send ``response``, whole or streamed."""
        if not isinstance(response, StreamingResponse):
            with anyio.move_on_after(self._timeout) as scope:  # one bound for both events
                await self._whole(response)
            if scope.cancelled_caught:
                self._stalled()
            return
        with anyio.move_on_after(self._timeout) as scope:
            started = await self._start(response)
        if scope.cancelled_caught:
            self._stalled()
        if not started:
            await _close_unstarted(response.content)
            return
        if self._head:
            await _close_unstarted(response.content)
            await self._bounded({"type": "http.response.body", "body": b""})
            return
        if isinstance(response, FileResponse) and await self._path_sent(response):
            return
        if response.keepalive is not None:
            self._lock = anyio.Lock()  # the keepalive task sends too
        if await self._stream(response):
            await self._bounded({"type": "http.response.body", "body": b""})

    async def _whole(self, response: Response) -> None:
        if not await self._start(response):
            return
        content = b"" if self._head else response.body
        await self._emit({"type": "http.response.body", "body": content})

    async def _path_sent(self, response: FileResponse) -> bool:
        """A whole file through ``http.response.pathsend``; False when that does not apply."""
        if _PATHSEND not in self._extensions or response.status_code == 206:
            return False
        length = response.headers.get("content-length")
        try:
            size, path = await anyio.to_thread.run_sync(_size_and_path, response.path)
        except OSError:
            return False
        if length is None or length.strip() != str(size):
            return False  # a range, or a file that changed since its head was made
        await _close_unstarted(response.content)
        await self._bounded({"type": _PATHSEND, "path": path})
        return True

    async def _stream(self, response: StreamingResponse) -> bool:
        """Send the chunks of a streamed body; True when it ended (its end is not sent).

        False: the client left (``http.disconnect``), a send failed or stalled, or the body
        raised (logged); the response is then left incomplete.
        """
        content = response.content
        encode = response.encode
        attach_sendfile = getattr(content, "attach_sendfile", None)
        if attach_sendfile is not None and _ZEROCOPY in self._extensions:
            attach_sendfile(self._zerocopy)
        chunks = _chunks(content)
        finished = False
        activity = [0]  # odd while a chunk is being sent; changes with every chunk
        try:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(self._watch, task_group.cancel_scope)
                if response.keepalive is not None:
                    task_group.start_soon(self._keep_alive, response.keepalive, activity)
                try:
                    async for chunk in chunks:
                        data = encode(chunk)
                        if data:
                            activity[0] += 1
                            try:
                                await self._bounded(
                                    {"type": "http.response.body", "body": data, "more_body": True}
                                )
                            finally:
                                activity[0] += 1
                    finished = True
                except _SendFailed:
                    pass
                except Exception:
                    logger.exception(
                        "a streamed response body to %s %s raised",
                        self._request.method,
                        self._request.path,
                    )
                task_group.cancel_scope.cancel()  # done: stop watching
        finally:
            if attach_sendfile is not None:
                attach_sendfile(None)
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(self._timeout):
                    await aclose()
        return finished

    async def _watch(self, scope: anyio.CancelScope) -> None:
        """Once the request body is finished: stop the response at ``http.disconnect``."""
        if await self._departures.wait_departure(0):
            logger.debug("client left during the response to %s", self._request.path)
            scope.cancel()

    async def _keep_alive(self, keepalive: tuple[float, bytes], activity: list[int]) -> None:
        """Send ``keepalive[1]`` every ``keepalive[0]`` seconds in which no chunk went out."""
        interval, filler = keepalive
        seen = activity[0]
        while True:
            await anyio.sleep(interval)
            if activity[0] == seen and not seen % 2:  # silent, and not in a send
                try:
                    await self._bounded(
                        {"type": "http.response.body", "body": filler, "more_body": True}
                    )
                except _SendFailed:
                    return  # the chunk loop meets the same end
            seen = activity[0]

    async def _zerocopy(self, file: IO[bytes], offset: int, count: int) -> int | None:
        """A file slice through ``http.response.zerocopysend`` (the server sends it)."""
        await self._bounded(
            {
                "type": _ZEROCOPY,
                "file": file,
                "offset": offset,
                "count": count,
                "more_body": True,
            }
        )
        return count


def _size_and_path(path: str) -> tuple[int, str]:
    """The file's size and absolute path (``http.response.pathsend`` wants one)."""
    return os.stat(path).st_size, os.path.abspath(path)


def _chunks(content: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterator[Any]:
    """``content``'s chunks: its own iterator, or a plain iterable's advanced in a thread."""
    if isinstance(content, AsyncIterable):
        return aiter(content)
    return _threaded(iter(content))


async def _threaded(iterator: Iterator[Any]) -> AsyncIterator[Any]:
    done = object()
    while True:
        chunk = await anyio.to_thread.run_sync(next, iterator, done)
        if chunk is done:
            return
        yield chunk


async def _close_unstarted(content: AsyncIterable[Any] | Iterable[Any]) -> None:
    """A body that is never sent: an async generator is closed before its first line."""
    aclose: Callable[[], Any] | None = getattr(content, "aclose", None)
    if aclose is not None:
        await aclose()
