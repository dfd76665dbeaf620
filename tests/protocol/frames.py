"""Building client frames byte by byte (valid and not), compressing like a client, and reading
back what a :class:`WebSocketProtocol` produced: shared by the grammar and differential tests."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, Pong, TextMessage

from spikard.errors import ConnectionClosed
from spikard.messages import WebSocketMessage
from spikard.protocol.deflate import negotiate_deflate
from spikard.protocol.websocket import Event, PongReceived, WebSocketProtocol

from ..helpers import close_code, parse_server_frames

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RSV1 = 0b100
MASK = b"\x37\xfa\x21\x3d"

LENGTH_FORMS = ("minimal", "16", "64", "top")
"""How a frame's payload length is written: the shortest form (RFC 6455, section 5.2), forced
into 2 or 8 bytes (not minimal for a short payload), or 8 bytes with the top bit set."""


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
    length_form: str = "minimal",
) -> bytes:
    """A client frame as raw bytes; ``mask=None`` leaves it unmasked (invalid from a client)."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    masked = 0x80 if mask is not None else 0
    length = len(payload)
    if length_form == "minimal":
        length_form = "7" if length < 126 else "16" if length < 1 << 16 else "64"
    if length_form == "7":
        header = bytes([first, masked | length])
    elif length_form == "16":
        header = bytes([first, masked | 126]) + length.to_bytes(2, "big")
    elif length_form == "64":
        header = bytes([first, masked | 127]) + length.to_bytes(8, "big")
    else:
        assert length_form == "top"
        header = bytes([first, masked | 127]) + (1 << 63 | length).to_bytes(8, "big")
    if mask is None:
        return header + payload
    body = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + body


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


class DeflateClient:
    """Compresses messages as a permessage-deflate client does (RFC 7692, section 7.2.1)."""

    def __init__(self, *, no_context_takeover: bool = False) -> None:
        self.no_context_takeover = no_context_takeover
        self._compressor = zlib.compressobj(wbits=-15)

    def compress(self, data: bytes) -> bytes:
        if self.no_context_takeover:
            self._compressor = zlib.compressobj(wbits=-15)
        compressed = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        assert compressed.endswith(b"\x00\x00\xff\xff")
        return compressed[:-4]


def deflate_protocol(
    max_message_size: int,
    max_frame_size: int | None = None,
    *,
    no_context_takeover: bool = False,
    fast_path: bool = True,
) -> WebSocketProtocol:
    """A protocol with the permessage-deflate extension that the handshake would negotiate."""
    offer = "permessage-deflate" + ("; client_no_context_takeover" if no_context_takeover else "")
    negotiated = negotiate_deflate([offer], max_message_size)
    assert negotiated is not None
    return WebSocketProtocol(
        max_message_size=max_message_size,
        max_frame_size=max_frame_size,
        extensions=[negotiated[1]],
        fast_path=fast_path,
    )


# ---- reading results --------------------------------------------------------------------------

Outgoing = tuple[int, bytes | int | None]
"""A server frame: (opcode, payload), a close frame as (CLOSE, its code or None)."""


def outgoing_frames(data: bytes) -> list[Outgoing]:
    """The server frames in ``data`` (whole frames only), close reasons left out."""
    frames = parse_server_frames(data)
    offset = 0
    result: list[Outgoing] = []
    for opcode, payload in frames:
        assert data[offset] & 0x80, "server frames are final"
        assert not data[offset + 1] & 0x80, "server frames are unmasked"
        length = len(payload)
        offset += (2 if length < 126 else 4 if length < 1 << 16 else 10) + length
        result.append((opcode, close_code(payload)) if opcode == CLOSE else (opcode, payload))
    assert offset == len(data), "data_to_send() holds whole frames only"
    return result


def describe(event: Event) -> tuple[str, str | bytes]:
    if isinstance(event, PongReceived):
        return ("pong", event.payload)
    return (event.type.value, event.data)


@dataclass
class Outcome:
    """Everything observable about one run of a protocol over a byte stream."""

    events: list[tuple[str, str | bytes]] = field(default_factory=list)
    outgoing: list[list[Outgoing]] = field(default_factory=list)
    """What data_to_send() held at each action point, and at the end."""
    raised: list[tuple[str, int]] = field(default_factory=list)
    state: str = ""
    close_code: int | None = None
    failure_code: int | None = None
    peer_close: tuple[int, str] | None = None
    local_close_started: bool = False
    closed_cleanly: bool = False


