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

A stream that relays a channel as it is (:meth:`EventSourceResponse.from_channel`) needs no
generator: each published message is encoded once for every such stream of the process and
written to each connection from the publisher's task while the connection keeps up (a
connection that does not is fed from its backlog by its own task, as a generator is).

The format (WHATWG HTML, "Server-sent events"): ``field: value`` lines, one blank line after
each event; data with several lines becomes several ``data:`` lines; a line starting with
``:`` is a comment. A browser's ``EventSource`` reconnects on its own after ``retry``
milliseconds and sends the last ``id`` it saw as ``Last-Event-ID``
(:attr:`~spikard.requests.Request.last_event_id`), so a handler can resume from there.
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .datastructures import HeadersInit
from .pubsub.base import validate_channel
from .pubsub.errors import SubscriberTooSlow
from .pubsub.subscription import ChannelMessage, SlowConsumerPolicy, check_policy, unique
from .responses import StreamingResponse, encode_chunk
from .typed.encoding import dumps, encode_value

if TYPE_CHECKING:
    from .pubsub.base import Broker

__all__ = ["EventSourceResponse", "ServerSentEvent", "encode_event"]

logger = logging.getLogger("spikard.http")
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
            data = self.data
            if "\n" not in data and "\r" not in data:
                lines.append(f"data: {data}")
            else:
                lines += (f"data: {line}" for line in _LINE_BREAK.split(data))
        return ("\n".join(lines) + "\n\n").encode()


def encode_event(item: object) -> bytes:
    """Encode what an SSE generator yielded: an event, text (its data), or JSON.

    JSON-able values go out as HTTP routes write them; a msgspec Struct, a pydantic model or
    a dataclass, by its library.

    Raises:
        TypeError: the value is not JSON-serializable.
    """
    if isinstance(item, ServerSentEvent):
        return item.encode()
    if isinstance(item, str):
        return ServerSentEvent(item).encode()
    try:
        # A Struct, a pydantic model or a dataclass by its library; the rest (NaN and
        # Infinity refused: JSON.parse rejects them) as HTTP routes write JSON.
        text = encode_value(item)
        if text is None:
            text = dumps(item)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"an SSE stream yielded {type(item).__name__!r}, which is not JSON-serializable; "
            "yield ServerSentEvent, str, JSON-able values or typed models"
        ) from exc
    return ServerSentEvent(text).encode()


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
        super().__init__(content, status_code, headers)
        self.encode = encode_event
        self.headers.setdefault("cache-control", "no-cache")
        self.headers.setdefault("x-accel-buffering", "no")  # nginx: do not buffer the stream
        self.keepalive = None if ping is None else (ping, b": ping\n\n")

    @classmethod
    def from_channel(
        cls,
        broker: Broker,
        *channels: str,
        encode: Callable[[ChannelMessage], object] | None = None,
        first: AsyncIterable[Any] | Iterable[Any] | None = None,
        max_backlog: int = 100,
        policy: SlowConsumerPolicy = "drop_oldest",
        ping: float | None = DEFAULT_PING,
        status_code: int = 200,
        headers: HeadersInit = None,
    ) -> EventSourceResponse:
        """An SSE stream of what is published to ``channels``: one event per message.

        ::

            @app.get("/feed")
            async def feed(request: Request) -> EventSourceResponse:
                return EventSourceResponse.from_channel(app.broker, "feed")

        The subscription starts when the stream does (not for ``HEAD``) and ends with it.
        ``first`` is sent before the channel's messages (say, what a reconnecting client
        missed since ``request.last_event_id``); what is published meanwhile waits in the
        backlog. A message is encoded once per publish for every stream with the same
        ``encode`` (pass a function defined once, not a new lambda per request) and then
        written to each connection without a task switch while the connection takes it at
        once; a connection that cannot gets it from its backlog (``max_backlog``,
        ``policy``: as in :meth:`Broker.subscribe <spikard.pubsub.Broker.subscribe>`).
        A client that stops reading holds at most the transport's write buffer (its
        high-water mark) and ``max_backlog`` messages; the next write that makes no progress
        for ``HTTPConfig.write_timeout`` (an event's or a ping's) drops it.

        Args:
            broker: the broker to subscribe to (``app.broker``).
            *channels: one or more channel names.
            encode: turns a :class:`~spikard.pubsub.ChannelMessage` into what an SSE
                generator may yield (:class:`ServerSentEvent`, ``str``, JSON-able);
                default: the message's text is the event's data (a binary message is
                decoded as UTF-8).
            first: events (as a generator would yield them) sent before the channel's.
            max_backlog: unsent messages kept for a connection that is behind.
            policy: ``"drop_oldest"``, ``"disconnect"`` (the stream ends with its last
                chunk, logged at INFO: the browser reconnects) or ``"block"``.
            ping: seconds without an event before a keepalive comment; None: never.
            status_code: the HTTP status.
            headers: extra header fields.

        Raises:
            ValueError: no channel, an invalid channel name, ``max_backlog < 1`` or an
                unknown policy.
        """
        if not channels:
            raise ValueError("from_channel() needs at least one channel")
        for channel in channels:
            validate_channel(channel)
        check_policy(max_backlog, policy)
        relay = _ChannelRelay(
            broker, unique(channels), encode or message_data, first, max_backlog, policy
        )
        response = cls(relay, ping=ping, status_code=status_code, headers=headers)
        response.encode = encode_chunk  # the relay yields encoded events
        return response


