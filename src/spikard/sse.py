"""Server-Sent Events: a stream of events over one HTTP response (``text/event-stream``).

An SSE route is an async generator that yields :class:`ServerSentEvent` objects, ``str``
(one event's data) or any JSON-able value (sent as JSON text); ``@app.sse(path)`` registers
one, and a route may also return :class:`EventSourceResponse` itself. The stream has the
backpressure, departure and shutdown rules of every streamed body
(:class:`~spikard.responses.StreamingResponse`), plus a keepalive comment every ``ping``
seconds in which no event went out, so that proxies and browsers keep the stream open.
When the client leaves or the server shuts down, the generator is cancelled where it waits
and closed: its ``finally`` runs, but an ``await`` there may be cancelled too; cleanup that
must await shields itself, with a bound (``anyio.move_on_after(2, shield=True)``).
``async with app.broker.subscribe(...)`` inside the generator cleans up by itself.

The format (WHATWG HTML, "Server-sent events"): ``field: value`` lines, one blank line after
each event; data with several lines becomes several ``data:`` lines; a line starting with
``:`` is a comment. A browser's ``EventSource`` reconnects on its own after ``retry``
milliseconds and sends the last ``id`` it saw as ``Last-Event-ID``
(:attr:`~spikard.requests.Request.last_event_id`), so a handler can resume from there.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

from .datastructures import HeadersInit
from .responses import StreamingResponse

__all__ = ["EventSourceResponse", "ServerSentEvent", "encode_event"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
DEFAULT_PING = 15.0
"""Seconds without an event after which a keepalive comment is sent."""


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One event. ``data`` may span lines; ``event``, ``id`` must not.

    Args:
        data: the event's data (``None``: an event with no data line, e.g. only ``retry``).
        event: the event type (``EventSource.addEventListener(event, ...)``); default
            ``message``.
        id: the event id the browser echoes as ``Last-Event-ID`` when it reconnects.
        retry: milliseconds the browser waits before reconnecting.
        comment: a comment line (ignored by browsers).

    Raises:
        TypeError: a text field that is not ``str``, or a ``retry`` that is not an ``int``.
        ValueError: ``event`` or ``id`` with a line break (``id`` with NUL), or a negative
            ``retry``.
    """

    data: str | None = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        for name in ("data", "event", "id", "comment"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(
                    f"a server-sent event's {name} must be str or None, not "
                    f"{type(value).__name__!r}"
                )
        for name in ("event", "id"):
            value = getattr(self, name)
            if value is not None and _LINE_BREAK.search(value):
                raise ValueError(f"a server-sent event's {name} cannot contain a line break")
        # A browser ignores an id with NUL (the event would arrive, its id silently dropped).
        if self.id is not None and "\0" in self.id:
            raise ValueError("a server-sent event's id cannot contain NUL")
        if self.retry is not None:
            # The browser takes only ASCII digits: no sign, no fraction, no "True".
            if not isinstance(self.retry, int) or isinstance(self.retry, bool):
                raise TypeError(
                    f"retry must be an int (milliseconds), not {type(self.retry).__name__!r}"
                )
            if self.retry < 0:
                raise ValueError("retry must be a non-negative number of milliseconds")

    def encode(self) -> bytes:
        """The event as it goes on the wire, blank line included.

        Lines end with LF only; a value's CR, LF or CRLF starts a new ``data:`` (or comment)
        line, so the browser sees each line break of ``data`` as LF.

        Raises:
            UnicodeEncodeError: a field holds a lone surrogate (not encodable as UTF-8).
        """
        lines: list[str] = []
        if self.comment is not None:
            lines += (f": {line}" for line in _LINE_BREAK.split(self.comment))
        if self.event is not None:
            lines.append(f"event: {self.event}")
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.retry is not None:
            lines.append(f"retry: {self.retry}")
        if self.data is not None:
            lines += (f"data: {line}" for line in _LINE_BREAK.split(self.data))
        return ("\n".join(lines) + "\n\n").encode()


def encode_event(item: object) -> bytes:
    """Encode what an SSE generator yielded: an event, text (its data) or JSON-able data.

    Raises:
        TypeError: the value is not JSON-serializable.
    """
    if isinstance(item, ServerSentEvent):
        return item.encode()
    if isinstance(item, str):
        return ServerSentEvent(item).encode()
    try:
        # allow_nan=False: NaN and Infinity are not JSON, and JSON.parse rejects them.
        text = json.dumps(item, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"an SSE stream yielded {type(item).__name__!r}, which is not JSON-serializable; "
            "yield ServerSentEvent, str or JSON-able values"
        ) from exc
    return ServerSentEvent(text).encode()


async def _events(source: AsyncIterable[Any]) -> AsyncIterator[bytes]:
    iterator = aiter(source)
    try:
        async for item in iterator:
            yield encode_event(item)
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


class EventSourceResponse(StreamingResponse):
    """An SSE stream from an async iterable of events (see the module docs).

    Args:
        content: yields :class:`ServerSentEvent`, ``str`` or JSON-able values.
        ping: seconds without an event before a keepalive comment goes out; None: never.
        status_code: the HTTP status.
        headers: extra header fields.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncIterable[Any],
        *,
        ping: float | None = DEFAULT_PING,
        status_code: int = 200,
        headers: HeadersInit = None,
    ) -> None:
        if not isinstance(content, AsyncIterable):
            raise TypeError(
                f"EventSourceResponse needs an async iterable, not {type(content).__name__!r}"
            )
        if ping is not None and ping <= 0:
            raise ValueError("ping must be positive (or None)")
        super().__init__(_events(content), status_code, headers)
        self.headers.setdefault("cache-control", "no-cache")
        self.headers.setdefault("x-accel-buffering", "no")  # nginx: do not buffer the stream
        self.keepalive = None if ping is None else (ping, b": ping\n\n")
