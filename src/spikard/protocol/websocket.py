"""The server side of an open WebSocket, sans-I/O, on top of wsproto.

Theory of operation
-------------------
The driver feeds received bytes to :meth:`WebSocketProtocol.receive_data` (and EOF to
:meth:`~WebSocketProtocol.receive_eof`) and gets back the events the peer caused: complete
:class:`~spikard.messages.WebSocketMessage` objects and :class:`PongReceived`. Whatever must go
back on the wire (pong replies, close replies, failure closes, and the frames of messages the
application sends) accumulates in one outgoing buffer that the driver drains with
:meth:`~WebSocketProtocol.data_to_send`, once per read, so a burst of pings costs one write.

One frame grammar
-----------------
Every frame header is read and judged here, once, by the same code whatever path its payload
then takes, in wsproto's order and at the byte where wsproto would judge it: the opcode, a
fragmented or over-long (> 125 bytes) control frame, the length encoding (RFC 6455, section
5.2: the shortest form, and a 64-bit length with its top bit clear), the reserved bits (RSV1
only as the permessage-deflate flag of a message's first frame), the mask bit, and then,
once the payload's first byte is there, fragmentation (a continuation with no message
started, or a new message inside one). All of these fail with 1002. Only a header found
valid is then held against the size limits (1009), so header validity always comes first,
however the bytes are chunked. Then the payload takes one of two paths:

- **The fast path** (no extension negotiated, ``fast_path=True``): a whole message in one
  final text or binary frame, and every control frame, is unmasked (:mod:`.masking`),
  decoded and validated here, with no wsproto event objects in between. A binary frame that
  is still arriving is buffered until it is complete (its size was checked at its header); a
  text frame that is still arriving goes the other way, so that invalid UTF-8 fails at the
  read where it occurs. Every outgoing frame is written here too.
- **wsproto**, frame by frame: fragments, text frames still arriving, every frame when an
  extension is negotiated, and every frame with ``fast_path=False``. Control frames are handed
  over whole (at most 131 bytes), data frames as their bytes arrive, so wsproto never holds
  unparsed input. wsproto unmasks, inflates, checks UTF-8 and close frames, and this module
  reassembles the messages.

Both paths give the same answers: the same events, close codes and outgoing frames for the
same bytes, whatever the chunking and the ``limit``. ``tests/protocol/test_differential.py``
proves it with hypothesis, feeding valid and invalid frame streams (fragmentation, control
frames, UTF-8, limits, with and without permessage-deflate) to a fast-path protocol and to a
``fast_path=False`` one, each in its own random chunking, and feeding raw wsproto the same
streams as the reference for the grammar itself. Where wsproto departs from RFC 6455 the RFC
answer is kept, on both paths: close code 1014 (registered by IANA) is a valid close, and a
control frame between the fragments of a compressed message leaves its inflation state alone
(see :mod:`.deflate`).

Size limits, the same on every path: ``max_message_size`` and ``max_frame_size`` count text
in decoded characters and binary in bytes. A binary frame is refused at its header when it
would pass either limit. A text frame is refused at its header only when no valid UTF-8
could fit (more than four bytes per allowed character), and otherwise when a frame has been
decoded (never mid-frame, so a frame's invalid UTF-8 always wins over its length, in any
chunking). A compressed frame says nothing about its size at its header: inflation is
bounded in bytes instead (4 x the limit for text, see :mod:`.deflate`) and the characters
are counted as above.

The close handshake:

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
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason

from ..errors import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from ..messages import (
    CloseCode,
    MessageType,
    WebSocketMessage,
    new_message,
    validate_close_code,
)
from .deflate import BoundedPerMessageDeflate
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

_CONTINUATION = 0x0
_TEXT = 0x1
_BINARY = 0x2
_CLOSE = 0x8
_PING = 0x9
_PONG = 0xA
_MAX_CONTROL_PAYLOAD = 125
_MAX_CLOSE_REASON = _MAX_CONTROL_PAYLOAD - 2
_FIN = 0x80
_RSV1 = 0x40
_RSV_BITS = 0x70
_MASKED = 0x80
_UTF8_MAX_BYTES_PER_CHAR = 4
_UTF8_MAX_CARRY = _UTF8_MAX_BYTES_PER_CHAR - 1
"""Bytes of one character that a non-final text frame may leave for the next one."""
_LOCAL_ONLY_CODES = (CloseCode.ABNORMAL_CLOSURE, 1015)
"""Codes that are never sent; a close with one of them goes out as 1000 (as wsproto does)."""
_pack_short_header = struct.Struct("!BBH").pack
_pack_long_header = struct.Struct("!BBQ").pack


_VIEW_MIN = 16384
"""From this payload size on, a payload is unmasked through a view (no copy of it first), and
an outgoing frame is kept as one object (:attr:`WebSocketProtocol._held`) rather than copied
into the outgoing buffer. Below it the plain copies cost less than the views."""


def _unmasked(buffer: bytes | bytearray, start: int, end: int) -> bytes:
    """The payload ``buffer[start:end]`` of a client frame, unmasked with the key before it."""
    if end - start < _VIEW_MIN:
        return unmask(buffer[start:end], buffer[start - 4 : start])
    view = memoryview(buffer)[start:end]
    try:
        return unmask(view, buffer[start - 4 : start])
    finally:
        view.release()  # a bytearray buffer may be resized again


def _parse_close(payload: bytes) -> tuple[bool, int, str]:
    """Judge a close frame's payload: (valid, code, reason), or (False, error code, why)."""
    if not payload:
        return True, int(CloseCode.NO_STATUS_RECEIVED), ""
    if len(payload) == 1:
        return False, int(CloseCode.PROTOCOL_ERROR), "close frame with a one-byte payload"
    code = int.from_bytes(payload[:2], "big")
    try:
        validate_close_code(code)
    except ValueError:
        return False, int(CloseCode.PROTOCOL_ERROR), f"close frame with code {code}"
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return False, int(CloseCode.INVALID_PAYLOAD), "invalid UTF-8 in close reason"
    return True, code, reason


