"""The server side of an open WebSocket, sans-I/O, on top of wsproto.

Theory of operation
-------------------
The driver feeds received bytes to :meth:`WebSocketProtocol.receive_data` (and EOF to
:meth:`~WebSocketProtocol.receive_eof`) and gets back the events the peer caused: complete
:class:`~spikard.messages.WebSocketMessage` objects and :class:`PongReceived`. Whatever must go
back on the wire (pong replies, close replies, failure closes, and the frames of messages the
application sends) accumulates in one outgoing buffer that the driver drains with
:meth:`~WebSocketProtocol.data_to_send`, once per read, so a burst of pings costs one write.

Frames take one of two paths. This module reads every frame header itself, so it always knows
where frames begin and end:

- **The fast path** takes the common frames when no extension is negotiated: a whole message
  in one final, masked text or binary frame (no fragmented message in progress), and
  well-formed ping, pong and close frames. They are unmasked (:mod:`.masking`), decoded and
  validated here, with no wsproto event objects in between; a binary frame that is still
  arriving is buffered until it is complete (its size was checked against the limits at its
  header). Every outgoing frame is written here too.
- **Everything else goes to wsproto, frame by frame**: fragments, anything with an
  extension, and every malformed frame. wsproto checks masking, reserved bits, opcodes,
  control-frame rules, close codes and UTF-8 (a text frame that is still arriving is streamed
  to it, so invalid UTF-8 fails at the chunk where it occurs). On top of it this module
  reassembles fragmented messages.

Both paths enforce ``max_message_size`` while the message is still arriving (never buffering
more than the limit plus one read), and this module tracks the close handshake:

``OPEN`` --(we send close)--> ``CLOSING`` --(peer's close arrives)--> ``CLOSED``
``OPEN`` --(peer's close arrives; we reply at once)--> ``CLOSED``
``OPEN`` --(peer breaks the protocol)--> ``FAILING`` --(:meth:`close`: error close)--> ``CLOSED``
any state --(:meth:`fail`: we give up, e.g. keepalive timeout)--> ``CLOSED``
any state --(EOF)--> ``CLOSED`` with 1006 unless already closed

``FAILING`` exists so that a peer's error never overtakes the replies to the messages it sent
before the bad frame: nothing more is read, but the application may still send until it calls
:meth:`close`, which sends the close frame with the error code (1002, 1007, 1009). Both
``FAILING`` and ``CLOSED`` end the input (:attr:`input_ended`). Once ``CLOSED`` the driver
closes TCP: per RFC 6455, section 7.1.1, the server closes first.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.extensions import Extension

from ..errors import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from ..messages import (
    CloseCode,
    MessageType,
    WebSocketMessage,
    new_message,
    validate_close_code,
)
from .masking import unmask

__all__ = ["PongReceived", "ProtocolState", "WebSocketProtocol"]


class ProtocolState(enum.Enum):
    """Where the close handshake stands."""

    OPEN = "open"
    CLOSING = "closing"
    """We sent a close frame and wait for the peer's."""
    FAILING = "failing"
    """The peer broke the protocol: no more input; our error close goes out on close()."""
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class PongReceived:
    """The peer answered a ping."""

    payload: bytes


Event = WebSocketMessage | PongReceived

_TEXT = 0x1
_BINARY = 0x2
_DATA_OPCODES = (_TEXT, _BINARY)
_CLOSE = 0x8
_PING = 0x9
_PONG = 0xA
_CONTROL_OPCODES = (_CLOSE, _PING, _PONG)
_MAX_CONTROL_PAYLOAD = 125
_MAX_CLOSE_REASON = _MAX_CONTROL_PAYLOAD - 2
_FIN = 0x80
_MASKED = 0x80
_UTF8_MAX_BYTES_PER_CHAR = 4
_pack_short_header = struct.Struct("!BBH").pack
_pack_long_header = struct.Struct("!BBQ").pack


def _unmasked(buffer: bytes | bytearray, start: int, end: int) -> bytes:
    """The payload ``buffer[start:end]`` of a client frame, unmasked with the key before it."""
    return unmask(buffer[start:end], buffer[start - 4 : start])