Action = tuple[str, object]
"""An application call: ("text", str), ("binary", bytes), ("ping", bytes), ("close", (code,
reason)) or ("fail", (code, reason))."""


def apply_action(protocol: WebSocketProtocol, action: Action, outcome: Outcome) -> None:
    kind, argument = action
    try:
        if kind == "text":
            assert isinstance(argument, str)
            protocol.send(WebSocketMessage.text(argument))
        elif kind == "binary":
            assert isinstance(argument, bytes)
            protocol.send(WebSocketMessage.binary(argument))
        elif kind == "ping":
            assert isinstance(argument, bytes)
            protocol.ping(argument)
        elif kind == "close":
            assert isinstance(argument, tuple)
            protocol.close(*argument)
        else:
            assert kind == "fail"
            assert isinstance(argument, tuple)
            protocol.fail(*argument)
    except ConnectionClosed as error:
        outcome.raised.append((type(error).__name__, error.code))


def run(
    make: Callable[[], WebSocketProtocol],
    stream: bytes,
    *,
    cuts: Sequence[int] = (),
    limit: int = 0,
    actions: Sequence[tuple[int, Action]] = (),
    close_at_end: bool = False,
    eof: bool = False,
    check_budget: bool = True,
) -> Outcome:
    """Feed ``stream`` split at ``cuts`` (and at every action's offset) as a driver does: with a
    ``limit``, receive_data(b"", limit) is called again until it returns no more events. The
    actions run once the bytes before their offset are in."""
    protocol = make()
    outcome = Outcome()
    points = sorted({0, len(stream), *cuts, *(offset for offset, _ in actions)})
    received = 0

    def take(batch: list[Event]) -> None:
        if limit:
            assert len(batch) <= limit
        outcome.events.extend(describe(event) for event in batch)
        budget = protocol.buffered_bytes
        assert budget >= 0
        if check_budget:  # nothing inflates: what is held is at most what came in
            assert budget <= received

    previous = 0
    for point in points:
        if point > previous:
            received += point - previous
            batch = protocol.receive_data(stream[previous:point], limit)
            take(batch)
            while limit and batch:
                batch = protocol.receive_data(b"", limit)
                take(batch)
            previous = point
        for offset, action in actions:
            if offset == point:
                apply_action(protocol, action, outcome)
                outcome.outgoing.append(outgoing_frames(protocol.data_to_send()))
    if close_at_end:
        protocol.close()
    if eof:
        protocol.receive_eof()
    outcome.outgoing.append(outgoing_frames(protocol.data_to_send()))
    outcome.state = protocol.state.value
    outcome.close_code = protocol.close_code
    outcome.failure_code = protocol.failure[0] if protocol.failure is not None else None
    outcome.peer_close = protocol.peer_close
    outcome.local_close_started = protocol.local_close_started
    outcome.closed_cleanly = protocol.closed_cleanly
    return outcome


def raw_wsproto(
    stream: bytes,
) -> tuple[list[tuple[str, str | bytes]], list[bytes], CloseConnection | None, bool]:
    """wsproto alone, as the reference grammar: (messages and pongs, the pings it saw, the
    close event if any, True if that close event was a parse failure)."""
    connection = Connection(ConnectionType.SERVER)
    connection.receive_data(stream)
    events: list[tuple[str, str | bytes]] = []
    pings: list[bytes] = []
    parts: list[str | bytes] = []
    for event in connection.events():
        if isinstance(event, Message):
            parts.append(event.data)
            if event.message_finished:
                if isinstance(event, TextMessage):
                    events.append(("text", "".join(str(part) for part in parts)))
                else:
                    assert isinstance(event, BytesMessage)
                    events.append(("binary", b"".join(bytes(part) for part in parts)))  # type: ignore[arg-type]
                parts = []
        elif isinstance(event, Ping):
            pings.append(bytes(event.payload))
        elif isinstance(event, Pong):
            events.append(("pong", bytes(event.payload)))
        elif isinstance(event, CloseConnection):
            return events, pings, event, connection.state is ConnectionState.OPEN
    return events, pings, None, False
