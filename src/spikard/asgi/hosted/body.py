"""A request body read from ASGI ``http.request`` events, as the handler pulls it.

The request's :class:`~spikard.requests.BodySource`. Nothing is received before the handler
asks: each :meth:`ASGIRequestBody.read` takes one ``http.request`` event (``more_body``
says whether more follow), so the ASGI server's own flow control paces the client. The
limits are spikard's: ``max_body_size`` (413) and ``body_timeout`` per read (408); an
``http.disconnect`` first is :class:`~spikard.errors.ClientDisconnected`. A failed body
fails every later read the same way and is logged once.

One reader owns ``receive``: the body until it :attr:`~ASGIRequestBody.finished`, then the
watcher of a streamed response (which waits for :meth:`~ASGIRequestBody.wait_finished`).
"""

from __future__ import annotations

import logging

import anyio

from ...datastructures import Headers
from ...errors import BodyTimeout, ClientDisconnected, ContentTooLarge
from .types import Receive

__all__ = ["ASGIRequestBody", "announces_body"]

logger = logging.getLogger("spikard.http")


def announces_body(headers: Headers, http_version: str, method: str) -> tuple[bool, int | None]:
    """Whether the request has a body to read, and its ``content-length`` when given.

    HTTP/1 announces a body with ``content-length`` or ``transfer-encoding``; HTTP/2 and 3
    may send one without either, so there every method but GET, HEAD and OPTIONS is taken
    to have one (reading it then finds out).
    """
    if "transfer-encoding" in headers:
        return True, None
    value = headers.get("content-length")
    if value is None:
        unframed = http_version not in ("1.1", "1.0") and method not in _BODILESS
        return unframed, None
    try:
        length = int(value)
    except ValueError:
        return True, None  # the server would have refused it; read what comes
    return length > 0, length


_BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


class ASGIRequestBody:
    """The body of one ASGI ``http`` request; see the module docs.

    Args:
        receive: the scope's ``receive``.
        timeout: ``body_timeout``: seconds one read may wait for an event.
        expected: whether the head announced a body; without one, reads end at once.
        length: the ``content-length``, when the head gave one.
        peer: the client, for log lines.
    """

    __slots__ = (
        "_finished_event",
        "_length",
        "_limit",
        "_peer",
        "_reading",
        "_receive",
        "_received",
        "_started",
        "_timeout",
        "ended",
        "error",
    )

    def __init__(
        self,
        receive: Receive,
        timeout: float,
        *,
        expected: bool,
        length: int | None,
        peer: str,
    ) -> None:
        self._receive = receive
        self._timeout = timeout
        self._length = length
        self._peer = peer
        self._limit = 0
        self._received = 0
        self._started = False
        self._reading = False
        self._finished_event: anyio.Event | None = None
        self.ended = not expected
        """The last ``http.request`` event was taken (or no body was announced)."""
        self.error: Exception | None = None
        """What every read raises once the body failed."""

    @property
    def finished(self) -> bool:
        """The body ended or failed: it reads no more events."""
        return self.ended or self.error is not None

    async def wait_finished(self) -> None:
        """Wait until the body ended or failed."""
        if not self.finished:
            if self._finished_event is None:
                self._finished_event = anyio.Event()
            await self._finished_event.wait()

    async def read(self, max_body_size: int) -> bytes:
        """The next bytes, ``b""`` at the end; see :class:`~spikard.requests.BodySource`."""
        if self.error is not None:
            raise self.error
        if self.ended:
            return b""
        if not self._started:
            self._started = True
            self._limit = max_body_size
            if self._length is not None and self._length > max_body_size:
                raise self._fail(
                    ContentTooLarge(max_body_size),
                    "request body from %s announces %d bytes, over max_body_size (%d)",
                    self._length,
                    max_body_size,
                )
        if self._reading:
            raise RuntimeError("the request body is being read by another task")
        self._reading = True
        try:
            while True:
                message = None
                with anyio.move_on_after(self._timeout):
                    message = await self._receive()
                if message is None:
                    raise self._fail(
                        BodyTimeout(self._timeout),
                        "request body from %s stalled for %g s",
                        self._timeout,
                    )
                if message["type"] != "http.request":
                    raise self._fail(
                        ClientDisconnected(), "client %s left before the request body ended"
                    )
                chunk = bytes(message.get("body") or b"")
                self._received += len(chunk)
                if self._received > self._limit:
                    raise self._fail(
                        ContentTooLarge(self._limit),
                        "request body from %s went over max_body_size (%d)",
                        self._limit,
                    )
                if not message.get("more_body", False):
                    self._end()
                    return chunk
                if chunk:
                    return chunk
        finally:
            self._reading = False

    def _end(self) -> None:
        self.ended = True
        self._wake()

    def _fail(self, error: Exception, message: str, *args: object) -> Exception:
        """Record ``error`` as the body's end and log ``message`` once."""
        if self.error is None:
            self.error = error
            logger.info(message, self._peer, *args)
            self._wake()
        return self.error

    def _wake(self) -> None:
        event, self._finished_event = self._finished_event, None
        if event is not None:
            event.set()
