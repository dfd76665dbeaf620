"""Publish/subscribe and presence for spikard: one API, in-memory or Redis.

::

    from spikard.pubsub import ChannelMessage, create_broker, merge

    broker = create_broker("redis://127.0.0.1:6379/0")    # None or "memory://": in-process

    async with broker:
        async with broker.subscribe("room:lobby") as subscription:
            await broker.publish("room:lobby", "hello")
            async for event in subscription:               # ChannelMessage(channel, message)
                ...

See ``docs/pubsub.md`` for the slow-consumer policies, the Redis backend and presence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import MAX_CHANNEL_LENGTH, Broker, JSONValue, validate_channel, validate_member_id
from .errors import BrokerError, BrokerUnavailable, SubscriberTooSlow
from .memory import MemoryBroker
from .merge import Merged, merge
from .subscription import (
    ChannelMessage,
    SlowConsumerPolicy,
    Subscription,
    SubscriptionStatistics,
)

if TYPE_CHECKING:
    from .redis import RedisBroker as RedisBroker

__all__ = [
    "MAX_CHANNEL_LENGTH",
    "Broker",
    "BrokerError",
    "BrokerUnavailable",
    "ChannelMessage",
    "JSONValue",
    "MemoryBroker",
    "Merged",
    "SlowConsumerPolicy",
    "SubscriberTooSlow",
    "Subscription",
    "SubscriptionStatistics",
    "create_broker",
    "merge",
    "validate_channel",
    "validate_member_id",
]

_REDIS_SCHEMES = ("redis", "rediss", "unix")


def create_broker(url: str | None = None, **options: Any) -> Broker:
    """Create a broker from a URL; start it with ``async with broker:``.

    Args:
        url: None or ``"memory://"`` for the in-process :class:`MemoryBroker`;
            ``redis://host:port/db`` (or ``rediss://``, ``unix://``) for :class:`RedisBroker`.
        **options: keyword arguments of the Redis broker (``prefix``, ``presence_ttl``, ...).

    Raises:
        ValueError: the URL's scheme is not supported.
        TypeError: options were given for the in-memory broker.
        ImportError: a Redis URL, but redis-py is not installed (the ``redis`` extra).
    """
    if url is None or url.strip() == "memory://":
        if options:
            raise TypeError(f"the in-memory broker takes no options, got {sorted(options)}")
        return MemoryBroker()
    scheme, separator, _ = url.partition("://")
    if separator and scheme.lower() in _REDIS_SCHEMES:
        from .redis import RedisBroker

        return RedisBroker(url, **options)
    raise ValueError(
        f"unsupported broker URL {url!r}: use None or 'memory://' for the in-memory broker, "
        "or 'redis://host:port/db' for Redis"
    )


def __getattr__(name: str) -> Any:
    # RedisBroker is imported on first use (and left out of __all__), so that spikard and
    # `from spikard.pubsub import *` work without redis-py installed.
    if name == "RedisBroker":
        from .redis import RedisBroker

        return RedisBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
