"""Errors the operators raise to end a stream; each knows the close code it maps to.

::

    SpikardError
    └── StreamLimitExceeded (close_code 1008)   a stream broke a limit an operator enforces
        ├── RateLimitExceeded                    ... rate_limit(on_exceed="close")
        └── IdleTimeout                          ... timeout(idle, on_timeout="close")

A stream handler that lets one escape is closed by the session with ``close_code`` and
``str(error)`` as the reason, as for :class:`~spikard.SubscriberTooSlow`.
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import SpikardError
from ..messages import CloseCode

__all__ = ["IdleTimeout", "RateLimitExceeded", "StreamLimitExceeded"]


class StreamLimitExceeded(SpikardError):
    """Base class of the limits the operators enforce.

    Attributes:
        close_code: the WebSocket close code the session closes with (1008, policy
            violation); ``str(error)`` is the close reason, kept short.
    """

    close_code: ClassVar[int] = CloseCode.POLICY_VIOLATION


class RateLimitExceeded(StreamLimitExceeded):
    """A stream sent faster than ``rate_limit(..., on_exceed="close")`` allows.

    Attributes:
        rate: the sustained rate allowed, per second.
        burst: the bucket size.
        unit: ``"messages"`` or ``"bytes"``.
    """

    def __init__(self, rate: float, burst: float, unit: str) -> None:
        self.rate = rate
        self.burst = burst
        self.unit = unit
        super().__init__(f"rate limit exceeded ({rate:g} {unit}/s, burst {burst:g})")


class IdleTimeout(StreamLimitExceeded):
    """A stream stayed silent longer than ``timeout(idle, on_timeout="close")`` allows.

    Attributes:
        idle: the silence allowed, in seconds.
    """

    def __init__(self, idle: float) -> None:
        self.idle = idle
        super().__init__(f"idle for {idle:g} s")
