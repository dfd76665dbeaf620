"""permessage-deflate (RFC 7692): offer negotiation, and inflation bounded by the size limit.

wsproto implements the compression itself; this module decides which of the client's offers
to accept (the first valid one, each judged on its own) and guards inflation: a small
compressed frame may expand enormously, so a frame is never inflated past the message size
limit (the message then fails with 1009 instead of exhausting memory).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol

__all__ = ["BoundedPerMessageDeflate", "negotiate_deflate"]

_NAME = "permessage-deflate"
_FLAGS = frozenset({"server_no_context_takeover", "client_no_context_takeover"})
_WINDOW_BITS = frozenset({"server_max_window_bits", "client_max_window_bits"})


class BoundedPerMessageDeflate(PerMessageDeflate):
    """wsproto's permessage-deflate, with inflation capped at ``max_message_size`` bytes."""

    def __init__(self, max_message_size: int) -> None:
        super().__init__()
        self._max_inflated = max_message_size + 1

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        """Inflate one chunk, refusing to produce more than the message size limit."""
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        decompressor = self._decompressor
        assert decompressor is not None
        try:
            inflated = decompressor.decompress(bytes(data), self._max_inflated)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if decompressor.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        return inflated


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
    offers: Sequence[str], max_message_size: int
) -> tuple[str, BoundedPerMessageDeflate] | None:
    """Pick the first acceptable permessage-deflate offer.

    Returns:
        The ``Sec-WebSocket-Extensions`` value to answer with and the extension to run, or
        None when no offer is acceptable (the connection then runs uncompressed).
    """
    for offer in offers:
        if not _valid_offer(offer):
            continue
        extension = BoundedPerMessageDeflate(max_message_size)
        accepted = extension.accept(offer.replace('"', ""))
        if accepted is None or accepted is False:
            continue
        header = _NAME if accepted is True or not accepted else f"{_NAME}; {accepted}"
        return header, extension
    return None