class WebSocketProtocol:
    """One server-side WebSocket connection after the handshake, as a byte-in/byte-out machine.

    Args:
        max_message_size: the largest message accepted; a larger one fails the connection
            with 1009. Text is counted in decoded characters, binary in bytes, on every path
            (with permessage-deflate too, where inflation is bounded in bytes: up to 4 x this
            for text, the UTF-8 worst case, see :mod:`.deflate`).
        max_frame_size: the largest single frame accepted (1009 too), counted the same way;
            None means ``max_message_size``.
        extensions: negotiated wsproto extensions (permessage-deflate). A
            :class:`~.deflate.BoundedPerMessageDeflate` is bounded by these limits.
        trailing_data: bytes that arrived after the handshake request.
        fast_path: parse common frames here (see the module docs); False sends every frame
            through wsproto, the reference the fast path is tested against. With an extension
            negotiated the fast path is off anyway.
    """

    __slots__ = (
        "_compressed",
        "_extensions",
        "_fast",
        "_frame_size",
        "_held",
        "_inbound",
        "_inbound_start",
        "_initiated_close",
        "_max_frame_size",
        "_max_message_size",
        "_message",
        "_message_bytes",
        "_outgoing",
        "_parts",
        "_pending",
        "_rsv1_allowed",
        "_rsv_checked",
        "_size",
        "_to_wsproto",
        "_wsproto",
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
        fast_path: bool = True,
    ) -> None:
        self._extensions = extensions
        self._wsproto: Connection | None = None
        """Created on first use: many connections never need it (see :attr:`_conn`)."""
        self._fast = fast_path and not extensions
        """No extension negotiated: whole data frames skip wsproto (see the module docs)."""
        self._max_message_size = max_message_size
        self._max_frame_size = max_frame_size or max_message_size
        self._rsv1_allowed = False
        """permessage-deflate is on: RSV1 marks a compressed message's first frame."""
        self._rsv_checked = True
        """Only extensions known here: their reserved bits are judged here (else by wsproto)."""
        if extensions:
            enabled = [extension for extension in extensions if extension.enabled()]
            self._rsv1_allowed = any(isinstance(ext, PerMessageDeflate) for ext in enabled)
            self._rsv_checked = all(isinstance(ext, PerMessageDeflate) for ext in enabled)
            for extension in enabled:
                if isinstance(extension, BoundedPerMessageDeflate):
                    extension.set_limits(max_message_size, max_frame_size)
        self._inbound = bytearray()
        """Received bytes not yet parsed: an incomplete header or fast-path frame."""
        self._inbound_start = 0
        """Where the unparsed bytes of :attr:`_inbound` begin (parsed ones are dropped lazily)."""
        self._to_wsproto = 0
        """Bytes of the current frame still to be streamed to wsproto."""
        self._message = 0
        """The opcode of the fragmented message in progress (text or binary), 0 if none."""
        self._compressed = False
        """The fragmented message in progress is compressed (its first frame had RSV1)."""
        self._message_bytes = 0
        """Payload bytes of the fragmented message in progress, as they came on the wire."""
        self._frame_size = 0
        """Characters or bytes of the frame wsproto is decoding, so far."""
        self._outgoing = bytearray()
        self._held: bytes | None = None
        """One big frame, queued whole into an empty :attr:`_outgoing`. Invariant: while it
        is set, :attr:`_outgoing` is empty (whatever queues next moves it there first)."""
        self._parts: list[str | bytes] = []
        self._size = 0
        """Characters or bytes of the message being reassembled (the sum of :attr:`_parts`
        and the current frame's data so far)."""
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

        With a ``limit``, at most that many events are parsed; the bytes after them wait,
        unparsed (``receive_data(b"", limit)`` goes on), so that a burst of tiny frames costs
        no more memory than its bytes while nobody can take the messages.
        """
        if self.input_ended:
            return []
        events: list[Event] = []
        buffer: bytes | bytearray = data
        position = 0
        if self._inbound:
            self._inbound += data
            buffer, self._inbound = self._inbound, bytearray()
            position, self._inbound_start = self._inbound_start, 0
        end = len(buffer)
        fast = self._fast
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
            frame = self._read_header(buffer, position, end)
            if frame is None:
                if self.input_ended:
                    return events  # an invalid header
                break  # the header is incomplete
            first, opcode, header_size, length = frame
            payload_start = position + header_size
            payload_end = payload_start + length
            if opcode & 0x8:
                if payload_end > end:
                    break  # control frames are taken whole (at most 131 bytes)
                if fast:
                    payload = _unmasked(buffer, payload_start, payload_end)
                    if opcode == _PING:
                        if self.state is ProtocolState.OPEN:
                            self._queue_frame(_PONG, payload)
                    elif opcode == _PONG:
                        events.append(PongReceived(payload))
                    else:
                        self._receive_close(payload)
                else:
                    frame_bytes = bytes(buffer[position:payload_end])
                    close_payload = (
                        _unmasked(buffer, payload_start, payload_end) if opcode == _CLOSE else None
                    )
                    self._feed_wsproto(frame_bytes, events, close_payload)
                position = payload_end
                if self.input_ended:
                    return events
                continue
            message = self._message
            if (opcode == _CONTINUATION) is (message == 0):
                # wsproto judges fragmentation once the payload's first byte is there.
                if length and payload_start >= end:
                    break
                self._peer_error(
                    CloseCode.PROTOCOL_ERROR,
                    "continuation frame without a message"
                    if message == 0
                    else "new message inside a fragmented message",
                )
                return events
            fin = first & _FIN
            if opcode:
                compressed = bool(first & _RSV1)
                text = opcode == _TEXT
                so_far = 0
            else:
                compressed = self._compressed
                text = message == _TEXT
                so_far = self._message_bytes
            if not compressed and not self._fits(text, fin, so_far, length):
                return events
            if not opcode:
                self._message_bytes = so_far + length
                if fin:
                    self._message = 0
            elif not fin:
                self._message = opcode
                self._compressed = compressed
                self._message_bytes = length
            elif fast:
                if payload_end <= end:
                    position = payload_end
                    whole = self._whole_message(text, _unmasked(buffer, payload_start, payload_end))
                    if whole is None:
                        return events
                    events.append(whole)
                    continue
                if not text:
                    break  # wait for the rest of the frame
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
        held = self._held
        return len(self._outgoing) + (0 if held is None else len(held))

    @property
    def has_unparsed_input(self) -> bool:
        """True when received bytes wait to be parsed (a frame's rest, or beyond a limit)."""
        return len(self._inbound) > self._inbound_start

    @property
    def buffered_bytes(self) -> int:
        """About how much received input this protocol holds that is not yet an event.

        The unparsed bytes (an incomplete frame, or frames waiting beyond a ``limit``), the
        data of the message being reassembled, and the messages that ``trailing_data``
        produced and :meth:`take_pending` did not take yet. Text counts its characters, so
        this is an estimate for a memory budget, not an exact byte count (a character takes
        one to four bytes). Cheap: O(1), plus O(events) while :meth:`take_pending` waits.
        """
        held = len(self._inbound) - self._inbound_start + self._size
        for event in self._pending:
            held += len(event.payload) if isinstance(event, PongReceived) else len(event.data)
        return held

    def _read_header(
        self, buffer: bytes | bytearray, position: int, end: int
    ) -> tuple[int, int, int, int] | None:
        """Return (first byte, opcode, header size, payload length) of a valid frame header.

        None when the header is incomplete, or invalid: then the connection failed (1002) and
        :attr:`input_ended` is set. Each rule is judged as soon as wsproto would judge it,
        in its order (see the module docs).
        """
        available = end - position
        if available < 2:
            return None
        first = buffer[position]
        second = buffer[position + 1]
        opcode = first & 0x0F
        length = second & 0x7F
        if opcode & 0x8:
            if opcode > _PONG:
                return self._bad_header(f"reserved control opcode {opcode:#x}")
            if not first & _FIN:
                return self._bad_header("fragmented control frame")
            if length > _MAX_CONTROL_PAYLOAD:
                return self._bad_header("control frame longer than 125 bytes")
        elif opcode > _BINARY:
            return self._bad_header(f"reserved data opcode {opcode:#x}")
        if length < 126:
            header_size = 6
        elif length == 126:
            if available < 4:
                return None
            length = buffer[position + 2] << 8 | buffer[position + 3]
            if length < 126:
                return self._bad_header("payload length in 2 bytes when 1 would do")
            header_size = 8
        else:
            if available < 10:
                return None
            length = int.from_bytes(buffer[position + 2 : position + 10], "big")
            if length < 65536:
                return self._bad_header("payload length in 8 bytes when 2 would do")
            if length >> 63:
                return self._bad_header("64-bit payload length with its top bit set")
            header_size = 14
        rsv = first & _RSV_BITS
        if (
            rsv
            and self._rsv_checked
            and (rsv != _RSV1 or not self._rsv1_allowed or not opcode or opcode & 0x8)
        ):
            return self._bad_header("reserved bits set")
        if not second & _MASKED:
            return self._bad_header("unmasked client frame")
        if available < header_size:
            return None
        return first, opcode, header_size, length

    def _bad_header(self, reason: str) -> tuple[int, int, int, int] | None:
        """Fail the connection for an invalid header (1002); None, for :meth:`_read_header`."""
        self._peer_error(CloseCode.PROTOCOL_ERROR, reason)
        return None

    def _fits(self, text: bool, fin: int, so_far: int, length: int) -> bool:
        """Check an uncompressed data frame's size at its header; fail with 1009 if too big.

        Binary is refused exactly when it passes a limit. Text is limited in characters, so
        only a frame that cannot fit even in four-byte characters is refused here (a frame
        that is not final may end with up to three bytes of a character the next completes);
        the rest is checked once decoded.
        """
        if text:
            frame_limit = _UTF8_MAX_BYTES_PER_CHAR * self._max_frame_size
            if not fin:
                frame_limit += _UTF8_MAX_CARRY
            message_limit = _UTF8_MAX_BYTES_PER_CHAR * self._max_message_size
        else:
            frame_limit = self._max_frame_size
            message_limit = self._max_message_size
        if so_far + length > message_limit:
            self._too_big(self._max_message_size + 1, text)
            return False
        if length > frame_limit:
            self._too_big(0, text)
            return False
        return True

    def _too_big(self, size: int, text: bool) -> None:
        unit = "characters" if text else "bytes"
        if size > self._max_message_size:
            reason = f"message larger than {self._max_message_size} {unit}"
        else:
            reason = f"frame larger than {self._max_frame_size} {unit}"
        self._peer_error(CloseCode.MESSAGE_TOO_BIG, reason)

    def _whole_message(self, text: bool, payload: bytes) -> WebSocketMessage | None:
        """Build the message of a whole-message frame; None after failing the connection."""
        if not text:
            return new_message(MessageType.BINARY, payload)
        try:
            decoded = payload.decode("utf-8")
        except UnicodeDecodeError:
            self._peer_error(CloseCode.INVALID_PAYLOAD, "invalid UTF-8 in text frame")
            return None
        size = len(decoded)
        if size > self._max_message_size or size > self._max_frame_size:
            self._too_big(size, True)
            return None
        return new_message(MessageType.TEXT, decoded)

    def _receive_close(self, payload: bytes) -> None:
        """Handle a well-framed close frame from the peer (fast path)."""
        valid, code, reason = _parse_close(payload)
        if valid:
            self._peer_closed(code, reason)
        else:
            self._peer_error(code, reason)

    def _peer_closed(self, code: int, reason: str) -> None:
        """The peer's valid close frame arrived: reply, or finish our own handshake."""
        self.peer_close = (code, reason)
        if self.state is ProtocolState.OPEN:
            # The peer started the handshake: echo its close, as RFC 6455 section 5.5.1 suggests.
            self._queue_close(code, reason)
            self._finish(code, reason)
        else:
            code, reason = self._initiated_close or (code, reason)
            self._finish(code, reason)

    def _feed_wsproto(
        self, data: bytes, events: list[Event], close_payload: bytes | None = None
    ) -> None:
        """Let wsproto parse ``data``; append the events it completes.

        ``data`` is one whole control frame, or the next bytes of a data frame.
        ``close_payload`` is the unmasked payload when ``data`` is a close frame.
        """
        connection = self._conn
        connection.receive_data(data)
        for event in connection.events():
            if isinstance(event, Message):
                message = self._assemble(event)
                if message is not None:
                    events.append(message)
                elif self.input_ended:
                    break
            elif isinstance(event, Ping):
                if self.state is ProtocolState.OPEN:
                    self._out().extend(connection.send(event.response()))
            elif isinstance(event, Pong):
                events.append(PongReceived(bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                self._on_close_event(event, close_payload)
                break

    def receive_eof(self) -> None:
        """Record that the peer closed TCP; without a close frame first, the code is 1006."""
        if self.state is ProtocolState.FAILING and self.failure is not None:
            self._finish(*self.failure)
        elif self.state is not ProtocolState.CLOSED:
            self._finish(CloseCode.ABNORMAL_CLOSURE, "")

    def _assemble(self, event: Message) -> WebSocketMessage | None:  # type: ignore[type-arg]
        data = event.data
        size = len(data)
        self._size += size
        self._frame_size += size
        if isinstance(data, str):
            # Characters are counted once the frame is decoded (its invalid UTF-8 comes
            # first, in any chunking). Mid-frame, the header and inflation bounds keep a frame
            # under 4 x max_frame_size + 3 characters; the check is for other extensions.
            if event.frame_finished:
                too_big = self._frame_size > self._max_frame_size
                too_big = too_big or self._size > self._max_message_size
            else:
                frame_bound = _UTF8_MAX_BYTES_PER_CHAR * self._max_frame_size + _UTF8_MAX_CARRY
                too_big = self._frame_size > frame_bound
                too_big = too_big or self._size > _UTF8_MAX_BYTES_PER_CHAR * self._max_message_size
        else:
            too_big = self._frame_size > self._max_frame_size or self._size > self._max_message_size
        if too_big:
            self._too_big(self._size, isinstance(data, str))
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

    def _on_close_event(self, event: CloseConnection, payload: bytes | None) -> None:
        ws_state = self._conn.state
        if ws_state in (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING):
            # wsproto reports a frame it cannot parse as a CloseConnection without leaving
            # OPEN: that is our failure to send, not the peer's close.
            if payload is not None:
                valid, code, reason = _parse_close(payload)
                if valid:
                    # wsproto refuses close code 1014, which RFC 6455's registry (IANA) has
                    # assigned: the RFC's answer wins, as on the fast path.
                    self._peer_closed(code, reason)
                    return
            self._peer_error(event.code, event.reason or "protocol error")
            return
        self.peer_close = (int(event.code), event.reason or "")
        if ws_state is ConnectionState.REMOTE_CLOSING:
            # The peer started the handshake: echo its code, as RFC 6455 section 5.5.1 suggests.
            self._out().extend(self._conn.send(event.response()))
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
            self._out().extend(self._conn.send(event))
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
                self._out().extend(self._conn.send(Ping(payload=payload)))

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

    def _out(self) -> bytearray:
        """The outgoing buffer, with any held frame moved into it first (order is kept)."""
        outgoing = self._outgoing
        held = self._held
        if held is not None:
            self._held = None
            outgoing += held
        return outgoing

    def _queue_frame(self, opcode: int, payload: bytes | bytearray) -> None:
        """Queue one final frame; server frames are unmasked."""
        length = len(payload)
        if length >= _VIEW_MIN and self._held is None and not self._outgoing:
            # Nothing queued before it: the frame is made in one copy, and written as is.
            if length < 65536:
                self._held = _pack_short_header(_FIN | opcode, 126, length) + payload
            else:
                self._held = _pack_long_header(_FIN | opcode, 127, length) + payload
            return
        outgoing = self._outgoing if self._held is None else self._out()
        if length < 126:
            outgoing.append(_FIN | opcode)
            outgoing.append(length)
        elif length < 65536:
            outgoing += _pack_short_header(_FIN | opcode, 126, length)
        else:
            outgoing += _pack_long_header(_FIN | opcode, 127, length)
        outgoing += payload

    def _queue_close(self, code: int, reason: str) -> None:
        """Queue a close frame; 1005 goes out as an empty one, 1006 and 1015 as 1000."""
        if not self._fast:
            if code == CloseCode.NO_STATUS_RECEIVED:
                # An empty close frame, as on the fast path: wsproto recognises "no status"
                # only as its own enum member (a plain 1005 would go out as 1000), and it
                # refuses a reason without a code.
                code, reason = CloseReason.NO_STATUS_RCVD, ""
            self._out().extend(self._conn.send(CloseConnection(code=code, reason=reason)))
            return
        if code == CloseCode.NO_STATUS_RECEIVED:
            self._queue_frame(_CLOSE, b"")  # "no status" is never sent: an empty close frame
            return
        if code in _LOCAL_ONLY_CODES:
            code = CloseCode.NORMAL_CLOSURE
        encoded = reason.encode()
        if len(encoded) > _MAX_CLOSE_REASON:  # cut at a character boundary
            encoded = encoded[:_MAX_CLOSE_REASON].decode("utf-8", "ignore").encode()
        self._queue_frame(_CLOSE, code.to_bytes(2, "big") + encoded)

    @property
    def has_data_to_send(self) -> bool:
        """True when bytes are queued for the peer."""
        return self._held is not None or bool(self._outgoing)

    def data_to_send(self) -> bytes:
        """Return and forget every byte queued for the peer."""
        held = self._held
        if held is not None:  # then nothing else is queued (see _out)
            self._held = None
            return held
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
