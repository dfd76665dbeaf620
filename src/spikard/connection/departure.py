"""Whether the client left while its request is served: one reader of the socket, shared.

An HTTP/1.1 client says it is gone only by closing the connection, and a server sees that
only by reading. While a request is served nobody else reads: the request body is over (or
still being pulled by the handler, which owns the socket until it ends) and the next request
is not wanted yet. A :class:`DepartureWatch` reads then, for everyone who asks (a streamed
response's watcher, a handler awaiting :meth:`~spikard.requests.Request.wait_disconnected`,
an ASGI application waiting in ``receive``).

Invariants:

- At most one task reads for the watch at a time (its lock). A reader cancelled from
  outside leaves the bytes it read kept and hands over to the next waiter.
- Every byte read is kept for the next request (``keep``): a pipelining client loses none.
  After ``budget`` bytes (a head's worth) the watch stops reading; it cannot tell any more,
  and its waiters wait for :meth:`DepartureWatch.stop`.
- After :meth:`DepartureWatch.stop` returned nobody reads for the watch: the connection
  calls it at the end of the exchange, before it reads again.

Every wait is bounded by the exchange: :meth:`~DepartureWatch.stop` ends it.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["DepartureWatch"]

_READ_SIZE = 65536


class _Outcome(enum.Enum):
    WATCHING = "watching"
    """Nothing known yet (someone may be reading)."""
    UNKNOWN = "unknown"
    """Nothing can be known before the exchange ends (pipelined bytes, a failed body)."""
    GONE = "gone"
    """The client closed its side or the connection broke."""
    STOPPED = "stopped"
    """The exchange ended first."""


class DepartureWatch:
    """Tell when the client of the current exchange leaves; see the module docs.

    Args:
        receive: the transport's pulled read (``b""`` once the input ended).
        keep: takes every byte read (the next request's).
        budget: most bytes read before the watch gives up telling.
        body_finished: waits until the request body ended or failed: True when the client
            left meanwhile, False when the body ended, None when it failed (the rest is not
            read: nothing can be told). None when the request has no body.
    """

    __slots__ = (
        "_body_finished",
        "_budget",
        "_keep",
        "_lock",
        "_outcome",
        "_reader",
        "_receive",
        "_stopped",
    )

    def __init__(
        self,
        receive: Callable[[int], Awaitable[bytes]],
        keep: Callable[[bytes], None],
        budget: int,
        body_finished: Callable[[], Awaitable[bool | None]] | None,
    ) -> None:
        self._receive = receive
        self._keep = keep
        self._budget = budget
        self._body_finished = body_finished
        self._lock = anyio.Lock()
        self._outcome = _Outcome.WATCHING
        self._stopped = anyio.Event()
        self._reader: anyio.CancelScope | None = None

    async def wait(self) -> bool:
        """Wait until the client leaves (True) or the exchange ends (False)."""
        if self._outcome is _Outcome.WATCHING:
            async with self._lock:
                if self._outcome is _Outcome.WATCHING:
                    with anyio.CancelScope() as scope:
                        self._reader = scope
                        try:
                            gone = await self._watch()
                        finally:
                            self._reader = None
                    if not scope.cancelled_caught and self._outcome is _Outcome.WATCHING:
                        # (else stop() decided, even if this read completed meanwhile)
                        self._outcome = _Outcome.GONE if gone else _Outcome.UNKNOWN
        if self._outcome is _Outcome.UNKNOWN:
            await self._stopped.wait()
        return self._outcome is _Outcome.GONE

    async def _watch(self) -> bool:
        body_finished = self._body_finished
        if body_finished is not None:
            state = await body_finished()
            if state is None:
                return False
            if state:
                return True
            self._body_finished = None  # ended: a later reader goes straight to the socket
        while self._budget > 0:
            data = await self._receive(_READ_SIZE)
            if not data:
                return True
            self._keep(data)
            self._budget -= len(data)
        return False

    @property
    def gone(self) -> bool:
        """True once the client is known to have left."""
        return self._outcome is _Outcome.GONE

    async def stop(self) -> None:
        """The exchange is over: stop reading, wake every waiter (False), wait for the reader."""
        if self._outcome is not _Outcome.GONE:
            self._outcome = _Outcome.STOPPED
        self._stopped.set()
        reader = self._reader
        if reader is not None:
            reader.cancel()
        if self._lock.locked():
            async with self._lock:  # the reader has left the socket
                pass
