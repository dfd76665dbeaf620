"""Per-client WebSocket limits: open sockets and handshake rate per client address.

One address must not take every slot of a server (``max_connections``), nor open handshakes
as fast as it can. Each client address (behind trusted proxies, the forwarded one; IPv6
grouped by /64, since one host usually holds a whole /64) gets:

- at most ``WebSocketConfig.max_connections_per_client`` WebSockets open at once;
- a token bucket of handshakes: ``handshake_rate`` per second, bursts of ``handshake_burst``.

Both are counted per worker process and generous by default (one NAT can hide many users).
A refusal is 429 with ``Retry-After``.

Memory bound: one small entry per address with an open socket or a bucket not yet full
again; idle full entries are swept when the table passes :data:`SWEEP_AT` entries, and past
:data:`MAX_ENTRIES` the idle ones go first (they come back with a full bucket, the lenient
side). Every operation is O(1) except the sweep, which runs at most once per
``SWEEP_AT`` new entries.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

__all__ = ["MAX_ENTRIES", "SWEEP_AT", "ClientLimits", "Refusal", "client_key"]

SWEEP_AT = 4096
"""Entries after which idle ones (no open socket, a full bucket) are dropped."""
MAX_ENTRIES = 100_000
"""Most entries kept even under a flood of distinct addresses."""


def client_key(host: str) -> str:
    """The address a limit counts: IPv4 as is, IPv6 by its /64 network."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(slots=True)
class _Entry:
    open: int
    tokens: float
    stamp: float
    warned: bool = False


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a handshake is turned away, and when the client may try again."""

    reason: str
    retry_after: int
    first: bool
    """True for the first refusal of this client since it was last let in (log it once)."""


class ClientLimits:
    """The per-client counters of one server process."""

    __slots__ = ("_entries", "_sweep_at")

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._sweep_at = SWEEP_AT

    def __len__(self) -> int:
        return len(self._entries)

    def admit(
        self,
        key: str,
        now: float,
        *,
        max_open: int | None,
        rate: float | None,
        burst: int,
    ) -> Refusal | None:
        """Count a handshake from ``key``; a :class:`Refusal` when it must be turned away.

        An admitted handshake holds one open slot until :meth:`release`.
        """
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self._sweep_at:
                self._sweep(now, rate, burst)  # before the new entry: it is not idle
            entry = self._entries[key] = _Entry(0, float(burst), now)
        if rate is not None:
            entry.tokens = min(float(burst), entry.tokens + (now - entry.stamp) * rate)
            entry.stamp = now
            if entry.tokens < 1.0:
                return self._refuse(
                    entry, "handshake rate", max(1, math.ceil((1.0 - entry.tokens) / rate))
                )
        if max_open is not None and entry.open >= max_open:
            return self._refuse(entry, "open WebSockets", 1)
        if rate is not None:
            entry.tokens -= 1.0
        entry.open += 1
        entry.warned = False
        return None

    def release(self, key: str) -> None:
        """A socket :meth:`admit` let in has ended."""
        entry = self._entries.get(key)
        if entry is not None and entry.open > 0:
            entry.open -= 1

    @staticmethod
    def _refuse(entry: _Entry, reason: str, retry_after: int) -> Refusal:
        first = not entry.warned
        entry.warned = True
        return Refusal(reason, retry_after, first)

    def _sweep(self, now: float, rate: float | None, burst: int) -> None:
        def idle(entry: _Entry) -> bool:
            if entry.open:
                return False
            if rate is None:
                return True
            return entry.tokens + (now - entry.stamp) * rate >= burst

        entries = self._entries
        for key in [key for key, entry in entries.items() if idle(entry)]:
            del entries[key]
        if len(entries) >= MAX_ENTRIES:
            for key in [key for key, entry in entries.items() if not entry.open]:
                del entries[key]
                if len(entries) < MAX_ENTRIES // 2:
                    break
        # Sweep again once as many new entries came as are left (amortized O(1)).
        self._sweep_at = max(SWEEP_AT, 2 * len(entries))
