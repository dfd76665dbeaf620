"""RFC 6455 over a byte transport: the :class:`~.contract.WebSocketConnection` both drivers run.

Theory of operation
-------------------
A :class:`WireConnection` is made when a WebSocket handshake request arrives, and is the
driver's consumer (:class:`~.transport.FeedConsumer`) from then on: the driver pushes every
byte into :meth:`~WireConnection.feed`, from the event loop's callbacks (asyncio) or from a
reader task (any anyio stream). It never reads on its own, and never runs a task.

- **Handshake** (``CONNECTING``): bytes that arrive are kept, up to ``read_size``, then the
  driver stops reading; a client that leaves ends the connection (``on_ended``). ``accept``
  writes the 101 and parses what was kept; ``reject`` lets the HTTP layer answer.
- **Inbound**: every read is parsed a queue's worth at a time (``receive_data(data, room)``)
  into the bounded :class:`~.inbound.MessageQueue` that :meth:`~WireConnection.receive` takes
  from. A full queue still lets control frames through; once a message finds no room (it
  waits beside the queue), what arrives stays bytes, and after ``4 * read_size`` of them
  :meth:`feed` returns False: the driver stops reading (TCP flow control then slows the
  peer) until :meth:`receive` makes room. Reading also stops while
  our replies (pongs) pile up unread, and while the server's :class:`~.budget.InboundBudget`
  is exhausted. Why reads are paused is :attr:`_pause`, one :class:`ReadPause`.
- **Outbound**: :meth:`send` hands the frame's bytes to the transport whole and awaits its
  drain; cancelling it leaves the bytes queued whole (the transport contract).
- **Timers** run on the server's :class:`~.heartbeat.Heartbeat` (:meth:`on_timer`): the
  keepalive ping and its pong deadline, ``idle_timeout``, ``write_timeout`` (no write progress
  while bytes wait) and ``close_timeout`` (our close frame unanswered). They keep running while
  a write is blocked: a peer that stops reading is always released.
- **State** is :class:`~.state.ConnectionState`, changed only by :meth:`_transition`. When the
  input is over (``FAILING`` or ``CLOSED``) the queue is closed (the application reads what
  was queued, then the end), ``on_ended`` is called and waiters of :meth:`wait_closed` wake.

Who closes what: this class aborts the transport when a timer gives up on the peer (close
deadline, write stall, keepalive with writes blocked); every abort wakes every blocked drain.
Otherwise the owner of the transport (the HTTP connection) closes it, bounded by
``close_timeout``, after the application returned and :meth:`detach` was called.

Worst case held per connection: ``max_queue + 1`` messages of ``max_message_size`` (text: up
to 4 bytes per character), one partial message, ``4 * read_size`` of unparsed bytes plus one
read, and
the transport's write buffer (the kernel's, on asyncio; 64 KiB plus one message elsewhere).
"""

from __future__ import annotations

import enum
import logging
import math
import os
from collections.abc import Awaitable, Generator, Mapping
from typing import Any, Protocol

from wsproto.extensions import Extension

from ..config import WebSocketConfig
from ..errors import ConnectionClosed, ConnectionClosedError
from ..messages import CloseCode, MessageType, WebSocketMessage
from ..protocol.deflate import negotiate_deflate
from ..protocol.handshake import HandshakeOffer, accept_response
from ..protocol.websocket import PongReceived, ProtocolState, WebSocketProtocol
from ..requests import Request
from .budget import InboundBudget
from .contract import AnsweredCallback, AnsweringConnection, EndedCallback
from .deadline import Deadline, move_on_after
from .events import Waiter
from .heartbeat import Heartbeat
from .inbound import MessageQueue
from .state import ConnectionState, StateEvent, next_state
from .transport import Transport, TransportClosed

__all__ = ["HandshakeOwner", "ReadPause", "WireConnection"]

logger = logging.getLogger("spikard.websocket")

MAX_PENDING_PINGS = 32
"""Most pings of the application awaiting their pong at once."""


def _debug_label(label: str) -> str:
    """``label`` without its query string (it may carry tokens): for debug lines."""
    return label.partition("?")[0]


