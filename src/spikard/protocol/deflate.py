"""permessage-deflate (RFC 7692): offer negotiation, and inflation bounded by the size limits.

wsproto implements the compression itself; this module decides which of the client's offers
to accept (the first valid one, each judged on its own) and guards inflation: a small
compressed frame may expand enormously, so a message is never inflated past what its size
limit allows (the message then fails with 1009 instead of exhausting memory).

The bound is in bytes, because inflation produces bytes, while ``max_message_size`` counts text
in characters (:class:`~spikard.protocol.websocket.WebSocketProtocol` counts them once
decoded). A text message is therefore inflated up to **4 x max_message_size bytes**, the UTF-8
worst case for that many characters (four bytes each); a binary message up to
``max_message_size`` bytes. Frames likewise: ``max_frame_size`` bytes for binary,
``4 x max_frame_size + 3`` for text (a character may straddle two frames). The memory one
compressed text message may take before it is refused is thus up to four times the limit.

Which limit is passed first, and whether a corrupt stream (1007) or the bound (1009) comes
first, is decided in stream order, the same however the frames are split into reads.
"""

from __future__ import annotations

import codecs
import zlib
from collections.abc import Sequence

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

__all__ = ["BoundedPerMessageDeflate", "negotiate_deflate"]

_NAME = "permessage-deflate"
_FLAGS = frozenset({"server_no_context_takeover", "client_no_context_takeover"})
_WINDOW_BITS = frozenset({"server_max_window_bits", "client_max_window_bits"})
_UTF8_MAX_BYTES_PER_CHAR = 4
_MAX_EXPANSION = 1032
"""deflate's largest output per input byte (a 258-byte match in two bits)."""
_SLACK = 8 * _MAX_EXPANSION + 258
"""Output that bits already held by zlib (and a pending match) may still produce."""
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


def _incomplete_utf8_tail(tail: bytes) -> bytes:
    """The unfinished character at the end of ``tail`` (its last bytes), or b""."""
    for back in range(1, min(3, len(tail)) + 1):
        byte = tail[-back]
        if byte < 0x80:
            return b""
        if byte >= 0xC0:
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return tail[-back:] if need > back else b""
    return b""


