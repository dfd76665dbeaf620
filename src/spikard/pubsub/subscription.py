"""Subscriptions and the local fan-out that feeds them.

Theory of operation
-------------------
Every broker ends in the same place: a message for channel C must reach every subscription
to C in this process. The in-memory broker does that when ``publish`` is called; the Redis
broker does it from the one task that reads the process's Redis subscriber connection.
Both call :meth:`FanOut.deliver`, so the slow-consumer rules live in this file only.

Each subscription owns a :class:`Mailbox`: a ``deque`` bounded by ``max_backlog`` and two
wake-up :class:`anyio.Event` objects (one for the reader, one for blocked writers; an event
is used once and replaced). Only anyio primitives are used, so this works on asyncio and
trio alike. What happens when a message arrives and the backlog is full is the
subscription's *policy*:

``drop_oldest``
    The oldest queued message is discarded (and counted in ``dropped``); delivery never
    waits. A subscriber that stops reading holds at most ``max_backlog`` messages.
``disconnect``
    The subscription fails: its backlog is freed at once and its next read raises
    :class:`~spikard.pubsub.errors.SubscriberTooSlow`. Later messages are ignored for it.
``block``
    Delivery waits until the subscriber has room. :meth:`FanOut.deliver` first hands the
    message to every subscriber that can take it without waiting, and only then waits for
    the full ``block`` ones, one after the other, so a stalled ``block`` subscriber delays
    the publisher (and later messages) but never the delivery of this message to others.

``deliver`` snapshots the subscribers of the channel before it starts, so subscriptions
may come and go while a delivery waits. A mailbox that is closed while a writer waits
wakes that writer, which then gives up on it. Messages of one publisher keep their order
for every subscriber, because a publisher's delivery finishes before its next one starts.

Direct delivery. A subscription's reader may install a synchronous hook
(:meth:`Subscription.deliver_directly`): while the reader waits for a message and the
backlog is empty, :meth:`Mailbox.offer` hands the message to the hook instead of queueing it
and waking the reader; when the hook returns False the message is queued as usual. A
Server-Sent Events stream from a channel uses it to write each message to its connection
from the publisher's task (one task switch per delivery saved). Order is kept: the hook runs
only when every earlier message was already taken by the reader.

Subscriptions are registered and removed only by the broker (``subscribe``'s context
manager and :meth:`Subscription.aclose`); a failed mailbox stays registered but ignores
messages until then.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final, Literal, get_args

import anyio
import anyio.lowlevel

from ..messages import WebSocketMessage
from .errors import SubscriberTooSlow

__all__ = [
    "ChannelMessage",
    "FanOut",
    "Mailbox",
    "SlowConsumerPolicy",
    "Subscription",
    "SubscriptionStatistics",
]

SlowConsumerPolicy = Literal["block", "drop_oldest", "disconnect"]
"""What happens when a message arrives for a subscription whose backlog is full."""

POLICIES: Final = frozenset(get_args(SlowConsumerPolicy))


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """One message received on a subscription, with the channel it was published to."""

    channel: str
    """The channel the message was published to."""
    message: WebSocketMessage
    """The message itself (text stays text, binary stays binary)."""


@dataclass(frozen=True, slots=True)
class SubscriptionStatistics:
    """A snapshot of a subscription's counters (see :meth:`Subscription.statistics`)."""

    backlog: int
    """Messages queued and not yet read."""
    max_backlog: int
    """The bound of :attr:`backlog`."""
    delivered: int
    """Messages accepted into the backlog since the subscription started."""
    dropped: int
    """Messages discarded by the ``drop_oldest`` policy."""


