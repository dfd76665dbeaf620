"""Stream operators that run on asyncio and trio: ``socket | ops.rate_limit(5, 10)``.

Each operator applied to an async iterable (a :class:`~spikard.WebSocket`, a subscription,
an async generator, another operator's output) gives a :class:`Stage`: an async iterator
that pulls its source only as fast as its consumer takes (unless its policy says otherwise,
and then within a bound), closes its source when it ends or is closed, and can be returned
from a stream handler. Timing operators take ``clock=`` (tests pass a :class:`ManualClock`).
``merge`` and ``zip`` combine sources inside an ``async with`` block. See ``docs/ops.md``.
"""

from ._clock import SYSTEM_CLOCK, AnyioClock, Clock, ManualClock
from ._core import Operator, Stage
from .batching import batch
from .buffering import BufferPolicy, buffer
from .combining import merge, zip
from .concurrency import map_concurrent
from .errors import IdleTimeout, RateLimitExceeded, StreamLimitExceeded
from .rate import rate_limit
from .timing import debounce, throttle, timeout
from .transform import filter, map

__all__ = [
    "SYSTEM_CLOCK",
    "AnyioClock",
    "BufferPolicy",
    "Clock",
    "IdleTimeout",
    "ManualClock",
    "Operator",
    "RateLimitExceeded",
    "Stage",
    "StreamLimitExceeded",
    "batch",
    "buffer",
    "debounce",
    "filter",
    "map",
    "map_concurrent",
    "merge",
    "rate_limit",
    "throttle",
    "timeout",
    "zip",
]
