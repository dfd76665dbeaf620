"""``rate_limit``: a token bucket per stream.

The bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; it
starts full. An item costs one token (``unit="messages"``) or its size in bytes
(``unit="bytes"``: the UTF-8 length of text, the length of binary). An item is let through
when the bucket holds its cost; otherwise ``on_exceed`` decides:

``"close"``
    raise :class:`~spikard.ops.RateLimitExceeded`; a WebSocket session closes with 1008.
``"drop"``
    discard the item (counted in ``dropped``) and go on.
``"delay"``
    wait until the bucket holds the cost, then let it through. Nothing is pulled from the
    source meanwhile, so a client that floods is slowed by TCP, not buffered. An item
    costing more than ``burst`` waits for a full bucket and leaves it in debt, so the
    long-run rate still holds.
a callable
    ``on_exceed(item)`` (sync or async) returns what to emit instead, or None to drop it;
    it may raise to end the stream.

In every window of time ``w``, what passes costs at most ``burst + rate * w``.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, Callable
from typing import Any, Literal, TypeVar, cast

from ..messages import WebSocketMessage
from ._clock import SYSTEM_CLOCK, Clock
from ._core import MISSING, Operator, Stage, Upstream, check_positive
from .errors import RateLimitExceeded

__all__ = ["RateLimit", "RateLimitStage", "rate_limit"]

_T = TypeVar("_T")

_EPSILON = 1e-9
"""Float slack when comparing tokens with a cost."""

OnExceed = Literal["close", "drop", "delay"] | Callable[[Any], Any]
"""What ``rate_limit`` does with an item the bucket cannot pay for."""


def message_size(item: object) -> int:
    """Return the size of ``item`` in bytes: UTF-8 for text, length for binary.

    Raises:
        TypeError: the item is not a message, ``str`` or bytes-like.
    """
    data = item.data if isinstance(item, WebSocketMessage) else item
    if isinstance(data, str):
        return len(data) if data.isascii() else len(data.encode())
    if isinstance(data, (bytes, bytearray, memoryview)):
        return len(data)
    raise TypeError(
        f"rate_limit(unit='bytes') measures messages, str and bytes, not {type(item).__name__}"
    )


class RateLimitStage(Stage[_T]):
    """``source | rate_limit(...)``: what passes the bucket, in order."""

    def __init__(self, source: AsyncIterable[_T], limit: RateLimit) -> None:
        super().__init__()
        self._limit = limit
        self._upstream = Upstream(source, self, limit.clock, deadlines=False)
        self._tokens = limit.burst
        self._stamp: float | None = None
        self._held: _T | object = MISSING
        self.dropped = 0
        """Items discarded (``"drop"``, or a callable that returned None)."""
        self.exceeded = 0
        """Items that found the bucket short, whatever ``on_exceed`` did with them."""

    async def _next(self) -> _T:
        limit = self._limit
        clock = limit.clock
        per_message = limit.unit == "messages"
        while True:
            held = self._held
            if held is MISSING:
                held = self._held = await self._upstream.pull()
            cost = 1.0 if per_message else float(message_size(held))
            now = clock.now()
            tokens = self._tokens
            if self._stamp is not None:
                tokens = min(limit.burst, tokens + (now - self._stamp) * limit.rate)
            self._stamp = now
            self._tokens = tokens
            if tokens + _EPSILON >= cost:
                self._tokens = tokens - cost
                self._held = MISSING
                return cast(_T, held)
            if limit.on_exceed == "delay":
                need = min(cost, limit.burst)
                if tokens + _EPSILON >= need:  # an item above burst: a full bucket pays it
                    self._tokens = tokens - cost
                    self._held = MISSING
                    return cast(_T, held)
                # Stopped here, the item stays held: the next pull goes on waiting for it.
                await clock.sleep_until(clock.now() + (need - tokens) / limit.rate)
                continue
            self._held = MISSING
            self.exceeded += 1
            if limit.on_exceed == "close":
                raise RateLimitExceeded(limit.rate, limit.burst, limit.unit)
            if limit.on_exceed == "drop":
                self.dropped += 1
                continue
            result = limit.on_exceed(held)
            if inspect.isawaitable(result):
                result = await result
            if result is None:
                self.dropped += 1
                continue
            return cast(_T, result)

    async def _close_source(self) -> None:
        await self._upstream.aclose()


class RateLimit(Operator):
    """The operator :func:`rate_limit` returns."""

    __slots__ = ("burst", "clock", "on_exceed", "rate", "unit")

    def __init__(
        self,
        rate: float,
        burst: float,
        on_exceed: OnExceed,
        unit: Literal["messages", "bytes"],
        clock: Clock,
    ) -> None:
        self.rate = check_positive("rate", rate)
        self.burst = check_positive("burst", burst)
        if unit not in ("messages", "bytes"):
            raise ValueError(f"unit must be 'messages' or 'bytes', not {unit!r}")
        if not callable(on_exceed) and on_exceed not in ("close", "drop", "delay"):
            raise ValueError(
                f"on_exceed must be 'close', 'drop', 'delay' or a callable, not {on_exceed!r}"
            )
        if unit == "messages" and self.burst < 1:
            raise ValueError(f"burst must be >= 1 message, not {burst!r}")
        self.on_exceed = on_exceed
        self.unit = unit
        self.clock = clock

    def __call__(self, source: AsyncIterable[_T]) -> RateLimitStage[_T]:
        """Apply the operator: the same as ``source | operator``."""
        return self._apply(source)

    def __ror__(self, source: AsyncIterable[_T]) -> RateLimitStage[_T]:
        return self._apply(source)

    def _apply(self, source: AsyncIterable[_T]) -> RateLimitStage[_T]:
        return RateLimitStage(source, self)

    def __repr__(self) -> str:
        return (
            f"rate_limit({self.rate:g}, {self.burst:g}, on_exceed={self.on_exceed!r}, "
            f"unit={self.unit!r})"
        )


def rate_limit(
    rate: float,
    burst: float | None = None,
    on_exceed: OnExceed = "close",
    *,
    unit: Literal["messages", "bytes"] = "messages",
    clock: Clock = SYSTEM_CLOCK,
) -> RateLimit:
    """Limit a stream with a token bucket: ``rate`` per second, bursts of ``burst``.

    ::

        @app.websocket("/chat")
        def chat(socket: WebSocket):
            return socket | ops.rate_limit(5, burst=10)   # a flood closes with 1008

    Args:
        rate: tokens added per second (messages, or bytes with ``unit="bytes"``).
        burst: the bucket size, which is also the bucket's content at the start;
            ``max(rate, 1)`` when omitted.
        on_exceed: ``"close"`` (raise :class:`RateLimitExceeded`), ``"drop"``, ``"delay"``,
            or a callable ``f(item)`` (sync or async) returning a replacement or None.
        unit: what a token is: one message, or one byte of payload.
        clock: where time comes from (tests pass a :class:`ManualClock`).

    Raises:
        ValueError: a rate or burst that is not a positive finite number, a burst below one
            message, an unknown ``on_exceed`` or ``unit``.
    """
    return RateLimit(rate, max(rate, 1.0) if burst is None else burst, on_exceed, unit, clock)
