"""Errors of the pub/sub layer; each one knows the WebSocket close code it maps to.

::

    SpikardError
    └── BrokerError (close_code 1011)             something went wrong in the broker
        ├── BrokerUnavailable (close_code 1013)   the backend (Redis) cannot be reached, or the
        │                                         broker was closed: try again later
        └── SubscriberTooSlow (close_code 1008)   a ``disconnect``-policy subscription fell
                                                  ``max_backlog`` messages behind

A stream handler that lets one of these escape can be closed with ``error.close_code``.
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import SpikardError
from ..messages import CloseCode

__all__ = ["BrokerError", "BrokerUnavailable", "SubscriberTooSlow"]


class BrokerError(SpikardError):
    """Base class of the pub/sub errors.

    Attributes:
        close_code: the WebSocket close code a handler should answer with when this error
            ends its session.
    """

    close_code: ClassVar[int] = CloseCode.INTERNAL_ERROR


class BrokerUnavailable(BrokerError):
    """The broker cannot serve the request now: its backend is unreachable, or it is closed.

    At startup this means the configuration is wrong or Redis is down; later it means a
    transient outage (the Redis broker reconnects on its own), so the close code is 1013,
    "try again later".
    """

    close_code: ClassVar[int] = CloseCode.TRY_AGAIN_LATER


class SubscriberTooSlow(BrokerError):
    """A subscription with the ``disconnect`` policy had a full backlog when a message came.

    The subscription ends with this error (its backlog is discarded at once); the other
    subscriptions are not affected. A WebSocket handler should close its socket with
    :attr:`close_code` (1008, policy violation).

    Attributes:
        channel: the channel whose message did not fit.
        max_backlog: the backlog size that was exceeded.
    """

    close_code: ClassVar[int] = CloseCode.POLICY_VIOLATION

    def __init__(self, channel: str, max_backlog: int) -> None:
        self.channel = channel
        self.max_backlog = max_backlog
        super().__init__(
            f"subscriber too slow: its backlog of {max_backlog} messages was full when a "
            f"message for {channel!r} arrived (policy 'disconnect')"
        )
