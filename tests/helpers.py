"""Clients for tests: the real `websockets` client on the running backend, and raw TCP."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
import sniffio
from websockets.exceptions import InvalidStatus


@asynccontextmanager
async def ws_connect(url: str, **kwargs: Any) -> AsyncIterator[Any]:
    """Connect with websockets' asyncio client on asyncio and its trio client on trio."""
    if sniffio.current_async_library() == "trio":
        # websockets grew a trio client in version 17 (Python >= 3.11).
        trio_client = pytest.importorskip("websockets.trio.client")
        trio_connect = trio_client.connect

        async with trio_connect(url, **kwargs) as websocket:
            yield websocket
    else:
        from websockets.asyncio.client import connect as asyncio_connect

        async with asyncio_connect(url, **kwargs) as websocket:
            yield websocket


async def handshake_refusal(url: str, **kwargs: Any) -> Any:
    """Connect expecting the handshake to be refused; return the HTTP response it got."""
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(url, **kwargs):
            pass  # pragma: no cover
    return refused.value.response


def upgrade_request(
    path: str = "/", *, port: int = 80, extra: str = "", key: str | None = None, version: str = "13"
) -> bytes:
    """A raw WebSocket upgrade request."""
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: {version}\r\n{extra}\r\n"
    ).encode()


async def read_until(stream: anyio.abc.ByteStream, marker: bytes, limit: int = 1 << 20) -> bytes:
    """Read until ``marker`` appears (or EOF); return everything read."""
    data = b""
    while marker not in data and len(data) < limit:
        try:
            data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            break
    return data


async def read_all(stream: anyio.abc.ByteStream) -> bytes:
    """Read until EOF."""
    data = b""
    while True:
        try:
            data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return data


def masked_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    mask: bytes = b"\x01\x02\x03\x04",
    rsv: int = 0,
) -> bytes:
    """A client frame (masked), as raw bytes."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    length = len(payload)
    if length < 126:
        header = bytes([first, 0x80 | length])
    elif length < 1 << 16:
        header = bytes([first, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([first, 0x80 | 127]) + length.to_bytes(8, "big")
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + body


def parse_server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split unmasked server frames into (opcode, payload) pairs (ignores a trailing partial)."""
    frames = []
    while len(data) >= 2:
        opcode = data[0] & 0x0F
        length = data[1] & 0x7F
        offset = 2
        if length == 126:
            length = int.from_bytes(data[2:4], "big")
            offset = 4
        elif length == 127:
            length = int.from_bytes(data[2:10], "big")
            offset = 10
        if len(data) < offset + length:
            break
        frames.append((opcode, data[offset : offset + length]))
        data = data[offset + length :]
    return frames


def close_code(payload: bytes) -> int | None:
    """The code in a close frame's payload."""
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
