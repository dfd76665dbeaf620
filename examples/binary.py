"""A small binary protocol: struct-packed request records, one per WebSocket message.

::

    python examples/binary.py
    python -m spikard examples.binary:app

Every message to ``/records`` is a 10-byte header followed by a payload::

    request:  version u8 | op u8     | request_id u32 | length u32 | payload (length bytes)
    response: version u8 | status u8 | request_id u32 | length u32 | payload (length bytes)

(all big-endian). Operations: ``CRC32`` (the payload's CRC-32 as a u32), ``SHA256`` (the
32-byte digest), ``UPPER`` (ASCII upper-case) and ``REVERSE`` (the bytes reversed). A malformed
record gets a response with an error status and the reason, in UTF-8, as payload; the
connection stays open. A *text* message is not part of the protocol: the server closes the
connection with 1003 (unsupported data) by yielding ``WebSocketMessage.close(1003, ...)``.

:func:`encode_request` and :func:`decode_response` are the client side (the tests use them).
"""

from __future__ import annotations

import argparse
import enum
import hashlib
import struct
import zlib
from collections.abc import AsyncIterator
from typing import NamedTuple

from spikard import Spikard, WebSocket, WebSocketMessage

VERSION = 1
HEADER = struct.Struct("!BBII")


class Op(enum.IntEnum):
    CRC32 = 1
    SHA256 = 2
    UPPER = 3
    REVERSE = 4


class Status(enum.IntEnum):
    OK = 0
    BAD_HEADER = 1
    BAD_LENGTH = 2
    BAD_VERSION = 3
    UNKNOWN_OP = 4


class Reply(NamedTuple):
    status: Status
    request_id: int
    payload: bytes


def encode_request(op: int, request_id: int, payload: bytes, *, version: int = VERSION) -> bytes:
    """Pack one request record."""
    return HEADER.pack(version, op, request_id, len(payload)) + payload


def decode_response(data: bytes) -> Reply:
    """Unpack one response record.

    Raises:
        ValueError: ``data`` is not a well-formed response.
    """
    if len(data) < HEADER.size:
        raise ValueError("response shorter than its header")
    _version, status, request_id, length = HEADER.unpack_from(data)
    payload = data[HEADER.size :]
    if len(payload) != length:
        raise ValueError(f"response announces {length} payload bytes, carries {len(payload)}")
    return Reply(Status(status), request_id, payload)


def _reply(status: Status, request_id: int, payload: bytes) -> bytes:
    return HEADER.pack(VERSION, status, request_id, len(payload)) + payload


def _compute(op: Op, payload: bytes) -> bytes:
    if op is Op.CRC32:
        return struct.pack("!I", zlib.crc32(payload))
    if op is Op.SHA256:
        return hashlib.sha256(payload).digest()
    if op is Op.UPPER:
        return payload.upper()
    return payload[::-1]


def handle_record(data: bytes) -> bytes:
    """Answer one request record with one response record."""
    if len(data) < HEADER.size:
        return _reply(Status.BAD_HEADER, 0, f"need a {HEADER.size}-byte header".encode())
    version, op, request_id, length = HEADER.unpack_from(data)
    payload = data[HEADER.size :]
    if version != VERSION:
        return _reply(Status.BAD_VERSION, request_id, f"speak version {VERSION}".encode())
    if len(payload) != length:
        reason = f"header says {length} payload bytes, got {len(payload)}"
        return _reply(Status.BAD_LENGTH, request_id, reason.encode())
    try:
        operation = Op(op)
    except ValueError:
        return _reply(Status.UNKNOWN_OP, request_id, f"unknown op {op}".encode())
    return _reply(Status.OK, request_id, _compute(operation, payload))


app = Spikard()


@app.websocket("/records")
async def records(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async for message in socket:
        data = message.as_binary()
        if data is None:
            # Yielding a close message ends the session with that code and reason.
            yield WebSocketMessage.close(1003, "binary only")
            return
        yield WebSocketMessage.binary(handle_record(data))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="spikard binary record protocol")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    app.run(args.host, args.port, backend=args.backend)
