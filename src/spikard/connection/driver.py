"""The WebSocket connection driver: a sans-I/O protocol object run over an anyio byte stream.

Theory of operation
-------------------
One :class:`WebSocketConnection` owns one accepted socket. It is read in one of two ways:

- **Pushed** (:meth:`~WebSocketConnection.push_to`; stream handlers on asyncio): the
  transport's own callbacks (:class:`~.feed.TransportFeed`) hand every read to
  :meth:`~WebSocketConnection.feed`, which parses a queue's worth of messages and puts them
  straight into the handler's bounded queue. No task, and one event-loop wakeup per message
  (the handler's). The close deadline is a loop timer.
- **Pulled** (:meth:`~WebSocketConnection.run`; the callback shim, trio, TLS): a reader loop
  feeds the protocol and hands every complete message to a ``deliver`` coroutine, in a
  cancel scope whose deadline is the close timeout once a close frame went out.

Keepalive pings, pong deadlines and the idle timeout run on the server's
:class:`~.heartbeat.Heartbeat` (one task for all connections), through :meth:`on_timer`.

- **Backpressure.** Pulled, the reader awaits ``deliver`` before it reads again; pushed, a
  full queue stalls the feed, which pauses the transport once a few reads are held, until
  the handler takes a message. Either way a slow consumer stops the reads, and TCP flow
  control slows the peer. Replies that pile up unread (pongs) stop the reads too.
- **Writes** go to the transport as they are made (one lock where there is no direct
  writer: trio, TLS). The protocol buffers the bytes of every event, so a flush writes
  everything queued, in order, and pong and close replies go out once per read. A send
  made while more received messages wait (``more_coming``) may ride along with the next
  one, or go out on the loop's next turn, as long as the transport keeps up.
- **Closing.** :attr:`closed` is set the moment the input ends (close handshake done, peer
  broke the protocol, or TCP lost), even while messages of the same read are still being
  delivered, so the layers above can react at once. After a peer's protocol error the error
  close frame goes out when the application calls :meth:`close`, after its last replies. Once
  we have sent a close frame the peer gets ``close_timeout`` seconds to answer before the
  connection is aborted.
- Transport errors (reset, broken pipe) never escape: they end the connection with 1006.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio
import anyio.abc

from ..config import WebSocketConfig
from ..errors import ConnectionClosed
from ..messages import CloseCode, WebSocketMessage
from ..protocol.websocket import Event, PongReceived, ProtocolState, WebSocketProtocol
from .feed import TransportFeed
from .heartbeat import Heartbeat
from .transport import DirectReader, DirectWriter, LightEvent, direct_reader, direct_writer

__all__ = ["Deliver", "MessageSink", "WebSocketConnection"]

logger = logging.getLogger("spikard.websocket")

Deliver = Callable[[WebSocketMessage], Awaitable[None]]


class MessageSink(Protocol):
    """Where :meth:`WebSocketConnection.push_to` delivers messages: a bounded queue."""

    def try_put(self, item: WebSocketMessage) -> bool:
        """Take ``item`` if there is room; False when full. Raises ClosedResourceError."""

    def call_when_room(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when there is room again (or the sink closed)."""


_TRANSPORT_ERRORS = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)