class BoundedPerMessageDeflate(PerMessageDeflate):
    """wsproto's permessage-deflate, with inflation bounded by the message and frame limits.

    A binary message inflates to at most ``max_message_size`` bytes; a text message to at most
    ``4 * max_message_size`` bytes, the UTF-8 worst case for ``max_message_size`` characters
    (the protocol then counts the decoded characters exactly). Frames are bounded the same way
    by ``max_frame_size`` (plus 3 bytes for text: a character split across frames).
    :class:`~spikard.protocol.websocket.WebSocketProtocol` calls :meth:`set_limits` with its
    own limits, so the two always agree.

    It also keeps the compression state of a fragmented message across control frames sent
    between its fragments (RFC 6455, section 5.4): wsproto's own extension forgets it there and
    inflates the rest of the message as if it were uncompressed.
    """

    def __init__(self, max_message_size: int, max_frame_size: int | None = None) -> None:
        super().__init__()
        self._max_message_size = max_message_size
        self._max_frame_size = max_frame_size or max_message_size
        self._text = False
        """The message being received is text (its bound is in UTF-8 bytes)."""
        self._message_inflated = 0
        self._frame_inflated = 0
        self._carry = b""
        """The unfinished character at the end of the text inflated so far."""

    def set_limits(self, max_message_size: int, max_frame_size: int | None = None) -> None:
        """Bound inflation by these limits (counted as the protocol counts them)."""
        self._max_message_size = max_message_size
        self._max_frame_size = max_frame_size or max_message_size

    def _room(self) -> int:
        """How many more inflated bytes the current frame and message may take."""
        if self._text:
            message = _UTF8_MAX_BYTES_PER_CHAR * self._max_message_size
            frame = _UTF8_MAX_BYTES_PER_CHAR * self._max_frame_size + 3
        else:
            message = self._max_message_size
            frame = self._max_frame_size
        return min(message - self._message_inflated, frame - self._frame_inflated)

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        """Note where a message and a frame begin.

        A control frame leaves the message's compression state alone (wsproto's own extension
        resets it after one, see the class docs).
        """
        if opcode.iscontrol():
            if rsv.rsv1:
                return CloseReason.PROTOCOL_ERROR
            self._inbound_is_compressible = False
            return RsvBits(True, False, False)
        result = super().frame_inbound_header(proto, opcode, rsv, payload_length)
        if isinstance(result, CloseReason):
            return result
        if opcode is not Opcode.CONTINUATION:
            self._text = opcode is Opcode.TEXT
            self._message_inflated = 0
            self._carry = b""
        self._frame_inflated = 0
        return result

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        """Inflate one chunk, refusing to produce more than the limits allow."""
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        decompressor = self._decompressor
        assert decompressor is not None
        data = bytes(data)
        room = self._room()
        # zlib may find a corrupt code just after the output that passes the bound: keep a
        # copy when the bound is within reach, to tell which came first in stream order.
        backup = None
        if room < _MAX_EXPANSION * len(data) + _SLACK:
            try:
                backup = decompressor.copy()
            except ValueError:  # zlib cannot copy a stream it already found broken or ended
                backup = None
        try:
            inflated = decompressor.decompress(data, room + 1)
        except zlib.error:
            if backup is not None:
                within = _inflate_until_bound(backup, data, room)
                if within is not None:
                    return self._too_big(within)
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if len(inflated) > room:
            return self._too_big(inflated[:room])
        self._count(inflated)
        return inflated

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        """Finish a frame, bounding the tail of a message like the rest of it.

        A control frame changes nothing here.
        """
        if not self._inbound_is_compressible:
            return None
        compressed = bool(self._inbound_compressed)
        result = super().frame_inbound_complete(proto, fin)
        if not compressed or not isinstance(result, bytes) or not result:
            return result
        room = self._room()
        if len(result) > room:
            return self._too_big(result[:room])
        self._count(result)
        return result

    def _count(self, inflated: bytes) -> None:
        size = len(inflated)
        self._message_inflated += size
        self._frame_inflated += size
        if self._text and size:
            self._carry = _incomplete_utf8_tail((self._carry + inflated[-3:])[-3:])

    def _too_big(self, within: bytes) -> CloseReason:
        """The bound is passed; ``within`` is this chunk's output up to the bound.

        Invalid UTF-8 before the bound was the first violation (1007), as it is when the same
        bytes arrive in smaller reads; otherwise the message is too big (1009).
        """
        if self._text:
            try:
                _utf8_decoder().decode(self._carry + within, False)
            except UnicodeDecodeError:
                return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        return CloseReason.MESSAGE_TOO_BIG


def _inflate_until_bound(decompressor: zlib._Decompress, data: bytes, room: int) -> bytes | None:
    """Inflate ``data`` a byte at a time, to see which comes first.

    Returns:
        The output up to ``room`` bytes if the output passes ``room`` before zlib fails, None
        if zlib fails first.
    """
    produced = bytearray()
    for index in range(len(data)):
        try:
            produced += decompressor.decompress(data[index : index + 1], room + 1 - len(produced))
        except zlib.error:
            return None
        if len(produced) > room:
            return bytes(produced[:room])
    return None


def _valid_offer(offer: str) -> bool:
    """True when ``offer`` is a permessage-deflate offer with well-formed parameters."""
    name, *params = (part.strip() for part in offer.split(";"))
    if name.lower() != _NAME:
        return False
    seen: set[str] = set()
    for param in params:
        key, has_value, value = (piece.strip() for piece in param.partition("="))
        key = key.lower()
        value = value.strip('"')
        if key in seen:
            return False
        seen.add(key)
        if key in _FLAGS:
            if has_value:
                return False
        elif key in _WINDOW_BITS:
            if not has_value:
                if key == "server_max_window_bits":
                    return False
                continue
            if not value.isdigit() or not 9 <= int(value) <= 15:
                # 8 is legal in RFC 7692 but zlib cannot honour it for raw deflate.
                return False
        else:
            return False
    return True


def negotiate_deflate(
    offers: Sequence[str], max_message_size: int, max_frame_size: int | None = None
) -> tuple[str, BoundedPerMessageDeflate] | None:
    """Pick the first acceptable permessage-deflate offer.

    Returns:
        The ``Sec-WebSocket-Extensions`` value to answer with and the extension to run, or
        None when no offer is acceptable (the connection then runs uncompressed).
    """
    for offer in offers:
        if not _valid_offer(offer):
            continue
        extension = BoundedPerMessageDeflate(max_message_size, max_frame_size)
        accepted = extension.accept(offer.replace('"', ""))
        if accepted is None or accepted is False:
            continue
        header = _NAME if accepted is True or not accepted else f"{_NAME}; {accepted}"
        return header, extension
    return None