def _describe_ending(event: StateEvent, protocol: WebSocketProtocol | None) -> str | None:
    """How a connection's input ended, and who ended it, for a debug line.

    None when another line says it already: a failure (logged at INFO), or a handshake
    answered with HTTP (a rejection, the access log).
    """
    if protocol is None:
        if event is StateEvent.PEER_LEFT:
            return "the client left before the handshake was answered"
        return None
    if protocol.failure is not None:
        return None
    if event is StateEvent.PEER_CLOSED:
        code, reason = protocol.peer_close or (protocol.close_code, protocol.close_reason)
        if protocol.local_close_started:
            return f"the client answered the server's close with {code} {reason!r}"
        return f"the client closed with {code} {reason!r}"
    if event is StateEvent.PEER_LEFT:
        return "the client left without a close frame (1006)"
    if event is StateEvent.ABORT:
        return "the server dropped the connection"
    return None


class ReadPause(enum.Enum):
    """Why a connection does not read (``NONE``: it does)."""

    NONE = "none"
    HANDSHAKE = "handshake"
    """Not accepted yet, and ``read_size`` bytes are kept already."""
    QUEUE_FULL = "queue full"
    """The application is behind: a message waits for room in its queue. What arrives stays
    bytes, and after ``4 * read_size`` of them the driver stops reading."""
    REPLIES_UNREAD = "replies unread"
    """Our replies (pongs) pile up unread: a peer that sends pings and never reads."""
    BUDGET = "budget"
    """The server-wide inbound budget is exhausted."""