def message_data(item: ChannelMessage) -> str:
    """The default encoding of a channel's message: its text is the event's data.

    Raises:
        UnicodeDecodeError: a binary message that is not UTF-8.
    """
    text = item.message.as_text()
    if text is not None:
        return text
    return (item.message.as_binary() or b"").decode()


_ENCODED: weakref.WeakKeyDictionary[Callable[..., object], tuple[ChannelMessage, bytes]] = (
    weakref.WeakKeyDictionary()
)
"""``encode`` -> its last message and that message's event bytes: a publish delivers one
``ChannelMessage`` to every subscription, so the streams after the first reuse the bytes."""


def _encode_once(encode: Callable[[ChannelMessage], object], item: ChannelMessage) -> bytes:
    try:
        last = _ENCODED.get(encode)
    except TypeError:  # not weakly referable: no sharing
        return encode_event(encode(item))
    if last is not None and last[0] is item:
        return last[1]
    data = encode_event(encode(item))
    _ENCODED[encode] = (item, data)
    return data


class _ChannelRelay:
    """The content of :meth:`EventSourceResponse.from_channel`: event bytes from a channel.

    The connection may offer a synchronous writer (:meth:`attach_writer`); the relay then
    lets the subscription hand it messages while the stream waits for one.
    """

    __slots__ = ("_broker", "_channels", "_encode", "_first", "_limits", "_writer")

    def __init__(
        self,
        broker: Broker,
        channels: tuple[str, ...],
        encode: Callable[[ChannelMessage], object],
        first: AsyncIterable[Any] | Iterable[Any] | None,
        max_backlog: int,
        policy: SlowConsumerPolicy,
    ) -> None:
        self._broker = broker
        self._channels = channels
        self._encode = encode
        self._first = first
        self._limits = (max_backlog, policy)
        self._writer: Callable[[bytes], bool] | None = None

    def attach_writer(self, writer: Callable[[bytes], bool] | None) -> None:
        """``writer(chunk)`` sends a chunk at once and says True, or says False (None: none)."""
        self._writer = writer

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._events()

    async def _events(self) -> AsyncIterator[bytes]:
        max_backlog, policy = self._limits
        encode = self._encode
        async with self._broker.subscribe(
            *self._channels, max_backlog=max_backlog, policy=policy
        ) as subscription:
            first = self._first
            if isinstance(first, AsyncIterable):
                async for event in first:
                    yield encode_event(event)
            elif first is not None:
                for event in first:
                    yield encode_event(event)
            writer = self._writer
            if writer is not None:

                def deliver(item: ChannelMessage) -> bool:
                    try:
                        data = _encode_once(encode, item)
                    except Exception:
                        return False  # raised again, and logged, by the stream's own task
                    return writer(data)

                subscription.deliver_directly(deliver)
            try:
                async for item in subscription:
                    yield _encode_once(encode, item)
            except SubscriberTooSlow as exc:
                # The stream ends with its last chunk; the browser reconnects and resumes.
                logger.info("ending an event stream: %s", exc)
            finally:
                subscription.deliver_directly(None)