class Mailbox:
    """The bounded queue behind one subscription (internal; see the module docstring)."""

    __slots__ = (
        "_closed",
        "_error",
        "_items",
        "_readable",
        "_writable",
        "channels",
        "delivered",
        "direct",
        "dropped",
        "max_backlog",
        "policy",
    )

    def __init__(
        self, channels: tuple[str, ...], max_backlog: int, policy: SlowConsumerPolicy
    ) -> None:
        self.channels = channels
        self.max_backlog = max_backlog
        self.policy: SlowConsumerPolicy = policy
        self.delivered = 0
        self.dropped = 0
        self._items: deque[ChannelMessage] = deque()
        self._readable: anyio.Event | None = None
        self._writable: anyio.Event | None = None
        self._closed = False
        self._error: SubscriberTooSlow | None = None
        self.direct: Callable[[ChannelMessage], bool] | None = None
        """Tried before queueing while the reader waits (see the module docs)."""

    @property
    def closed(self) -> bool:
        """True once closed by its owner or failed by the ``disconnect`` policy."""
        return self._closed or self._error is not None

    def __len__(self) -> int:
        return len(self._items)

    # ---- writers (the fan-out) -------------------------------------------------------------

    def offer(self, item: ChannelMessage) -> bool | None:
        """Queue ``item`` without waiting, applying the policy when the backlog is full.

        Returns:
            True when queued, False when refused (closed, failed, or failed just now by
            ``disconnect``), None when the policy is ``block`` and the backlog is full.
        """
        if self.closed:
            return False
        direct = self.direct
        if direct is not None and self._readable is not None and not self._items and direct(item):
            self.delivered += 1
            return True
        if len(self._items) >= self.max_backlog:
            if self.policy == "block":
                return None
            if self.policy == "disconnect":
                self.fail(SubscriberTooSlow(item.channel, self.max_backlog))
                return False
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self.delivered += 1
        self._wake_reader()
        return True

    async def put(self, item: ChannelMessage) -> bool:
        """Queue ``item``, waiting for room (the ``block`` policy); False if closed first."""
        while True:
            accepted = self.offer(item)
            if accepted is not None:
                return accepted
            if self._writable is None:
                self._writable = anyio.Event()
            await self._writable.wait()

    def close(self) -> None:
        """End the subscription: the reader drains the backlog, then iteration stops."""
        self._closed = True
        self._wake_reader()
        self._wake_writers()

    def fail(self, error: SubscriberTooSlow) -> None:
        """End the subscription with ``error`` now, freeing the backlog."""
        if self.closed:
            return
        self._error = error
        self._items.clear()
        self._wake_reader()
        self._wake_writers()

    # ---- reader (the subscription) -----------------------------------------------------------

    async def get(self) -> ChannelMessage:
        """Wait for the next message.

        Raises:
            SubscriberTooSlow: the ``disconnect`` policy ended the subscription.
            StopAsyncIteration: the subscription or the broker was closed and the backlog
                is drained.
        """
        while True:
            if self._error is not None:
                raise self._error
            if self._items:
                item = self._items.popleft()
                self._wake_writers()
                return item
            if self._closed:
                raise StopAsyncIteration
            if self._readable is None:
                self._readable = anyio.Event()
            await self._readable.wait()

    def _wake_reader(self) -> None:
        if self._readable is not None:
            self._readable.set()
            self._readable = None

    def _wake_writers(self) -> None:
        if self._writable is not None:
            self._writable.set()
            self._writable = None


class FanOut:
    """Channel name -> the mailboxes subscribed to it, in subscription order (internal)."""

    def __init__(self) -> None:
        # dicts used as ordered sets: deterministic delivery order, O(1) removal.
        self._routes: dict[str, dict[Mailbox, None]] = {}

    def add(self, mailbox: Mailbox) -> list[str]:
        """Register ``mailbox``; return the channels that had no subscriber before."""
        new: list[str] = []
        for channel in mailbox.channels:
            subscribers = self._routes.get(channel)
            if subscribers is None:
                subscribers = self._routes[channel] = {}
                new.append(channel)
            subscribers[mailbox] = None
        return new

    def remove(self, mailbox: Mailbox) -> list[str]:
        """Unregister ``mailbox``; return the channels that now have no subscriber."""
        emptied: list[str] = []
        for channel in mailbox.channels:
            subscribers = self._routes.get(channel)
            if subscribers is None or mailbox not in subscribers:
                continue
            del subscribers[mailbox]
            if not subscribers:
                del self._routes[channel]
                emptied.append(channel)
        return emptied

    def has_subscribers(self, channel: str) -> bool:
        """True while at least one local subscription listens to ``channel``."""
        return channel in self._routes

    def channels(self) -> list[str]:
        """Every channel with at least one local subscription."""
        return list(self._routes)

    async def deliver(self, channel: str, message: WebSocketMessage) -> int:
        """Hand ``message`` to every subscriber of ``channel`` under its policy.

        Returns:
            How many subscriptions accepted the message.
        """
        await anyio.lowlevel.checkpoint()  # a publisher in a loop must not starve the others
        subscribers = self._routes.get(channel)
        if not subscribers:
            return 0
        item = ChannelMessage(channel, message)
        accepted = 0
        waiting: list[Mailbox] = []
        for mailbox in list(subscribers):
            outcome = mailbox.offer(item)
            if outcome is None:
                waiting.append(mailbox)
            elif outcome:
                accepted += 1
        for mailbox in waiting:
            if await mailbox.put(item):
                accepted += 1
        return accepted

    def close_all(self) -> None:
        """Close every mailbox (the broker is closing); their readers drain and stop."""
        for subscribers in self._routes.values():
            for mailbox in subscribers:
                mailbox.close()