class Handshake(enum.Enum):
    """How the opening handshake was answered."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class HandshakeOwner(Protocol):
    """What the HTTP connection does for a handshake: rejections and the access log."""

    async def send_rejection(
        self,
        request: Request,
        status_code: int,
        body: str | bytes | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        """Answer ``request`` with an HTTP error response and ``Connection: close``."""

    def upgraded(self, request: Request) -> None:
        """The 101 is about to go out: log it; the connection speaks HTTP no more."""


class _Pong:
    """What :meth:`WireConnection.ping` returns: await it for the pong."""

    __slots__ = ("_connection", "answered", "event")

    def __init__(self, connection: WireConnection, event: Waiter) -> None:
        self._connection = connection
        self.event = event
        self.answered = False

    def __await__(self) -> Generator[Any, None, None]:
        yield from self.event.wait().__await__()
        if not self.answered:
            raise self._connection._closed_error()


class WireConnection(AnsweringConnection):
    """A WebSocket over one :class:`~.transport.Transport`; see the module docs.

    Args:
        transport: the connection's bytes (the driver); this object becomes its consumer.
        request: the handshake request.
        offer: what the handshake offers (key, subprotocols, extensions).
        config: limits and timers.
        owner: the HTTP connection (rejections, access log).
        heartbeat: the server's running timer task.
        budget: the server's inbound budget.
        early: bytes that arrived after the handshake request.
        label: names the connection in log lines (``"127.0.0.1:53211 /echo"``).
    """

    __slots__ = (
        "_activity_seen",
        "_backlog",
        "_budget",
        "_charged",
        "_close_deadline",
        "_early",
        "_ended",
        "_flush_scheduled",
        "_going_away",
        "_handshake",
        "_heartbeat",
        "_inbox",
        "_keepalive",
        "_label",
        "_max_queue",
        "_next_idle_check",
        "_next_ping",
        "_offer",
        "_on_ended",
        "_overflow",
        "_owner",
        "_pause",
        "_pings",
        "_pong_deadline",
        "_progress",
        "_progress_at",
        "_protocol",
        "_queue",
        "_queued_cost",
        "_read_size",
        "_state",
        "_subprotocol",
        "_transport",
        "config",
        "messages_received",
        "messages_sent",
        "request",
    )

    def __init__(
        self,
        transport: Transport,
        request: Request,
        offer: HandshakeOffer,
        config: WebSocketConfig,
        *,
        owner: HandshakeOwner,
        heartbeat: Heartbeat,
        budget: InboundBudget,
        early: bytes = b"",
        label: str = "",
    ) -> None:
        self.request = request
        self.config = config
        self._on_ended: EndedCallback | None = None
        self._on_answered: AnsweredCallback | None = None
        self._transport = transport
        self._owner = owner
        self._heartbeat = heartbeat
        self._budget = budget
        self._label = label
        self._offer = offer
        self._state = ConnectionState.CONNECTING
        self._handshake = Handshake.PENDING
        self._subprotocol: str | None = None
        self._protocol: WebSocketProtocol | None = None
        self._queue: MessageQueue[WebSocketMessage] = MessageQueue(
            config.max_queue, transport.new_event
        )
        self._inbox = self._queue.items  # the queue's items, taken and put without a call
        self._max_queue = config.max_queue
        self._read_size = config.read_size
        self._queued_cost = 0
        self._charged = 0
        self._early = bytearray(early)
        self._backlog = bytearray()
        self._overflow: WebSocketMessage | None = None
        """A message parsed while the queue was full: it waits for room, reads stop."""
        self._pause = ReadPause.NONE
        self._going_away = False
        self._flush_scheduled = False
        self._ended: Waiter | None = None
        self._pings: dict[bytes, _Pong] = {}
        self._keepalive: bytes | None = None
        """The payload of the keepalive ping whose pong is awaited."""
        self._next_ping = math.inf
        self._pong_deadline = math.inf
        self._next_idle_check = math.inf
        self._activity_seen = -1
        self._close_deadline = math.inf
        self._progress = 0
        self._progress_at = math.inf
        self.messages_received = 0
        """Messages delivered to the application so far."""
        self.messages_sent = 0
        """Messages the application sent so far."""
        transport.start_feeding(self)

    # ---- the contract: state -------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """Where the connection is in its life."""
        return self._state

    @property
    def on_ended(self) -> EndedCallback | None:
        """Called once when the input is over (see the contract)."""
        return self._on_ended

    @on_ended.setter
    def on_ended(self, callback: EndedCallback | None) -> None:
        self._on_ended = callback

    @property
    def offer(self) -> HandshakeOffer:
        """What the client's handshake offered."""
        return self._offer

    @property
    def subprotocols(self) -> tuple[str, ...]:
        """The subprotocols the client offered."""
        return self._offer.subprotocols

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol chosen at accept time."""
        return self._subprotocol

    @property
    def accepted(self) -> bool:
        """True once the 101 went out (or was due when the client had left already)."""
        return self._handshake is Handshake.ACCEPTED

    @property
    def rejected(self) -> bool:
        """True once the handshake was refused with HTTP."""
        return self._handshake is Handshake.REJECTED

    @property
    def close_code(self) -> int | None:
        """How the connection ended; None while it has not."""
        protocol = self._protocol
        return None if protocol is None else protocol.close_code

    @property
    def close_reason(self) -> str | None:
        """The reason that came with :attr:`close_code`."""
        protocol = self._protocol
        if protocol is None or protocol.close_code is None:
            return None
        return protocol.close_reason

    @property
    def peer_close(self) -> tuple[int, str] | None:
        """The peer's close frame, None if none arrived."""
        protocol = self._protocol
        return None if protocol is None else protocol.peer_close

    @property
    def failure(self) -> tuple[int, str] | None:
        """Why this side failed the connection, None otherwise."""
        protocol = self._protocol
        return None if protocol is None else protocol.failure

    @property
    def queued_messages(self) -> int:
        """Messages received and not read yet."""
        return self._queue.statistics().current_buffer_used

    @property
    def pause(self) -> ReadPause:
        """Why reads are paused right now (``NONE``: they are not)."""
        return self._pause

    # ---- the contract: handshake ---------------------------------------------------------

    async def accept(
        self, subprotocol: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send ``101 Switching Protocols`` and parse what arrived with the handshake."""
        if self._handshake is not Handshake.PENDING:
            raise RuntimeError("the WebSocket handshake was already answered")
        config = self.config
        extensions_header = None
        extensions: list[Extension] = []
        if config.permessage_deflate:
            negotiated = negotiate_deflate(self._offer.extensions, config.max_message_size)
            if negotiated is not None:
                extensions_header, deflate = negotiated
                extensions.append(deflate)
        response = accept_response(
            self._offer, subprotocol=subprotocol, extensions=extensions_header, headers=headers
        )
        self._handshake = Handshake.ACCEPTED
        self._report_answer()
        self._subprotocol = subprotocol
        protocol = self._protocol = WebSocketProtocol(
            max_message_size=config.max_message_size,
            max_frame_size=config.max_frame_size,
            extensions=extensions,
        )
        early, self._early = bytes(self._early), bytearray()
        if self._state is not ConnectionState.CONNECTING:
            protocol.receive_eof()  # the client left before the answer: it gets nothing
            return
        self._owner.upgraded(self.request)
        transport = self._transport
        try:
            transport.write(response)
        except TransportClosed:
            pass  # end_of_input follows
        self._transition(StateEvent.ACCEPT)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "accepted WebSocket %s (%s%s)",
                _debug_label(self._label),
                # Sec-WebSocket-Protocol values may carry tokens: never logged
                "a subprotocol chosen" if subprotocol else "no subprotocol",
                ", permessage-deflate" if extensions else "",
            )
        now = transport.time()
        self._progress = transport.bytes_sent
        self._progress_at = now
        if config.ping_interval is not None:
            self._next_ping = now + config.ping_interval
        if config.idle_timeout is not None:
            self._next_idle_check = now + config.idle_timeout
        self._heartbeat.add(self, self._timer_period())
        self._pause = ReadPause.NONE
        if self._receive(early) if early else self._wants_more():
            transport.resume_feeding()
        else:
            transport.pause_feeding()
        if self._going_away:
            self.going_away()

    async def reject(
        self,
        status_code: int = 403,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the handshake with an HTTP response (unless the client left already)."""
        if self._handshake is not Handshake.PENDING:
            raise RuntimeError("the WebSocket handshake was already answered")
        self._handshake = Handshake.REJECTED
        self._report_answer()
        self._early = bytearray()
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("refused WebSocket %s with %d", _debug_label(self._label), status_code)
        if self._state is not ConnectionState.CONNECTING:
            return
        self._transition(StateEvent.REJECT)
        await self._owner.send_rejection(self.request, status_code, body, headers)

    # ---- the contract: messages ----------------------------------------------------------

    async def receive(self) -> WebSocketMessage:
        """Return the next message; raise ConnectionClosed once the input is over."""
        inbox = self._inbox
        while not inbox:
            if self._overflow is not None:  # the input ended while it waited: it is the last
                message, self._overflow = self._overflow, None
                self._taken(message)
                return message
            if self._queue.closed:
                raise self._closed_error()
            if self._handshake is Handshake.PENDING:
                raise RuntimeError("accept the WebSocket handshake before receiving")
            await self._queue.changed()
        message = inbox.popleft()
        self._taken(message)
        return message

    def receive_nowait(self) -> WebSocketMessage | None:
        """Return the next message if one was received already, else None (never waits)."""
        inbox = self._inbox
        if not inbox:
            return None
        message = inbox.popleft()
        self._taken(message)
        return message

    def _taken(self, message: WebSocketMessage) -> None:
        """The application took ``message``: release its bytes, make room for the next."""
        data = message.data
        cost = len(data) if type(data) is bytes or data.isascii() else 4 * len(data)
        self._queued_cost -= cost
        budget = self._budget
        budget.used -= cost
        if budget.waiting:
            budget.release(0)
        if self._pause is not ReadPause.NONE:
            self._after_take()

    def _after_take(self) -> None:
        """Reads were paused when a message was taken: let the overflow in, parse, read on."""
        overflow = self._overflow
        if overflow is not None and not self._queue.closed:
            self._overflow = None
            self._queue.put_nowait(overflow)
            protocol = self._protocol
            if self._backlog or (protocol is not None and protocol.has_unparsed_input):
                self._room_made()
            else:
                self._pause = ReadPause.NONE  # the driver still reads: nothing held to parse
        elif self._pause is ReadPause.BUDGET or self._pause is ReadPause.QUEUE_FULL:
            self._room_made()  # parse what is held: the application may wait for it

    async def send(self, message: WebSocketMessage) -> None:
        """Send one message, waiting for the transport to drain; see the contract."""
        if message.type is MessageType.CLOSE:
            await self.close(message.code or CloseCode.NORMAL_CLOSURE, message.reason or "")
            return
        protocol = self._protocol
        if protocol is None:
            protocol = self._protocol_for("send")
        protocol.send(message)
        self.messages_sent += 1
        transport = self._transport
        # More messages received and unread: the replies to them follow at once, so this
        # one may wait in the protocol's buffer until the loop's next turn. Only while the
        # peer keeps up: otherwise the drain below paces the producer.
        if (
            self._inbox
            and transport.writable
            and protocol.outgoing_size < self._read_size
            and (self._flush_scheduled or transport.defer(self._flush_deferred))
        ):
            self._flush_scheduled = True
            return
        try:  # as in _write_and_drain: a cancelled wait leaves the bytes queued whole
            transport.write(protocol.data_to_send())
            if not transport.writable:
                await transport.drain()
        except TransportClosed:
            raise self._closed_error() from None
        if self._state is ConnectionState.CLOSED and protocol.close_code == 1006:
            # The peer vanished while this message was being written: it was probably lost.
            raise self._closed_error()

    def _flush_deferred(self) -> None:
        """Write what :meth:`send` left in the protocol's buffer (unless written since)."""
        self._flush_scheduled = False
        protocol = self._protocol
        if protocol is not None and protocol.has_data_to_send:
            try:
                self._transport.write(protocol.data_to_send())
            except TransportClosed:
                pass  # end_of_input follows

    def discard_incoming(self) -> None:
        """Drop what is queued and what arrives from now on; read on."""
        self._queue.discard()
        self._budget.release(self._queued_cost)
        self._queued_cost = 0
        self._overflow = None
        if self._protocol is not None:
            self._room_made()

    async def ping(self, payload: bytes | None = None) -> Awaitable[object]:
        """Send a ping; await the result for its pong (or ConnectionClosed)."""
        protocol = self._protocol_for("ping")
        if self._state is not ConnectionState.OPEN:
            raise self._closed_error()
        if payload is None:
            payload = os.urandom(4)
            while payload in self._pings:
                payload = os.urandom(4)
        elif payload in self._pings:
            raise ValueError("a ping with this payload is already waiting for its pong")
        if len(self._pings) >= MAX_PENDING_PINGS:
            raise RuntimeError(f"{MAX_PENDING_PINGS} pings are already waiting for their pong")
        protocol.ping(payload)
        pong = self._pings[payload] = _Pong(self, self._transport.new_event())
        await self._write_and_drain(protocol)
        return pong

    async def _write_and_drain(self, protocol: WebSocketProtocol) -> None:
        """Hand what the protocol queued to the transport; wait while its buffer is full.

        Cancelling the wait leaves the bytes queued whole (the transport contract).
        """
        transport = self._transport
        try:
            transport.write(protocol.data_to_send())
            if not transport.writable:
                await transport.drain()
        except TransportClosed:
            raise self._closed_error() from None

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the close handshake; never waits (the close deadline bounds the rest)."""
        if self._handshake is Handshake.PENDING:
            raise RuntimeError("accept the WebSocket handshake before closing it")
        self._start_close(code, reason)

    async def wait_closed(self) -> None:
        """Wait until the input is over."""
        if self._state is ConnectionState.CLOSED or self._state is ConnectionState.FAILING:
            return
        if self._ended is None:
            self._ended = self._transport.new_event()
        await self._ended.wait()

    def time(self) -> float:
        """The transport's clock."""
        return self._transport.time()

    def new_event(self) -> Waiter:
        """An event of the transport's loop."""
        return self._transport.new_event()

    def move_on_after(self, delay: float) -> Deadline:
        """A deadline on the transport's loop (a loop timer on asyncio, no anyio scope)."""
        return move_on_after(delay, self._transport.loop)

    # ---- for the HTTP connection -----------------------------------------------------------

    def going_away(self) -> None:
        """The server shuts down: close with 1001 (once accepted, if not yet)."""
        self._going_away = True
        if self._handshake is Handshake.ACCEPTED:
            self._start_close(CloseCode.GOING_AWAY, "server shutting down")

    def detach(self) -> None:
        """The application is done: leave the timers and the budget; drop an open connection.

        Called by the HTTP connection before it closes the transport; breaks every reference
        cycle between this object, the transport and the application.
        """
        self._heartbeat.discard(self)
        self._budget.forget(self)
        self._budget.release(self._queued_cost + self._charged)
        self._charged = 0
        self._queue.discard()
        self._queued_cost = 0
        self._overflow = None
        self._backlog = bytearray()
        self.on_ended = None
        if self._state is ConnectionState.CONNECTING:
            self._transition(StateEvent.ABORT)  # answered by an HTTP response: it is flushed
        elif self._state is not ConnectionState.CLOSED:
            self._abort()  # still open: the application left without closing
        self._transport.stop_feeding()
        self._wake_pings()

    # ---- FeedConsumer (called by the driver) -----------------------------------------------

    def feed(self, data: bytes) -> bool:
        """Take bytes from the driver; False when it must stop reading (see the module docs)."""
        if self._protocol is None:
            return self._feed_early(data)
        return self._receive(data)

    def _feed_early(self, data: bytes) -> bool:
        """Bytes before the accept: kept (up to one read) for the protocol to parse then."""
        if self._state is not ConnectionState.CONNECTING:
            return False  # rejected: nothing more is wanted
        self._early += data
        self._charged += len(data)
        self._budget.used += len(data)
        if len(self._early) < self.config.read_size:
            return True
        self._pause = ReadPause.HANDSHAKE
        return False

    def end_of_input(self) -> None:
        """The peer closed TCP, the connection was lost, or the transport was closed."""
        if self._state is ConnectionState.CONNECTING:
            self._transition(StateEvent.PEER_LEFT)
            return
        protocol = self._protocol
        if protocol is None or self._state is ConnectionState.CLOSED:
            return
        self._backlog = bytearray()
        protocol.receive_eof()
        self._after_input(protocol)

    def writable(self) -> None:
        """The write buffer drained: read again if unread replies had stopped us."""
        if self._pause is ReadPause.REPLIES_UNREAD:
            self._pause = ReadPause.NONE
            if self._wants_more():
                self._transport.resume_feeding()

    # ---- inbound ---------------------------------------------------------------------------

    def _receive(self, data: bytes) -> bool:
        """Parse ``data`` (after any backlog) a queue's worth at a time; True: read on.

        While the queue is merely full, reading and parsing go on, so control frames (the
        pong of a keepalive ping) are seen; the first message that does not fit waits in
        :attr:`_overflow` and stops the reads.
        """
        protocol = self._protocol
        assert protocol is not None
        queue = self._queue
        if self._backlog:
            self._backlog += data
            if self._overflow is not None:
                return self._wants_more()
            data, self._backlog = bytes(self._backlog), bytearray()
        elif self._overflow is not None:
            if data:
                self._backlog += data
            return self._wants_more()
        inbox = self._inbox
        put = inbox.append
        discard = queue.closed  # the application is gone: nobody will read what arrives
        max_queue = self._max_queue
        received = 0
        count = 0
        while True:
            room = max_queue - len(inbox)
            limit = room if room > 0 else 1
            events = protocol.receive_data(data, limit)
            data = b""
            for event in events:
                if isinstance(event, PongReceived):
                    self._on_pong(event.payload)
                    continue
                if discard:
                    continue
                payload = event.data
                if type(payload) is bytes or payload.isascii():  # message_cost, inline
                    received += len(payload)
                else:
                    received += 4 * len(payload)
                count += 1
                if room > 0:
                    put(event)
                    room -= 1
                else:
                    self._overflow = event  # waits for room; reads stop meanwhile
            if protocol.has_data_to_send:
                self._write_replies(protocol)
            if protocol.input_ended:
                break
            if len(events) < limit or self._overflow is not None or not protocol.has_unparsed_input:
                break
        if count:
            self.messages_received += count
            self._queued_cost += received
            self._budget.used += received
            if inbox:
                queue.notify()
        if protocol.input_ended:
            self._after_input(protocol)
            return False
        return self._wants_more()

    def _wants_more(self) -> bool:
        """Decide whether the driver reads on; record why not (:class:`ReadPause`).

        Also tells the budget how many unparsed inbound bytes this connection holds now
        (queued messages are counted as they are queued and taken: :attr:`_queued_cost`).
        """
        budget = self._budget
        protocol = self._protocol
        held = len(self._backlog) + len(self._early)
        if protocol is not None:
            held += protocol.buffered_bytes
        delta = held - self._charged
        if delta:
            self._charged = held
            if delta > 0:
                budget.used += delta
            else:
                budget.release(-delta)
        if self._overflow is not None:
            # Reads go on into the backlog for a few reads (a burst that overfills the queue
            # by one costs no pause and resume), then stop.
            self._pause = ReadPause.QUEUE_FULL
            return len(self._backlog) < 4 * self.config.read_size
        if self._pause is ReadPause.REPLIES_UNREAD:
            return False
        limit = budget.limit
        if limit is not None and budget.used > limit and self._inbox:
            # Only while the application is behind: one that waits for its next message must
            # get it (what this connection holds then is at most a partial message).
            self._pause = ReadPause.BUDGET
            budget.wait_for_room(self, self._budget_has_room)
            return False
        self._pause = ReadPause.NONE
        return True

    def _room_made(self) -> None:
        """The application took a message while reads were paused: parse and read on."""
        if self._pause is not ReadPause.REPLIES_UNREAD:
            self._pause = ReadPause.NONE
        protocol = self._protocol
        if protocol is not None and not protocol.input_ended and self._receive(b""):
            self._transport.resume_feeding()

    def _budget_has_room(self) -> None:
        if self._pause is ReadPause.BUDGET and self._wants_more():
            self._transport.resume_feeding()

    def _write_replies(self, protocol: WebSocketProtocol) -> None:
        """Write the pongs and the close reply the last read caused, without waiting."""
        transport = self._transport
        try:
            transport.write(protocol.data_to_send())
        except TransportClosed:
            return  # end_of_input follows
        if not transport.writable and self._state is ConnectionState.OPEN:
            self._pause = ReadPause.REPLIES_UNREAD

    def _after_input(self, protocol: WebSocketProtocol) -> None:
        """The protocol says the input is over: move the state on accordingly."""
        state = protocol.state
        if state is ProtocolState.FAILING or (
            protocol.failure is not None and self._state is ConnectionState.CLOSING
        ):
            event = StateEvent.PEER_FAILED
        elif protocol.peer_close is not None and protocol.failure is None:
            event = StateEvent.PEER_CLOSED
        else:
            event = StateEvent.PEER_LEFT
        current = self._state
        if current is not ConnectionState.CLOSED and not (
            current is ConnectionState.FAILING and event is StateEvent.PEER_FAILED
        ):
            self._transition(event)

    def _on_pong(self, payload: bytes) -> None:
        if payload == self._keepalive:
            self._keepalive = None
            interval = self.config.ping_interval
            self._next_ping = math.inf if interval is None else self._transport.time() + interval
        if payload not in self._pings:
            return
        # A pong acknowledges its ping and every ping sent before it.
        for key in list(self._pings):
            pong = self._pings.pop(key)
            pong.answered = True
            pong.event.set()
            if key == payload:
                break

    # ---- state -----------------------------------------------------------------------------

    def _transition(self, event: StateEvent) -> None:
        """Move to the state ``event`` leads to; run the end-of-input actions once."""
        old = self._state
        new = self._state = next_state(old, event)
        if old is ConnectionState.FAILING or new not in (
            ConnectionState.FAILING,
            ConnectionState.CLOSED,
        ):
            return
        # The input is over: the queue ends after what it holds, listeners learn it.
        self._close_deadline = math.inf
        if logger.isEnabledFor(logging.DEBUG):
            ending = _describe_ending(event, self._protocol)
            if ending is not None:
                logger.debug("WebSocket %s ended: %s", _debug_label(self._label), ending)
        self._queue.close()
        if self._ended is not None:
            self._ended.set()
        protocol = self._protocol
        if protocol is not None and protocol.failure is not None:
            code, reason = protocol.failure
            logger.info("failed %s with %d: %s", self._label, code, reason)
        on_ended = self._on_ended
        if on_ended is not None:
            on_ended(self._transport.time())

    def _start_close(self, code: int, reason: str) -> None:
        protocol = self._protocol
        state = self._state
        if protocol is None or (
            state is not ConnectionState.OPEN and state is not ConnectionState.FAILING
        ):
            return
        protocol.close(code, reason)
        if state is ConnectionState.OPEN:
            self._close_deadline = self._transport.time() + self.config.close_timeout
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "closing WebSocket %s: the server sent %d %r (close_timeout %.1f s)",
                    _debug_label(self._label),
                    code,
                    reason,
                    self.config.close_timeout,
                )
        self._transition(StateEvent.CLOSE_SENT)
        try:
            self._transport.write(protocol.data_to_send())
        except TransportClosed:
            pass  # end_of_input follows

    def _abort(self, code: int | None = None, reason: str = "") -> None:
        """Give up on the peer: the transport is aborted, every wait on it wakes."""
        protocol = self._protocol
        if protocol is not None:
            if code is not None:
                protocol.fail(code, reason)
                protocol.data_to_send()  # it would queue behind what does not move
            else:
                protocol.receive_eof()
        if self._state is not ConnectionState.CLOSED:
            self._transition(StateEvent.ABORT)
        self._transport.abort()

    def _protocol_for(self, action: str) -> WebSocketProtocol:
        protocol = self._protocol
        if protocol is None:
            if self._handshake is Handshake.REJECTED:
                raise ConnectionClosedError(CloseCode.POLICY_VIOLATION, "handshake rejected")
            raise RuntimeError(f"accept the WebSocket handshake before you {action}")
        return protocol

    def _closed_error(self) -> ConnectionClosed:
        protocol = self._protocol
        if protocol is None:
            return ConnectionClosedError(CloseCode.POLICY_VIOLATION, "handshake rejected")
        return protocol.closed_error()

    def _wake_pings(self) -> None:
        pings, self._pings = self._pings, {}
        for pong in pings.values():
            pong.event.set()

    # ---- timers ----------------------------------------------------------------------------

    def _timer_period(self) -> float:
        """How often :meth:`on_timer` must run."""
        config = self.config
        return min(
            config.ping_interval or math.inf,
            config.ping_timeout if config.ping_interval is not None else math.inf,
            config.idle_timeout or math.inf,
            config.effective_write_timeout,
            config.close_timeout,
        )

    def on_timer(self, now: float) -> None:
        """Run what is due at ``now``: close deadline, write stall, keepalive, idle timeout."""
        state = self._state
        if state is ConnectionState.CLOSED or state is ConnectionState.CONNECTING:
            return
        if now >= self._close_deadline:
            logger.info("%s did not answer our close frame in time", self._label)
            self._abort()
            return
        transport = self._transport
        config = self.config
        waiting = transport.write_buffer_size
        sent = transport.bytes_sent
        if not waiting or sent != self._progress:
            self._progress = sent
            self._progress_at = now
        elif now - self._progress_at >= config.effective_write_timeout:
            stalled = now - self._progress_at
            self._abort(
                CloseCode.INTERNAL_ERROR, f"write timeout: nothing read for {stalled:.1f} s"
            )
            return
        if state is not ConnectionState.OPEN:
            return
        if self._keepalive is not None:
            if now >= self._pong_deadline:
                if self._pause is ReadPause.BUDGET or (
                    self._pause is ReadPause.QUEUE_FULL and transport.writable
                ):
                    # Our side stopped reading: the pong may wait unread behind the data
                    # the peer sent, which shows it is alive. Ask again later.
                    self._pong_deadline = now + config.ping_timeout
                else:
                    self._keepalive = None
                    self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                    return
        elif now >= self._next_ping:
            self._send_keepalive(now)
        if now >= self._next_idle_check:
            activity = self.messages_received + self.messages_sent
            if activity == self._activity_seen:
                logger.info("closing idle %s after %.1f s", self._label, config.idle_timeout)
                self._next_idle_check = math.inf
                self._start_close(CloseCode.NORMAL_CLOSURE, "idle timeout")
                return
            self._activity_seen = activity
            self._next_idle_check = now + (config.idle_timeout or math.inf)

    def timer_failed(self) -> None:
        """:meth:`on_timer` raised (a bug): end the connection rather than run untimed."""
        self._fail(CloseCode.INTERNAL_ERROR, "internal error")

    def _send_keepalive(self, now: float) -> None:
        protocol = self._protocol
        assert protocol is not None
        payload = os.urandom(4)
        self._keepalive = payload
        self._pong_deadline = now + self.config.ping_timeout
        protocol.ping(payload)
        self._write_replies(protocol)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection: a close frame with ``code`` if it can still go out, else abort.

        The transport is left to its owner when the frame went out (closed after the
        application returned, within ``close_timeout``); with writes stuck it is aborted.
        """
        protocol = self._protocol
        if protocol is None or not self._transport.writable:
            self._abort(code, reason)  # writes are stuck: the close frame could not go out
            return
        protocol.fail(code, reason)
        try:
            self._transport.write(protocol.data_to_send())
        except TransportClosed:
            pass
        if self._state is not ConnectionState.CLOSED:
            self._transition(StateEvent.ABORT)
