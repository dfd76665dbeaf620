"""The ASGI WebSocket driver: the connection contract over an ASGI server's events.

Theory of operation
-------------------
Under an ASGI server the RFC 6455 work (frames, pings, the close handshake, keepalive,
protocol limits) is the server's; :class:`ASGIWebSocket` maps the contract
(:class:`~spikard.connection.contract.WebSocketConnection`) onto ``websocket.*`` events, so
the stream layer, the callback shim and the app run unchanged.

- **Handshake**: the session answers the ``websocket.connect`` the entry received.
  ``accept`` sends ``websocket.accept`` with the subprotocol and extra headers; ``reject``
  sends ``websocket.http.response.start``/``.body`` (status, headers, body) when the scope's
  ``extensions`` offer ``websocket.http.response``, else ``websocket.close`` before accept,
  which the server answers with 403.
- **Inbound**: one reader task (:meth:`ASGIWebSocket.run_reader`) calls ``receive`` only
  while the queue has room: at most ``max_queue`` messages are taken ahead of the handler,
  plus the one waiting for room; what the server buffers beyond that is the server's (see
  ``docs/asgi.md``). ``max_message_size`` still applies: a larger message fails the
  connection with 1009. ``websocket.disconnect`` ends the input (its code and reason are
  the peer's close; 1006: it left without one).
- **Outbound**: :meth:`~ASGIWebSocket.send` returns when the server's ``send`` returned, one
  event at a time. A ``send`` that raises means the client is gone (1006); one in flight for
  ``write_timeout`` too (:meth:`~ASGIWebSocket.run_watchdog`, one timer task instead of a
  timer per message).
- **State** changes only through :meth:`ASGIWebSocket._transition`, with the table of
  :mod:`spikard.connection.state`.
"""

from __future__ import annotations

import enum
import logging
import re
from collections import deque
from collections.abc import Awaitable, Mapping

import anyio
import anyio.lowlevel

from ...config import WebSocketConfig
from ...connection.contract import AnsweredCallback, AnsweringConnection, EndedCallback
from ...connection.state import ConnectionState, StateEvent, next_state
from ...errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeRejected,
)
from ...messages import CloseCode, MessageType, WebSocketMessage
from ...requests import Request
from ...responses import PlainTextResponse
from .types import Message, Receive, Scope, Send

__all__ = ["ASGIWebSocket"]

logger = logging.getLogger("spikard.websocket")