class Subscription:
    """An async iterator of the :class:`ChannelMessage` objects published to its channels.

    Get one from :meth:`Broker.subscribe <spikard.pubsub.Broker.subscribe>`; it is live
    until that context manager exits (or :meth:`aclose` is called)::

        async with broker.subscribe("room:lobby") as subscription:
            async for event in subscription:
                print(event.channel, event.message)

    Iteration ends when the subscription or the broker is closed, and raises
    :class:`~spikard.pubsub.errors.SubscriberTooSlow` when the ``disconnect`` policy ends it.
    Iterate :meth:`messages` instead to get the bare :class:`~spikard.WebSocketMessage`
    objects, ready to be yielded to a socket.
    """

    def __init__(self, mailbox: Mailbox, release: Callable[[], Awaitable[None]]) -> None:
        self._mailbox = mailbox
        self._release = release

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels this subscription listens to."""
        return self._mailbox.channels

    @property
    def policy(self) -> SlowConsumerPolicy:
        """The slow-consumer policy."""
        return self._mailbox.policy

    @property
    def max_backlog(self) -> int:
        """How many unread messages are kept at most."""
        return self._mailbox.max_backlog

    @property
    def closed(self) -> bool:
        """True once the subscription no longer receives messages."""
        return self._mailbox.closed

    def statistics(self) -> SubscriptionStatistics:
        """Return the current backlog and counters."""
        mailbox = self._mailbox
        return SubscriptionStatistics(
            backlog=len(mailbox),
            max_backlog=mailbox.max_backlog,
            delivered=mailbox.delivered,
            dropped=mailbox.dropped,
        )

    def deliver_directly(self, hook: Callable[[ChannelMessage], bool] | None) -> None:
        """Let ``hook`` take messages synchronously while the reader waits (None: stop).

        For transports: while the reader is waiting and nothing is queued, a message is
        passed to ``hook`` in the publisher's task instead of being queued; True means the
        hook delivered it, False queues it as usual. The hook must not block or raise, and
        it runs only when every earlier message was read, so order is kept.
        """
        self._mailbox.direct = hook

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ChannelMessage:
        return await self._mailbox.get()

    def messages(self) -> AsyncIterator[WebSocketMessage]:
        """Iterate over the messages only, without their channel names.

        ::

            async with broker.subscribe("ticker") as subscription:
                async for message in subscription.messages():
                    yield message            # straight to the socket
        """
        return _Messages(self)

    async def aclose(self) -> None:
        """Stop receiving (idempotent). Queued messages can still be read, then iteration ends."""
        await self._release()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<Subscription {list(self.channels)!r} {state} policy={self.policy!r} "
            f"backlog={len(self._mailbox)}/{self.max_backlog}>"
        )


class _Messages:
    """``Subscription.messages()``: the subscription's messages without channel names."""

    __slots__ = ("_subscription",)
    cancel_safe = True
    """A read cancelled mid-wait loses nothing (``spikard.ops`` needs no reader task)."""

    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> WebSocketMessage:
        return (await self._subscription.__anext__()).message

    async def aclose(self) -> None:
        await self._subscription.aclose()


def check_policy(max_backlog: int, policy: str) -> None:
    """Raise ValueError for a backlog below 1 or an unknown policy."""
    if isinstance(max_backlog, bool) or not isinstance(max_backlog, int) or max_backlog < 1:
        raise ValueError(f"max_backlog must be an int >= 1, not {max_backlog!r}")
    if policy not in POLICIES:
        raise ValueError(
            f"unknown slow-consumer policy {policy!r}: use one of {', '.join(sorted(POLICIES))}"
        )


def unique(channels: Iterable[str]) -> tuple[str, ...]:
    """``channels`` without duplicates, in order."""
    return tuple(dict.fromkeys(channels))
