"""A process-wide bound on the inbound bytes buffered for WebSocket applications.

Each connection already bounds itself (``max_queue`` messages of at most
``max_message_size``, one partial message, one read ahead), but ten thousand lagging
connections times that bound is more memory than a machine has. One :class:`InboundBudget`
per server adds the bytes every connection holds; while the total is above
``max_buffered_bytes``, connections whose application is behind (messages wait in its queue)
stop reading (:meth:`InboundBudget.wait_for_room`), and they are resumed, oldest first, once
the total fell below three quarters of the limit. A connection whose application waits for
its next message always reads on, so the budget never deadlocks applications that wait on
each other; what such a connection holds is at most one partial message. A connection keeps
what it already read, so the total passes the limit by at most one read (plus that partial
message) per connection.

Counted: the unparsed bytes a connection holds, the data of a message being reassembled, and
every message queued for the application; text counts one byte per character when it is
ASCII and four otherwise (the worst case in memory), binary its length.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["InboundBudget", "message_cost"]


def message_cost(data: str | bytes) -> int:
    """The bytes a queued message's data is counted as (see the module docs)."""
    if isinstance(data, str) and not data.isascii():
        return 4 * len(data)
    return len(data)


class InboundBudget:
    """Counts buffered inbound bytes across connections; see the module docs.

    Args:
        limit: ``max_buffered_bytes``; None counts without ever pausing anyone.
    """

    __slots__ = ("_low_water", "_waiting", "limit", "used")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._low_water = None if limit is None else limit - limit // 4
        self.used = 0
        """Bytes held by every connection together."""
        self._waiting: dict[object, Callable[[], None]] = {}

    @property
    def exhausted(self) -> bool:
        """True while connections must not read more."""
        return self.limit is not None and self.used > self.limit

    def charge(self, size: int) -> None:
        """Count ``size`` more bytes held (callers on hot paths add to :attr:`used` directly)."""
        self.used += size

    def release(self, size: int) -> None:
        """Count ``size`` bytes fewer; resume waiters once below the low-water mark."""
        self.used -= size
        if self._waiting:
            low_water = self._low_water
            if low_water is None or self.used < low_water:
                self._resume()

    @property
    def waiting(self) -> bool:
        """True while connections wait for room."""
        return bool(self._waiting)

    def wait_for_room(self, owner: object, resume: Callable[[], None]) -> None:
        """Call ``resume()`` once the total is back below the low-water mark."""
        self._waiting[owner] = resume

    def forget(self, owner: object) -> None:
        """``owner`` no longer waits (it ended)."""
        self._waiting.pop(owner, None)

    def _resume(self) -> None:
        waiting = list(self._waiting.items())
        self._waiting.clear()
        for position, (_, resume) in enumerate(waiting):
            resume()
            if self.exhausted:
                # The ones resumed so far filled it again: the rest wait on, in their order.
                asked_again = self._waiting
                self._waiting = dict(waiting[position + 1 :])
                self._waiting.update(asked_again)
                return