_DENIAL = "websocket.http.response"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class _Answer(enum.Enum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


def _header_pairs(headers: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
    """``headers`` as ASGI wants them.

    Raises:
        ValueError: a name that is not a token, a value with CR, LF or NUL, or not latin-1.
    """
    pairs = []
    for name, value in (headers or {}).items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid header name (a token: no CR or LF)")
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError("header values must not contain CR or LF (or NUL)")
        pairs.append((name.lower().encode("ascii"), value.encode("latin-1")))
    return pairs


class ASGIWebSocket(AnsweringConnection):
    """One WebSocket of an ASGI ``websocket`` scope, after its ``websocket.connect``.

    Args:
        scope: the ``websocket`` scope.
        receive: its ``receive``.
        send: its ``send``.
        request: the handshake request built from the scope.
        config: the app's WebSocket limits (those that apply under ASGI: see the docs).
    """

    __slots__ = (
        "_answer",
        "_changed",
        "_closed_by_us",
        "_denial",
        "_discarding",
        "_ended",
        "_failure",
        "_inbox",
        "_on_ended",
        "_peer",
        "_receive",
        "_room",
        "_send",
        "_sending",
        "_sends",
        "_state",
        "_subprotocol",
        "_subprotocols",
        "_turn",
        "config",
        "request",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: Request,
        config: WebSocketConfig,
    ) -> None:
        self.request = request
        self.config = config
        self._receive = receive
        self._send = send
        self._subprotocols = tuple(scope.get("subprotocols") or ())
        self._denial = _DENIAL in (scope.get("extensions") or {})
        self._state = ConnectionState.CONNECTING
        self._answer = _Answer.PENDING
        self._subprotocol: str | None = None
        self._inbox: deque[WebSocketMessage] = deque()
        self._changed: anyio.Event | None = None
        """Set when a message arrives or the input ends (made by a waiting receive)."""
        self._room: anyio.Event | None = None
        """Set when the application took a message (made by the waiting reader)."""
        self._ended: anyio.Event | None = None
        self._discarding = False
        self._sending = False
        """A ``send`` is in flight (one at a time)."""
        self._sends = 0
        """``send`` calls so far (the watchdog tells a stalled send from a new one)."""
        self._turn: anyio.Event | None = None
        self._peer: tuple[int, str] | None = None
        """The code and reason of ``websocket.disconnect`` (None: none came, or 1006)."""
        self._closed_by_us: tuple[int, str] | None = None
        self._failure: tuple[int, str] | None = None
        self._on_ended: EndedCallback | None = None
        self._on_answered: AnsweredCallback | None = None

    # ---- the contract: state -------------------------------------------------------------

    @property
    def on_ended(self) -> EndedCallback | None:
        """Called once when the input is over (see the contract)."""
        return self._on_ended

    @on_ended.setter
    def on_ended(self, callback: EndedCallback | None) -> None:
        self._on_ended = callback

    def _answered(self, answer: _Answer) -> None:
        self._answer = answer
        self._report_answer()

    @property
    def state(self) -> ConnectionState:
        """Where the connection is in its life."""
        return self._state

    @property
    def accepted(self) -> bool:
        """True once ``websocket.accept`` went out (or was due when the client had left)."""
        return self._answer is _Answer.ACCEPTED

    @property
    def rejected(self) -> bool:
        """True once the handshake was refused."""
        return self._answer is _Answer.REJECTED

    @property
    def subprotocols(self) -> tuple[str, ...]:
        """The subprotocols the client offered (the scope's ``subprotocols``)."""
        return self._subprotocols

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol chosen at accept time."""
        return self._subprotocol

    @property
    def close_code(self) -> int | None:
        """How the connection ended: our close code, the peer's, or 1006."""
        if self._state is ConnectionState.CONNECTING or self._state is ConnectionState.OPEN:
            return None
        ours = self._failure or self._closed_by_us
        if ours is not None:
            return ours[0]
        if self._peer is not None:
            return self._peer[0]
        return CloseCode.ABNORMAL_CLOSURE if self._state is ConnectionState.CLOSED else None

    @property
    def close_reason(self) -> str | None:
        """The reason that came with :attr:`close_code`."""
        if self.close_code is None:
            return None
        ours = self._failure or self._closed_by_us
        if ours is not None:
            return ours[1]
        return self._peer[1] if self._peer is not None else ""

    @property
    def peer_close(self) -> tuple[int, str] | None:
        """The peer's close (from ``websocket.disconnect``); None if it left without one."""
        return self._peer

    @property
    def failure(self) -> tuple[int, str] | None:
        """Why this side failed the connection (1009, a stalled send), None otherwise."""
        return self._failure

    @property
    def queued_messages(self) -> int:
        """Messages received and not read yet."""
        return len(self._inbox)

    @property
    def supports_ping(self) -> bool:
        """False: pings and keepalive are the ASGI server's."""
        return False

    # ---- the contract: handshake ---------------------------------------------------------

    async def accept(
        self, subprotocol: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send ``websocket.accept`` with ``subprotocol`` and ``headers``."""
        if self._answer is not _Answer.PENDING:
            raise RuntimeError("the WebSocket handshake was already answered")
        if subprotocol is not None and subprotocol not in self._subprotocols:
            raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client")
        pairs = _header_pairs(headers)
        self._answered(_Answer.ACCEPTED)
        self._subprotocol = subprotocol
        if self._state is not ConnectionState.CONNECTING:
            return  # the client left before the answer: it gets nothing
        message: Message = {"type": "websocket.accept", "subprotocol": subprotocol}
        if pairs:
            message["headers"] = pairs
        try:
            await self._emit(message)
        except ConnectionClosed:
            return
        if self._state is ConnectionState.CONNECTING:
            self._transition(StateEvent.ACCEPT)

    async def reject(
        self,
        status_code: int = 403,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Refuse with an HTTP response (``websocket.http.response``), else 403."""
        if self._answer is not _Answer.PENDING:
            raise RuntimeError("the WebSocket handshake was already answered")
        self._answered(_Answer.REJECTED)
        if self._state is not ConnectionState.CONNECTING:
            return
        # Shielded (each send is bounded): the answer goes out even from a cancelled
        # handler; the state changes after it, as ending the input may cancel the handler.
        with anyio.CancelScope(shield=True):
            await self._send_rejection(status_code, body, headers)
        if self._state is ConnectionState.CONNECTING:
            self._transition(StateEvent.REJECT)

    async def _send_rejection(
        self,
        status_code: int,
        body: str | bytes | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        try:
            if self._denial:
                rejection = HandshakeRejected(status_code, body, headers)
                response = PlainTextResponse(
                    rejection.body, rejection.status_code, rejection.headers
                )
                await self._emit(
                    {
                        "type": "websocket.http.response.start",
                        "status": rejection.status_code,
                        "headers": response.raw_headers(),
                    }
                )
                await self._emit({"type": "websocket.http.response.body", "body": response.body})
            else:
                if status_code != 403:
                    logger.debug(
                        "the ASGI server has no websocket.http.response: %s refused with 403 "
                        "instead of %d",
                        self.request.path,
                        status_code,
                    )
                await self._emit({"type": "websocket.close", "code": CloseCode.POLICY_VIOLATION})
        except ConnectionClosed:
            pass

    # ---- the contract: messages ----------------------------------------------------------

    async def receive(self) -> WebSocketMessage:
        """Return the next message; raise ConnectionClosed once the input is over."""
        inbox = self._inbox
        while not inbox or self._discarding:
            if self._discarding:
                inbox.clear()
            if self._input_over:
                raise self._closed_error()
            if self._answer is _Answer.PENDING:
                raise RuntimeError("accept the WebSocket handshake before receiving")
            if self._answer is _Answer.REJECTED:
                raise self._closed_error()
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
        message = inbox.popleft()
        self._made_room()
        return message

    def receive_nowait(self) -> WebSocketMessage | None:
        """Return the next message if one was received already, else None."""
        inbox = self._inbox
        if not inbox or self._discarding:
            return None
        message = inbox.popleft()
        self._made_room()
        return message

    def _made_room(self) -> None:
        room, self._room = self._room, None
        if room is not None:
            room.set()

    async def send(self, message: WebSocketMessage) -> None:
        """Send one message; returns once the server's ``send`` returned."""
        if message.type is MessageType.CLOSE:
            await self.close(message.code or CloseCode.NORMAL_CLOSURE, message.reason or "")
            return
        if self._answer is not _Answer.ACCEPTED:
            if self._answer is _Answer.REJECTED:
                raise self._closed_error()
            raise RuntimeError("accept the WebSocket handshake before you send")
        state = self._state
        if state is not ConnectionState.OPEN and state is not ConnectionState.FAILING:
            raise self._closed_error()
        data = message.data
        if isinstance(data, str):
            await self._emit_message({"type": "websocket.send", "text": data})
        else:
            await self._emit_message({"type": "websocket.send", "bytes": data})

    def discard_incoming(self) -> None:
        """Drop what is queued and what arrives later; the reader reads on."""
        self._discarding = True
        self._inbox.clear()
        self._made_room()

    async def ping(self, payload: bytes | None = None) -> Awaitable[object]:
        """ASGI has no ping event: keepalive is the server's."""
        raise NotImplementedError(
            "ping() is not available under an ASGI server: keepalive pings are the server's"
        )

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Send ``websocket.close``; idempotent (after a 1009 failure: that close)."""
        if self._answer is _Answer.PENDING:
            raise RuntimeError("accept the WebSocket handshake before closing it")
        state = self._state
        if state is ConnectionState.FAILING:
            assert self._failure is not None
            code, reason = self._failure
        elif state is ConnectionState.OPEN:
            self._closed_by_us = (code, reason)
        else:
            return
        self._transition(StateEvent.CLOSE_SENT)
        try:
            await self._emit({"type": "websocket.close", "code": code, "reason": reason})
        except ConnectionClosed:
            pass

    async def wait_closed(self) -> None:
        """Wait until the input is over; after our close, at most ``close_timeout``."""
        if self._input_over:
            return
        if self._ended is None:
            self._ended = anyio.Event()
        if self._state is ConnectionState.CLOSING:
            with anyio.move_on_after(self.config.close_timeout):
                await self._ended.wait()
            if self._state is ConnectionState.CLOSING:
                self._transition(StateEvent.ABORT)  # the server owns the rest of it
            return
        await self._ended.wait()

    # ---- the reader ----------------------------------------------------------------------

    async def run_reader(self) -> None:
        """Take events from ``receive`` while the queue has room, until the input ends."""
        limit = self.config.max_queue
        max_size = self.config.max_message_size
        inbox = self._inbox
        while not self._input_over:
            while len(inbox) >= limit and not self._discarding:
                if self._room is None:
                    self._room = anyio.Event()
                await self._room.wait()
            try:
                event = await self._receive()
            except Exception as exc:  # the server's receive broke: the client is gone
                logger.debug("receive failed on WebSocket %s: %r", self.request.path, exc)
                self._peer_gone(CloseCode.ABNORMAL_CLOSURE, "")
                return
            kind = event["type"]
            if kind == "websocket.receive":
                text = event.get("text")
                if text is not None:
                    message = WebSocketMessage.text(text)
                else:
                    message = WebSocketMessage.binary(bytes(event.get("bytes") or b""))
                if self._discarding or self._state is not ConnectionState.OPEN:
                    # Dropped; a checkpoint, as a server's receive may return at once.
                    await anyio.lowlevel.checkpoint()
                    continue
                if len(message.data) > max_size:
                    self._fail(
                        CloseCode.MESSAGE_TOO_BIG,
                        f"message over max_message_size ({max_size})",
                    )
                    continue
                inbox.append(message)
                self._wake()
            elif kind == "websocket.disconnect":
                code = int(event.get("code") or CloseCode.NO_STATUS_RECEIVED)
                reason = str(event.get("reason") or "")
                self._peer_gone(code, reason)

    @property
    def _input_over(self) -> bool:
        state = self._state
        return state is ConnectionState.CLOSED or state is ConnectionState.FAILING

    def _peer_gone(self, code: int, reason: str) -> None:
        if code != CloseCode.ABNORMAL_CLOSURE:
            self._peer = (code, reason)
        state = self._state
        if state is ConnectionState.CLOSED:
            return
        if (
            state is ConnectionState.FAILING
            or code == CloseCode.ABNORMAL_CLOSURE
            or state is ConnectionState.CONNECTING
        ):
            self._transition(StateEvent.PEER_LEFT)
        else:
            self._transition(StateEvent.PEER_CLOSED)

    def _fail(self, code: int, reason: str) -> None:
        """The peer broke a limit: the input is over, our next close sends ``code``."""
        self._failure = (code, reason)
        self._inbox.clear()
        logger.info("failed %s with %d: %s", self.request.path, code, reason)
        self._transition(StateEvent.PEER_FAILED)

    # ---- state and sending ---------------------------------------------------------------

    def _transition(self, event: StateEvent) -> None:
        """Move to the state ``event`` leads to; when the input ends, tell the listeners."""
        old = self._state
        new = self._state = next_state(old, event)
        if old is ConnectionState.FAILING or new not in (
            ConnectionState.FAILING,
            ConnectionState.CLOSED,
        ):
            return
        self._wake()
        ended = self._ended
        if ended is not None:
            ended.set()
        self._made_room()
        on_ended = self._on_ended
        if on_ended is not None:
            on_ended(anyio.current_time())

    def _wake(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def _emit(self, message: Message) -> None:
        """Hand a handshake or close event to the server, bounded by ``write_timeout``.

        Raises:
            ConnectionClosed: ``send`` raised (the client is gone) or stalled.
        """
        with anyio.move_on_after(self.config.effective_write_timeout) as scope:
            await self._emit_message(message)
        if scope.cancelled_caught:
            self._stalled()
            raise self._closed_error()

    async def _emit_message(self, message: Message) -> None:
        """Hand ``message`` to the server, one ``send`` at a time.

        A message's ``send`` is timed by :meth:`run_watchdog` (no timer per message).

        Raises:
            ConnectionClosed: ``send`` raised: the client is gone.
        """
        while self._sending:  # another task is in a send (rare): wait for its end
            if self._turn is None:
                self._turn = anyio.Event()
            await self._turn.wait()
        self._sending = True
        self._sends += 1
        try:
            await self._send(message)
        except Exception as exc:
            logger.debug("the ASGI server refused %s: %r", message["type"], exc)
            self._lost()
            raise self._closed_error() from None
        finally:
            self._sending = False
            turn, self._turn = self._turn, None
            if turn is not None:
                turn.set()

    async def run_watchdog(self) -> None:
        """End the connection when one ``send`` is in flight for ``write_timeout``.

        Ticks at a fifth of the timeout, so a stall is seen at most 25 % late; the session
        then winds the handler down (it is in that send: ``handler_grace``).
        """
        timeout = self.config.effective_write_timeout
        seen, ticks = -1, 0
        while not self._input_over:
            await anyio.sleep(timeout / 5)
            if self._sending and self._sends == seen:
                ticks += 1
                if ticks >= 5:
                    self._stalled()
                    return
            else:
                seen, ticks = self._sends, 0

    def _stalled(self) -> None:
        if self._failure is None and self._state is not ConnectionState.CLOSED:
            logger.info(
                "WebSocket %s: a send made no progress for %.0f s (write_timeout); dropping it",
                self.request.path,
                self.config.effective_write_timeout,
            )
            self._failure = (CloseCode.ABNORMAL_CLOSURE, "write timeout")
        self._lost()

    def _lost(self) -> None:
        if self._state is not ConnectionState.CLOSED:
            self._transition(StateEvent.ABORT)

    def _closed_error(self) -> ConnectionClosed:
        if self._answer is _Answer.REJECTED:
            return ConnectionClosedError(CloseCode.POLICY_VIOLATION, "handshake rejected")
        code = self.close_code or CloseCode.ABNORMAL_CLOSURE
        reason = self.close_reason or ""
        if self._failure is None and (self._closed_by_us is not None or self._peer is not None):
            return ConnectionClosedOK(code, reason)  # a close handshake, as on the wire
        return ConnectionClosedError(code, reason)