class WebSocketConnection:
    """An open WebSocket on a byte stream: reads, writes, keepalive and the close handshake.

    Args:
        stream: the accepted byte stream, positioned after the handshake.
        protocol: the protocol object, already fed with any trailing handshake bytes.
        config: limits and timers.
        peer: a label for log lines (``"127.0.0.1:53211 /echo"``).
        heartbeat: the running server-wide timer task; without one, :meth:`run` runs its own.
        reader: a :class:`~.transport.DirectReader` already installed on ``stream``, if any.
        writer: a :class:`~.transport.DirectWriter` for ``stream`` already made, if any.
    """

    __slots__ = (
        "_aborted",
        "_activity_seen",
        "_close_by",
        "_close_timer",
        "_closed",
        "_config",
        "_delivering",
        "_direct_writer",
        "_feed",
        "_flush_scheduled",
        "_heartbeat",
        "_input_ended",
        "_keepalive_payload",
        "_loop",
        "_more_input",
        "_next_idle_check",
        "_next_ping",
        "_on_pushed_all",
        "_peer",
        "_pending",
        "_pings",
        "_pong_deadline",
        "_reader",
        "_scope",
        "_sink",
        "_stream",
        "_timers_started",
        "_write_lock",
        "messages_received",
        "messages_sent",
        "on_input_ended",
        "protocol",
    )

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        protocol: WebSocketProtocol,
        config: WebSocketConfig,
        peer: str = "",
        heartbeat: Heartbeat | None = None,
        reader: DirectReader | None = None,
        writer: DirectWriter | None = None,
    ) -> None:
        self.protocol = protocol
        self._reader = reader
        self._closed: anyio.Event | LightEvent | None = None
        self._input_ended = False
        self._stream = stream
        self._config = config
        self._peer = peer
        self._direct_writer = writer or direct_writer(stream)
        self._write_lock = anyio.Lock() if self._direct_writer is None else None
        self._close_by: float | None = None
        self.on_input_ended: Callable[[], None] | None = None
        """Called once, synchronously, when the input ends (see :attr:`closed`)."""
        self._pings: dict[bytes, anyio.Event] = {}
        self._heartbeat = heartbeat
        self._keepalive_payload: bytes | None = None
        """The payload of the keepalive ping whose pong is awaited."""
        self._next_ping = math.inf
        self._pong_deadline = math.inf
        self._next_idle_check = math.inf
        self._activity_seen = -1
        self._timers_started = False
        self._scope: anyio.CancelScope | None = None
        self._feed: TransportFeed | None = None
        self._sink: MessageSink | None = None
        self._on_pushed_all: Callable[[], None] | None = None
        self._pending: list[Event] = []
        self._loop: asyncio.AbstractEventLoop | None = None if reader is None else reader.loop
        self._flush_scheduled = False
        self._more_input = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._delivering = False
        self._aborted = False
        self.messages_received = 0
        """Messages delivered to the application so far."""
        self.messages_sent = 0
        """Messages the application sent so far."""

    # ---- public API ------------------------------------------------------------------------

    @property
    def closed(self) -> anyio.Event | LightEvent:
        """Set when the input ended (close handshake done, protocol error, or TCP lost)."""
        if self._closed is None:  # made on demand: most connections never wait on it
            self._closed = anyio.Event() if self._loop is None else LightEvent(self._loop)
            if self._input_ended:
                self._closed.set()
        return self._closed

    async def send(self, message: WebSocketMessage, more_coming: bool = False) -> None:
        """Send one message (a close message starts the close handshake).

        With ``more_coming`` (the caller has further messages to send at once, such as the
        replies to messages already received) the bytes may wait for the next send, or at most
        until the event loop's next turn, so that a burst of messages costs one write.

        Raises:
            ConnectionClosed: the connection is closing or closed.
        """
        self.protocol.send(message)
        self.messages_sent += 1
        if message.code is not None:
            self._start_close_deadline()
        elif (
            more_coming
            and self._loop is not None
            and self._direct_writer is not None
            and self._direct_writer.writable
            and self.protocol.outgoing_size < self._config.read_size
        ):
            # Only while the peer keeps up and little is held back: otherwise the flush
            # below waits for the drain, which is what paces a producer.
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._write_deferred)
            return
        await self._flush()

    @property
    def more_input(self) -> bool:
        """True while the message being delivered may have others received behind it."""
        return self._more_input

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the close handshake; the peer has ``close_timeout`` to answer. Idempotent.

        After a peer's protocol error this sends the error's close frame instead.
        """
        state = self.protocol.state
        if state is ProtocolState.OPEN or state is ProtocolState.FAILING:
            self.protocol.close(code, reason)
            if state is ProtocolState.OPEN:
                self._start_close_deadline()
            try:
                await self._flush()
            except ConnectionClosed:
                pass

    async def fail(self, code: int, reason: str) -> None:
        """Fail the connection: send a close frame if possible, then stop without waiting."""
        self.protocol.fail(code, reason)
        with anyio.move_on_after(self._config.close_timeout):
            try:
                await self._flush()
            except ConnectionClosed:
                pass
        self._abort()

    async def ping(self, payload: bytes | None = None) -> anyio.Event:
        """Send a ping; return an event that is set when its pong (or a later one) arrives."""
        if payload is None:
            payload = os.urandom(4)
        waiter = anyio.Event()
        self._pings[payload] = waiter
        self.protocol.ping(payload)
        try:
            await self._flush()
        except ConnectionClosed:
            pass
        return waiter

    def _timer_period(self) -> float:
        """How often :meth:`on_timer` must run (infinite: no timers configured)."""
        config = self._config
        return min(
            config.ping_interval or math.inf,
            config.ping_timeout if config.ping_interval is not None else math.inf,
            config.idle_timeout or math.inf,
        )

    async def run(self, deliver: Deliver) -> None:
        """Drive the connection until it has ended; call ``deliver`` for every message."""
        period = self._timer_period()
        if period == math.inf:
            await self._run(deliver)
            return
        heartbeat = self._heartbeat
        if heartbeat is not None and heartbeat.running:
            await self._run_timed(deliver, heartbeat, period)
            return
        async with anyio.create_task_group() as task_group:  # no server: a heartbeat of its own
            heartbeat = self._heartbeat = Heartbeat()
            await task_group.start(heartbeat.run)
            await self._run_timed(deliver, heartbeat, period)
            task_group.cancel_scope.cancel()

    async def _run_timed(self, deliver: Deliver, heartbeat: Heartbeat, period: float) -> None:
        heartbeat.add(self, period)
        try:
            await self._run(deliver)
        finally:
            heartbeat.discard(self)

    async def _run(self, deliver: Deliver) -> None:
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self._close_by is not None:
                scope.deadline = self._close_by
            try:
                await self._read_loop(deliver)
            finally:
                if not self.protocol.input_ended:
                    # Cancelled before the end: the close deadline passed (or the server is
                    # cutting connections). Drop the connection.
                    if self._close_by is not None and anyio.current_time() >= self._close_by:
                        logger.info("%s did not answer our close frame in time", self._peer)
                    self._aborted = True
                    self.protocol.receive_eof()
                self._mark_closed()

    def push_to(self, sink: MessageSink, on_pushed_all: Callable[[], None]) -> bool:
        """Deliver every message into ``sink`` from the transport's callbacks: no reader task.

        ``on_pushed_all`` is called once, when the input has ended and every message before
        the end was delivered (or the sink closed). Call :meth:`stop_pushing` when done with
        the connection. Possible on asyncio socket streams only, and with the server's
        heartbeat running if timers are configured: returns False otherwise, and the caller
        runs :meth:`run` in a task instead.
        """
        reader = self._reader
        if reader is None or self._direct_writer is None or self._feed is not None:
            return False
        period = self._timer_period()
        heartbeat = self._heartbeat
        if period != math.inf:
            if heartbeat is None or not heartbeat.running:
                return False
            heartbeat.add(self, period)
        self._sink = sink
        self._on_pushed_all = on_pushed_all
        self._loop = reader.loop
        read_size = self._config.read_size
        self._feed = TransportFeed(reader, self, read_size, 4 * read_size)
        self._reader = None  # the feed took its place
        if self._close_by is not None:
            self._close_timer = self._loop.call_at(self._close_by, self._close_deadline_passed)
        events = self.protocol.take_pending()
        if events or self._feed.has_backlog or self.protocol.input_ended:
            # What came with the handshake is delivered one loop turn later, as a reader
            # task would: the handler is reading by then, not still inside accept().
            self._feed.start(stalled=True)
            self._loop.call_soon(self._push_first, events)
        else:
            self._feed.start()
        return True

    def _push_first(self, events: list[Event]) -> None:
        if self._on_pushed_all is not None and self.protocol.has_data_to_send:
            self._write_soon()  # replies to pings that came with the handshake
        self._pending = events
        self._sink_has_room()  # delivers them, then lets the feed go on

    def stop_pushing(self) -> None:
        """End :meth:`push_to`'s delivery now; the connection counts as dropped if still open."""
        if self._on_pushed_all is not None:
            self._abort()

    # ---- FeedConsumer (push mode) ---------------------------------------------------------

    def feed(self, data: bytes) -> bool:
        """Take bytes from the transport; False while the sink is full (see :meth:`push_to`).

        Messages are parsed a queue's worth at a time: while the sink is full, the bytes of
        the messages it cannot take yet stay bytes.
        """
        protocol = self.protocol
        limit = self._config.max_queue
        while True:
            events = protocol.receive_data(data, limit)
            if protocol.has_data_to_send:
                self._write_soon()
            if not self._deliver_now(events):
                return False
            if len(events) < limit or self._on_pushed_all is None:
                return True
            data = b""  # a full batch: there may be more complete frames

    def end_of_input(self) -> None:
        """The transport's input ended (EOF or lost): the connection's input ends with it."""
        self.protocol.receive_eof()
        self._deliver_now([])

    def _deliver_now(self, events: list[Event]) -> bool:
        """Put ``events`` into the sink; on a full sink keep the rest and return False."""
        protocol = self.protocol
        if protocol.input_ended:
            self._mark_closed()
        sink = self._sink
        assert sink is not None
        for index, event in enumerate(events):
            if isinstance(event, PongReceived):
                self._on_pong(event.payload)
                continue
            try:
                if not sink.try_put(event):
                    self._pending = events[index:]
                    self._delivering = True
                    sink.call_when_room(self._sink_has_room)
                    return False
            except anyio.ClosedResourceError:
                pass  # the application stopped reading: nobody will take it
            else:
                self.messages_received += 1
        if protocol.input_ended:
            self._pushed_all()
        return True

    def _sink_has_room(self) -> None:
        events, self._pending = self._pending, []
        self._delivering = False
        if self._on_pushed_all is None:
            return  # stopped meanwhile
        if not self._deliver_now(events) or self._on_pushed_all is None:
            return
        if self.protocol.has_unparsed_input and not self.feed(b""):
            return
        if self._feed is not None:
            self._feed.resume()

    def _pushed_all(self) -> None:
        on_pushed_all, self._on_pushed_all = self._on_pushed_all, None
        if on_pushed_all is None:
            return
        self._pending = []
        self._sink = None
        if self._feed is not None:
            self._feed.stop()
            self._feed = None  # it refers back to this connection: no cycle left behind
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._heartbeat is not None:
            self._heartbeat.discard(self)
        on_pushed_all()

    def _close_deadline_passed(self) -> None:
        self._close_timer = None
        if not self.protocol.input_ended:
            logger.info("%s did not answer our close frame in time", self._peer)
        self._abort()

    # ---- timers ----------------------------------------------------------------------------

    def on_timer(self, now: float) -> None:
        """Send the keepalive ping, check its pong and the idle timeout (heartbeat callback)."""
        if self.protocol.state is not ProtocolState.OPEN or self._heartbeat is None:
            return
        config = self._config
        if not self._timers_started:
            self._timers_started = True
            if config.ping_interval is not None:
                self._next_ping = now + config.ping_interval
            if config.idle_timeout is not None:
                self._next_idle_check = now + config.idle_timeout
            return
        if self._keepalive_payload is not None:
            if now >= self._pong_deadline:
                self._keepalive_payload = None
                if not self._delivering:
                    self._heartbeat.start_soon(
                        self.fail, CloseCode.INTERNAL_ERROR, "keepalive ping timeout"
                    )
                    return
                # Reads are paused because the application is behind: the pong is probably
                # waiting unread behind the peer's data, which proves the peer is alive.
                self._next_ping = now + (config.ping_interval or 0.0)
        elif now >= self._next_ping:
            payload = os.urandom(4)
            self._keepalive_payload = payload
            self._pong_deadline = now + config.ping_timeout
            self.protocol.ping(payload)
            self._write_soon()
        if now >= self._next_idle_check:
            activity = self.messages_received + self.messages_sent
            if activity == self._activity_seen and not self._delivering:
                logger.info("closing idle %s after %.1f s", self._peer, config.idle_timeout)
                self._next_idle_check = math.inf
                self._heartbeat.start_soon(self.close, CloseCode.NORMAL_CLOSURE, "idle timeout")
                return
            self._activity_seen = activity
            self._next_idle_check = now + (config.idle_timeout or math.inf)

    # ---- internals -------------------------------------------------------------------------

    async def _read_loop(self, deliver: Deliver) -> None:
        protocol = self.protocol
        events = protocol.take_pending()
        read_size = self._config.read_size
        limit = self._config.max_queue
        reader = self._reader or direct_reader(self._stream, 4 * read_size)
        if reader is not None:
            # The transport's own reads, whole: a large message arrives without re-slicing.
            receive, max_read = reader.receive, 4 * read_size
        else:
            receive, max_read = self._stream.receive, read_size
        full_batch = False
        while True:
            if protocol.input_ended:
                self._mark_closed()
            try:
                await self._flush()
            except ConnectionClosed:
                pass
            last = len(events) - 1
            while last >= 0 and isinstance(events[last], PongReceived):
                last -= 1  # a trailing pong is no message: no reply will follow it
            for index, event in enumerate(events):
                if isinstance(event, PongReceived):
                    self._on_pong(event.payload)
                else:
                    self._delivering = True
                    self._more_input = full_batch or index < last
                    self.messages_received += 1
                    await deliver(event)
                    self._delivering = False
            self._more_input = False
            if protocol.input_ended:
                return
            if full_batch:
                # Parsed a batch's worth at a time: the rest of the read is still bytes.
                events = protocol.receive_data(b"", limit)
            else:
                try:
                    data = await receive(max_read)
                except _TRANSPORT_ERRORS:
                    protocol.receive_eof()
                    events = []
                    continue
                events = protocol.receive_data(data, limit)
            full_batch = len(events) >= limit

    async def _flush(self) -> None:
        if not self.protocol.has_data_to_send:
            return
        if self._aborted:
            self.protocol.data_to_send()  # the connection is being dropped: nothing more goes out
            raise self.protocol.closed_error()
        writer = self._direct_writer
        if writer is not None:
            try:
                if writer.write(self.protocol.data_to_send()):
                    await writer.drain()
            except _TRANSPORT_ERRORS:
                self.protocol.receive_eof()
                self._mark_closed()
                raise self.protocol.closed_error() from None
            return
        assert self._write_lock is not None
        async with self._write_lock:
            data = self.protocol.data_to_send()
            if not data:
                return
            try:
                await self._stream.send(data)
            except _TRANSPORT_ERRORS:
                self.protocol.receive_eof()
                self._mark_closed()
                raise self.protocol.closed_error() from None

    def _mark_closed(self) -> None:
        if self._close_timer is not None:
            # The close handshake is over: messages still queued are the handler's to take.
            self._close_timer.cancel()
            self._close_timer = None
        if not self._input_ended:
            self._input_ended = True
            if self._closed is not None:
                self._closed.set()
            if self.on_input_ended is not None:
                self.on_input_ended()
            failure = self.protocol.failure
            if failure is not None:
                logger.info("failed %s with %d: %s", self._peer, failure[0], failure[1])

    def _abort(self) -> None:
        self._aborted = True
        self.protocol.receive_eof()
        self._mark_closed()
        if self._scope is not None:
            self._scope.cancel()
        self._pushed_all()

    def _write_soon(self) -> None:
        """Send what the protocol queued without waiting: now, or from a heartbeat task."""
        writer = self._direct_writer
        if writer is None:
            if self._heartbeat is not None:
                self._heartbeat.start_soon(self._flush_quietly)
            return
        # Small (control frames): written without waiting, but while the peer is not reading
        # them, a pushed connection stops reading what would need more replies.
        self._write_queued(writer, pause_reads_when_full=True)

    def _write_deferred(self) -> None:
        """Write what :meth:`send` left for the loop's next turn (unless written since)."""
        self._flush_scheduled = False
        writer = self._direct_writer
        if writer is not None and self.protocol.has_data_to_send:
            # A full buffer makes the next send wait for the drain.
            self._write_queued(writer, pause_reads_when_full=False)

    def _write_queued(self, writer: DirectWriter, pause_reads_when_full: bool) -> None:
        data = self.protocol.data_to_send()
        if self._aborted:
            return  # the connection is being dropped: nothing more goes out
        try:
            if writer.write(data) and pause_reads_when_full and self._feed is not None:
                self._feed.pause_until_writable()
        except _TRANSPORT_ERRORS:
            self.protocol.receive_eof()
            self._mark_closed()

    async def _flush_quietly(self) -> None:
        try:
            await self._flush()
        except ConnectionClosed:
            pass

    def _on_pong(self, payload: bytes) -> None:
        if payload == self._keepalive_payload:
            self._keepalive_payload = None
            self._next_ping = self._now() + (self._config.ping_interval or math.inf)
        if payload not in self._pings:
            return
        # A pong acknowledges its ping and every ping sent before it.
        for key in list(self._pings):
            self._pings.pop(key).set()
            if key == payload:
                break

    def _start_close_deadline(self) -> None:
        """Give the peer ``close_timeout`` to answer our close frame (no task: a deadline)."""
        if self._close_by is not None:
            return
        self._close_by = self._now() + self._config.close_timeout
        if self._scope is not None:
            self._scope.deadline = min(self._scope.deadline, self._close_by)
        if self._loop is not None and self._on_pushed_all is not None:
            self._close_timer = self._loop.call_at(self._close_by, self._close_deadline_passed)

    def _now(self) -> float:
        """The event loop's clock; a pushed connection may ask from a transport callback."""
        return self._loop.time() if self._loop is not None else anyio.current_time()