class WebSocketProtocol:
    """One server-side WebSocket connection after the handshake, as a byte-in/byte-out machine.

    Args:
        max_message_size: the largest message accepted; a larger one fails the connection
            with 1009. Text is counted in decoded characters, binary in bytes.
        max_frame_size: the largest single frame accepted (1009 too); None means
            ``max_message_size``.
        extensions: negotiated wsproto extensions (permessage-deflate).
        trailing_data: bytes that arrived after the handshake request.
    """

    __slots__ = (
        "_extensions",
        "_fast",
        "_fragmented",
        "_frame_size",
        "_inbound",
        "_inbound_start",
        "_initiated_close",
        "_max_frame_size",
        "_max_message_size",
        "_outgoing",
        "_parts",
        "_pending",
        "_size",
        "_to_wsproto",
        "_wsproto",
        "_wsproto_pending",
        "close_code",
        "close_reason",
        "failure",
        "input_ended",
        "peer_close",
        "state",
    )

    def __init__(
        self,
        *,
        max_message_size: int,
        max_frame_size: int | None = None,
        extensions: list[Extension] | None = None,
        trailing_data: bytes = b"",
    ) -> None:
        self._extensions = extensions
        self._wsproto: Connection | None = None
        """Created on first use: many connections never need it (see :attr:`_conn`)."""
        self._fast = not extensions
        """No extension negotiated: whole data frames skip wsproto (see the module docs)."""
        self._inbound = bytearray()
        """Received bytes not yet parsed: an incomplete header or fast-path frame."""
        self._inbound_start = 0
        """Where the unparsed bytes of :attr:`_inbound` begin (parsed ones are dropped lazily)."""
        self._wsproto_pending = False
        """wsproto holds frames it has not parsed yet: a limit stopped it."""
        self._to_wsproto = 0
        """Bytes of the current frame still to be streamed to wsproto."""
        self._fragmented = False
        """wsproto is in the middle of a fragmented message."""
        self._max_message_size = max_message_size
        self._max_frame_size = max_frame_size or max_message_size
        self._frame_size = 0
        self._outgoing = bytearray()
        self._parts: list[str | bytes] = []
        self._size = 0
        self.state = ProtocolState.OPEN
        self.input_ended = False
        """True once nothing more will be read: ``FAILING`` or ``CLOSED``."""
        self.close_code: int | None = None
        """How the connection ended; None while it is open or closing."""
        self.close_reason = ""
        self.peer_close: tuple[int, str] | None = None
        """The code and reason of the peer's close frame, None if none arrived (yet)."""
        self.failure: tuple[int, str] | None = None
        """Set when this side failed the connection for a protocol violation."""
        self._initiated_close: tuple[int, str] | None = None
        self._pending: list[Event] = []
        if trailing_data:
            self._pending = self.receive_data(trailing_data)

    @property
    def _conn(self) -> Connection:
        connection = self._wsproto
        if connection is None:
            connection = self._wsproto = Connection(ConnectionType.SERVER, self._extensions)
        return connection

    def take_pending(self) -> list[Event]:
        """Return the events caused by ``trailing_data`` (once)."""
        events, self._pending = self._pending, []
        return events

    # ---- receiving -------------------------------------------------------------------------

    def receive_data(self, data: bytes, limit: int = 0) -> list[Event]:
        """Feed bytes from the peer; return the complete messages and pongs they finish.

        With a ``limit``, at most that many events are parsed from the extension-free frames;
        the bytes after them wait, unparsed (``receive_data(b"", limit)`` goes on), so that
        a burst of tiny frames costs no more memory than its bytes while nobody can take
        the messages.
        """
        if self.input_ended:
            return []
        events: list[Event] = []
        if not self._fast:
            self._feed_wsproto(data, events, limit)
            return events
        buffer: bytes | bytearray = data
        position = 0
        if self._inbound:
            self._inbound += data
            buffer, self._inbound = self._inbound, bytearray()
            position, self._inbound_start = self._inbound_start, 0
        end = len(buffer)
        while position < end:
            if limit and len(events) >= limit:
                break
            if self._to_wsproto:
                chunk_end = min(end, position + self._to_wsproto)
                self._to_wsproto -= chunk_end - position
                self._feed_wsproto(bytes(buffer[position:chunk_end]), events)
                position = chunk_end
                if self.input_ended:
                    return events
                continue
            frame = self._parse_header(buffer, position, end)
            if frame is None:
                break  # the header is incomplete
            first, opcode, header_size, length = frame
            payload_start = position + header_size
            if (
                opcode in _CONTROL_OPCODES
                and first == _FIN | opcode
                and length <= _MAX_CONTROL_PAYLOAD
                and buffer[position + 1] & _MASKED
            ):
                payload_end = payload_start + length
                if payload_end > end:
                    break  # wait for the rest of the frame (at most 131 bytes)
                payload = _unmasked(buffer, payload_start, payload_end)
                position = payload_end
                if opcode == _PING:
                    if self.state is ProtocolState.OPEN:
                        self._queue_frame(_PONG, payload)
                elif opcode == _PONG:
                    events.append(PongReceived(payload))
                else:
                    self._receive_close(payload)
                    if self.input_ended:
                        return events
                continue
            if opcode in _DATA_OPCODES and first == _FIN | opcode:
                if not self._fragmented and buffer[position + 1] & _MASKED:
                    if not self._fits(opcode, length):
                        return events
                    payload_end = payload_start + length
                    if payload_end <= end:
                        payload = _unmasked(buffer, payload_start, payload_end)
                        position = payload_end
                        message = self._whole_message(opcode, payload)
                        if message is None:
                            return events
                        events.append(message)
                        continue
                    if opcode == _BINARY:
                        break  # wait for the rest of the frame
            elif opcode in _DATA_OPCODES:
                self._fragmented = not first & _FIN
            elif opcode == 0 and first & _FIN:
                self._fragmented = False
            self._to_wsproto = header_size + length
        if position < end:
            if isinstance(buffer, bytearray):
                # Keep it, no copy; drop the parsed part once it is the larger one.
                if position > end >> 1:
                    del buffer[:position]
                    position = 0
                self._inbound = buffer
                self._inbound_start = position
            else:
                self._inbound += buffer[position:]
        return events

    @property
    def outgoing_size(self) -> int:
        """How many bytes wait in the outgoing buffer (:meth:`data_to_send` takes them)."""
        return len(self._outgoing)

    @property
    def has_unparsed_input(self) -> bool:
        """True when received bytes wait to be parsed (a frame's rest, or beyond a limit)."""
        return len(self._inbound) > self._inbound_start or self._wsproto_pending

    @staticmethod
    def _parse_header(
        buffer: bytes | bytearray, position: int, end: int
    ) -> tuple[int, int, int, int] | None:
        """Return (first byte, opcode, header size, payload length), None if incomplete."""
        if end - position < 2:
            return None
        first = buffer[position]
        second = buffer[position + 1]
        length = second & 0x7F
        header_size = 6 if second & _MASKED else 2
        if length == 126:
            header_size += 2
            if end - position < header_size:
                return None
            length = int.from_bytes(buffer[position + 2 : position + 4], "big")
        elif length == 127:
            header_size += 8
            if end - position < header_size:
                return None
            length = int.from_bytes(buffer[position + 2 : position + 10], "big")
        elif end - position < header_size:
            return None
        return first, first & 0x0F, header_size, length

    def _fits(self, opcode: int, length: int) -> bool:
        """Check a whole-message frame's size at its header; fail with 1009 if it is too big.

        Text is limited in characters, so only a frame too long to fit even in four-byte
        characters is refused here; the rest is checked once decoded.
        """
        limit = min(self._max_message_size, self._max_frame_size)
        if opcode == _TEXT:
            limit *= _UTF8_MAX_BYTES_PER_CHAR
        if length <= limit:
            return True
        self._too_big(length if opcode == _BINARY else length // _UTF8_MAX_BYTES_PER_CHAR)
        return False

    def _too_big(self, size: int) -> None:
        if size > self._max_message_size:
            self._peer_error(
                CloseCode.MESSAGE_TOO_BIG, f"message larger than {self._max_message_size} bytes"
            )
        else:
            self._peer_error(
                CloseCode.MESSAGE_TOO_BIG, f"frame larger than {self._max_frame_size} bytes"
            )

    def _whole_message(self, opcode: int, payload: bytes) -> WebSocketMessage | None:
        """Build the message of a whole-message frame; None after failing the connection."""
        if opcode == _BINARY:
            return new_message(MessageType.BINARY, payload)
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            self._peer_error(CloseCode.INVALID_PAYLOAD, "invalid UTF-8 in text frame")
            return None
        if len(text) > self._max_message_size or len(text) > self._max_frame_size:
            self._too_big(len(text))
            return None
        return new_message(MessageType.TEXT, text)

    def _receive_close(self, payload: bytes) -> None:
        """Handle a well-framed close frame from the peer (fast path)."""
        if not payload:
            code, reason = int(CloseCode.NO_STATUS_RECEIVED), ""
        elif len(payload) == 1:
            self._peer_error(CloseCode.PROTOCOL_ERROR, "close frame with a one-byte payload")
            return
        else:
            code = int.from_bytes(payload[:2], "big")
            try:
                validate_close_code(code)
            except ValueError:
                self._peer_error(CloseCode.PROTOCOL_ERROR, f"close frame with code {code}")
                return
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                self._peer_error(CloseCode.INVALID_PAYLOAD, "invalid UTF-8 in close reason")
                return
        self.peer_close = (code, reason)
        if self.state is ProtocolState.OPEN:
            # The peer started the handshake: echo its close, as RFC 6455 section 5.5.1 suggests.
            self._queue_close(code, reason)
            self._finish(code, reason)
        else:
            code, reason = self._initiated_close or (code, reason)
            self._finish(code, reason)

    def _feed_wsproto(self, data: bytes, events: list[Event], limit: int = 0) -> None:
        """Let wsproto parse ``data``; append the events it completes (up to ``limit``).

        wsproto parses its buffer lazily, frame by frame, as its events are taken: stopping at
        the limit leaves the rest unparsed, and a later call (even with no data) goes on.
        """
        self._conn.receive_data(data)
        self._wsproto_pending = False
        for event in self._conn.events():
            if isinstance(event, Message):
                message = self._assemble(event)
                if message is not None:
                    events.append(message)
                elif self.failure is not None:
                    break
            elif isinstance(event, Ping):
                if self.state is ProtocolState.OPEN:
                    self._outgoing += self._conn.send(event.response())
            elif isinstance(event, Pong):
                events.append(PongReceived(bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                self._on_close_event(event)
                break
            if limit and len(events) >= limit:
                self._wsproto_pending = True
                break

    def receive_eof(self) -> None:
        """Record that the peer closed TCP; without a close frame first, the code is 1006."""
        if self.state is ProtocolState.FAILING and self.failure is not None:
            self._finish(*self.failure)
        elif self.state is not ProtocolState.CLOSED:
            self._finish(CloseCode.ABNORMAL_CLOSURE, "")

    def _assemble(self, event: Message) -> WebSocketMessage | None:  # type: ignore[type-arg]
        data = event.data
        self._size += len(data)
        self._frame_size += len(data)
        if self._size > self._max_message_size:
            self._peer_error(
                CloseCode.MESSAGE_TOO_BIG,
                f"message larger than {self._max_message_size} bytes",
            )
            return None
        if self._frame_size > self._max_frame_size:
            self._peer_error(
                CloseCode.MESSAGE_TOO_BIG, f"frame larger than {self._max_frame_size} bytes"
            )
            return None
        if event.frame_finished:
            self._frame_size = 0
        if not event.message_finished:
            self._parts.append(data)
            return None
        if self._parts:
            self._parts.append(data)
            data = "".join(self._parts) if isinstance(data, str) else b"".join(self._parts)  # type: ignore[arg-type]
            self._parts = []
        self._size = 0
        if isinstance(event, TextMessage):
            return new_message(MessageType.TEXT, data)
        assert isinstance(event, BytesMessage)
        return new_message(MessageType.BINARY, bytes(data))

    def _on_close_event(self, event: CloseConnection) -> None:
        ws_state = self._conn.state
        if ws_state in (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING):
            # wsproto reports a frame it cannot parse as a CloseConnection without leaving
            # OPEN: that is our failure to send, not the peer's close.
            self._peer_error(event.code, event.reason or "protocol error")
            return
        self.peer_close = (int(event.code), event.reason or "")
        if ws_state is ConnectionState.REMOTE_CLOSING:
            # The peer started the handshake: echo its code, as RFC 6455 section 5.5.1 suggests.
            self._outgoing += self._conn.send(event.response())
            self._finish(int(event.code), event.reason or "")
        else:
            code, reason = self._initiated_close or (int(event.code), event.reason or "")
            self._finish(code, reason)

    def _peer_error(self, code: int, reason: str) -> None:
        self.failure = (code, reason)
        self._parts = []
        self._size = 0
        if self.state is ProtocolState.OPEN:
            self.state = ProtocolState.FAILING
            self.input_ended = True
            self.close_code = code
            self.close_reason = reason
        else:  # we were closing already: no second close frame
            self._finish(code, reason)

    def _finish(self, code: int, reason: str) -> None:
        self.state = ProtocolState.CLOSED
        self.input_ended = True
        self.close_code = code
        self.close_reason = reason
        self._parts = []
        self._size = 0

    # ---- sending ---------------------------------------------------------------------------

    def send(self, message: WebSocketMessage) -> None:
        """Queue the frames of ``message``; a close message starts the close handshake.

        Raises:
            ConnectionClosed: the connection is closing or closed.
        """
        if message.type is MessageType.CLOSE:
            self.close(message.code or CloseCode.NORMAL_CLOSURE, message.reason or "")
            return
        if self.state is not ProtocolState.OPEN and self.state is not ProtocolState.FAILING:
            raise self.closed_error()
        data = message.data
        if not self._fast:
            event = TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
            self._outgoing += self._conn.send(event)
            return
        if isinstance(data, str):
            self._queue_frame(_TEXT, data.encode())
        else:
            self._queue_frame(_BINARY, data)

    def ping(self, payload: bytes) -> None:
        """Queue a ping frame (no-op once closing).

        Raises:
            ValueError: ``payload`` is longer than 125 bytes.
        """
        if len(payload) > _MAX_CONTROL_PAYLOAD:
            raise ValueError("a ping payload is at most 125 bytes")
        if self.state is ProtocolState.OPEN:
            if self._fast:
                self._queue_frame(_PING, payload)
            else:
                self._outgoing += self._conn.send(Ping(payload=payload))

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the close handshake (no-op once closing).

        After a peer's protocol error (``FAILING``) the close frame carries the error's code,
        whatever ``code`` says, and the connection is ``CLOSED`` at once.
        """
        if self.state is ProtocolState.FAILING and self.failure is not None:
            code, reason = self.failure
            self._queue_close(code, reason)
            self._finish(code, reason)
        elif self.state is ProtocolState.OPEN:
            self._queue_close(code, reason)
            self._initiated_close = (code, reason)
            self.state = ProtocolState.CLOSING

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455, section 7.1.7): send a close if we still may, then end."""
        if self.state is ProtocolState.CLOSED:
            return
        if self.state is ProtocolState.OPEN or self.state is ProtocolState.FAILING:
            self._queue_close(code, reason)
        self.failure = (code, reason)
        self._finish(code, reason)

    def _queue_frame(self, opcode: int, payload: bytes) -> None:
        """Queue one final frame; server frames are unmasked."""
        outgoing = self._outgoing
        length = len(payload)
        if length < 126:
            outgoing.append(_FIN | opcode)
            outgoing.append(length)
        elif length < 65536:
            outgoing += _pack_short_header(_FIN | opcode, 126, length)
        else:
            outgoing += _pack_long_header(_FIN | opcode, 127, length)
        outgoing += payload

    def _queue_close(self, code: int, reason: str) -> None:
        if not self._fast:
            self._outgoing += self._conn.send(CloseConnection(code=code, reason=reason))
            return
        if code == CloseCode.NO_STATUS_RECEIVED:
            self._queue_frame(_CLOSE, b"")  # "no status" is never sent: an empty close frame
            return
        encoded = reason.encode()
        if len(encoded) > _MAX_CLOSE_REASON:  # cut at a character boundary
            encoded = encoded[:_MAX_CLOSE_REASON].decode("utf-8", "ignore").encode()
        self._queue_frame(_CLOSE, code.to_bytes(2, "big") + encoded)

    @property
    def has_data_to_send(self) -> bool:
        """True when bytes are queued for the peer."""
        return bool(self._outgoing)

    def data_to_send(self) -> bytes:
        """Return and forget every byte queued for the peer."""
        if not self._outgoing:
            return b""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    # ---- state -----------------------------------------------------------------------------

    @property
    def local_close_started(self) -> bool:
        """True once this side sent a close frame of its own (not a reply, not a failure)."""
        return self._initiated_close is not None

    @property
    def closed_cleanly(self) -> bool:
        """True when the connection ended with a close frame from the peer and no failure."""
        return self.peer_close is not None and self.failure is None

    def closed_error(self) -> ConnectionClosed:
        """Return the exception that describes why the connection is (being) closed."""
        if self.state is ProtocolState.CLOSING and self._initiated_close is not None:
            return ConnectionClosedOK(*self._initiated_close)
        code = self.close_code if self.close_code is not None else CloseCode.ABNORMAL_CLOSURE
        error = ConnectionClosedOK if self.closed_cleanly else ConnectionClosedError
        return error(code, self.close_reason)
