"""Unmasking client frames (RFC 6455, section 5.3): XOR with a repeating 4-byte key.

The pure-Python path picks the faster of two formulations for the size at hand: one XOR of
two big integers for short payloads, four ``bytes.translate`` passes (one per key byte, over
every fourth byte) for long ones. When the C function of the ``websockets`` package is
importable (``pip install -e ".[speedups]"`` from the checkout, or ``pip install websockets``)
it is used instead: it is about fifty times faster on a 64 KiB frame, the one place where
pure Python cannot keep up with the wire.
Setting the environment variable ``SPIKARD_NO_SPEEDUPS=1`` forces the pure-Python path.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["ACCELERATED", "unmask", "unmask_python"]

_INT_XOR_MAX = 1024
"""Above this many bytes the translate formulation wins (measured on CPython 3.11)."""

_XOR_TABLES = [bytes(byte ^ key for byte in range(256)) for key in range(256)]


def unmask_python(payload: bytes | bytearray | memoryview, key: bytes | bytearray) -> bytes:
    """Return ``payload`` XOR-ed with the repeated 4-byte ``key``, in pure Python.

    ``payload`` may be a view (of a received buffer, to skip copying it first).
    """
    size = len(payload)
    if size <= _INT_XOR_MAX:
        keystream = (bytes(key) * ((size >> 2) + 1))[:size]
        value = int.from_bytes(payload, "little") ^ int.from_bytes(keystream, "little")
        return value.to_bytes(size, "little")
    result = bytearray(payload)
    for lane in range(4):
        result[lane::4] = result[lane::4].translate(_XOR_TABLES[key[lane]])
    return bytes(result)


def _accelerated() -> Callable[[bytes | bytearray | memoryview, bytes | bytearray], bytes] | None:
    if os.environ.get("SPIKARD_NO_SPEEDUPS"):
        return None
    try:
        from websockets.speedups import apply_mask  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    function: Callable[[bytes | bytearray | memoryview, bytes | bytearray], bytes] = apply_mask
    return function


_apply_mask = _accelerated()

ACCELERATED = _apply_mask is not None
"""True when unmasking runs in C (the ``speedups`` extra is installed)."""

unmask: Callable[[bytes | bytearray | memoryview, bytes | bytearray], bytes] = (
    _apply_mask or unmask_python
)
"""Return a client frame's payload unmasked with its 4-byte key."""
