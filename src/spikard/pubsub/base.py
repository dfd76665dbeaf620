"""The :class:`Broker` interface shared by the in-memory and the Redis backends.

Theory of operation
-------------------
A broker moves messages between channels and subscriptions, and keeps presence (who is in
a room). The public methods here validate their arguments, check the broker's state and
then call one backend hook each (``_open``, ``_close``, ``_publish``, ``_watch``,
``_unwatch``, ``_join``, ``_leave``, ``_members``), so every backend shares the same
contract and the same error messages.

Delivery inside a process always goes through one :class:`~.subscription.FanOut`; a backend
only decides how a published message reaches the fan-outs (directly in memory, through
Redis across processes). ``_watch`` is called when a channel gets its first local
subscriber and returns once the backend will deliver for it (Redis waits for the
server's confirmation), ``_unwatch`` when its last local subscriber leaves.

Lifecycle: a broker is created, started (``async with broker:`` or ``await
broker.start()``), used, and closed once (``aclose()``). Closing ends every subscription
(after its backlog is read) and wakes publishers blocked on ``block`` subscribers.
"""

from __future__ import annotations

import abc
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Final, Literal, TypeAlias, TypeVar

import anyio
import anyio.lowlevel

from ..messages import WebSocketMessage
from ..typed.encoding import coerce_message
from .errors import BrokerUnavailable
from .subscription import (
    FanOut,
    Mailbox,
    SlowConsumerPolicy,
    Subscription,
    check_policy,
    unique,
)

__all__ = [
    "MAX_CHANNEL_LENGTH",
    "Broker",
    "JSONValue",
    "dump_info",
    "validate_channel",
    "validate_member_id",
]

MAX_CHANNEL_LENGTH: Final = 256
"""The longest channel (or room, or member id) name, in characters."""

JSONValue: TypeAlias = (
    "Mapping[str, JSONValue] | Sequence[JSONValue] | str | int | float | bool | None"
)
"""Anything ``json.dumps`` accepts: the type of presence ``info``."""

_CLEANUP_TIMEOUT: Final = 2.0
"""Seconds a best-effort cleanup (unsubscribe, leave) may take when a block exits."""

_B = TypeVar("_B", bound="Broker")


def _check_name(kind: str, name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be str, not {type(name).__name__}")
    if not name:
        raise ValueError(f"{kind} name must not be empty")
    if len(name) > MAX_CHANNEL_LENGTH:
        raise ValueError(
            f"{kind} name is {len(name)} characters long; the limit is {MAX_CHANNEL_LENGTH}"
        )
    return name


def validate_channel(name: object) -> str:
    """Return ``name`` if it is a valid channel (or room) name.

    A name is 1 to 256 characters with no whitespace and no control characters, so it can
    be logged, put in a URL path segment and used as a Redis key verbatim.

    Raises:
        TypeError: ``name`` is not a ``str``.
        ValueError: ``name`` is empty, too long, or contains whitespace or control characters.
    """
    name = _check_name("channel", name)
    if not name.isprintable() or " " in name:
        bad = next(char for char in name if not char.isprintable() or char == " ")
        raise ValueError(
            f"channel name {name!r} contains {bad!r}: whitespace and control characters "
            "are not allowed"
        )
    return name


def validate_member_id(member_id: object) -> str:
    """Return ``member_id`` if it is a valid presence member id.

    Member ids are 1 to 256 printable characters (spaces allowed, control characters not).

    Raises:
        TypeError: ``member_id`` is not a ``str``.
        ValueError: it is empty, too long, or contains control characters.
    """
    member_id = _check_name("member id", member_id)
    if not member_id.isprintable():
        raise ValueError(f"member id {member_id!r} contains control characters")
    return member_id


def dump_info(info: JSONValue) -> str:
    """Serialize presence ``info`` as compact JSON.

    Raises:
        TypeError: ``info`` is not JSON-serializable (or holds NaN or infinity).
    """
    try:
        return json.dumps(info, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"presence info must be JSON-serializable: {exc}") from None


class Broker(abc.ABC):
    """Publish/subscribe with presence; the base of every backend.

    Use :func:`~spikard.pubsub.create_broker` to get one from a URL. A broker must be
    started before use and closed after::

        async with create_broker("redis://127.0.0.1:6379/0") as broker:
            async with broker.subscribe("room:lobby") as subscription:
                await broker.publish("room:lobby", "hello")
                event = await anext(subscription)
    """

    def __init__(self) -> None:
        self._fanout = FanOut()
        self._state: Literal["new", "running", "closing", "closed"] = "new"

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`aclose`."""
        return self._state == "running"

    async def start(self) -> None:
        """Connect the backend and start its background tasks.

        ``async with broker:`` calls it, and :meth:`aclose` at the end of the block.

        A closed broker may be started again (an app served twice, as tests do); it starts
        with no subscriptions.

        Raises:
            BrokerUnavailable: the backend cannot be reached (Redis down, wrong URL).
            RuntimeError: the broker is running or closing, or the backend cannot run on the
                current event loop.
        """
        if self._state not in ("new", "closed"):
            raise RuntimeError(f"{self!r} is already running")
        if self._state == "closed":
            self._fanout = FanOut()
        await self._open()
        self._state = "running"

    async def aclose(self) -> None:
        """End every subscription, leave every room joined here, disconnect (idempotent)."""
        if self._state in ("closing", "closed"):
            return
        was_running = self._state == "running"
        self._state = "closing"
        self._fanout.close_all()
        try:
            if was_running:
                await self._close()
        finally:
            self._state = "closed"

    async def __aenter__(self: _B) -> _B:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _require_running(self) -> None:
        if self._state == "running":
            return
        if self._state == "new":
            raise RuntimeError(
                f"{self!r} is not started: use `async with broker:` or `await broker.start()`"
            )
        raise BrokerUnavailable(f"{self!r} is closed")

    # ---- publish / subscribe ---------------------------------------------------------------

    async def publish(self, channel: str, message: object) -> int:
        """Send ``message`` to every subscriber of ``channel``.

        ``str`` is sent as a text message and ``bytes`` as a binary one; a dict, a list, a
        msgspec Struct, a pydantic model or a dataclass as JSON text (as a stream handler's
        yield is); subscribers receive a :class:`~spikard.WebSocketMessage`. Publishing to a
        channel nobody listens to is not an error.

        Returns:
            How many receivers took the message. For the in-memory broker: subscriptions.
            For Redis: subscribed broker instances (processes), as counted by the server's
            ``PUBLISH`` reply. 0 means nobody was listening.

        Raises:
            ValueError: invalid channel name.
            TypeError: ``message`` is none of those.
            ValueError: it holds what JSON cannot carry (NaN, infinity).
            BrokerUnavailable: the backend is unreachable, or the broker is closed.
        """
        validate_channel(channel)
        coerced = coerce_message(message)
        self._require_running()
        return await self._publish(channel, coerced)

    def subscribe(
        self,
        *channels: str,
        max_backlog: int = 100,
        policy: SlowConsumerPolicy = "drop_oldest",
    ) -> AbstractAsyncContextManager[Subscription]:
        """Listen to ``channels`` for the duration of an ``async with`` block.

        ::

            async with broker.subscribe("room:lobby", max_backlog=50, policy="disconnect") as s:
                async for event in s:
                    await socket.send(event.message)

        The subscription is in effect when the block is entered: a message published after
        that is delivered (for Redis: once the server confirmed the subscription).

        Args:
            *channels: one or more channel names (duplicates are ignored).
            max_backlog: how many unread messages are kept for this subscriber.
            policy: what to do when a message arrives and the backlog is full:
                ``"drop_oldest"`` (discard the oldest unread message), ``"disconnect"``
                (end the subscription with :class:`SubscriberTooSlow`) or ``"block"``
                (make the publisher wait; on Redis this stalls the process's reader).

        Raises:
            ValueError: no channel, an invalid channel name, ``max_backlog < 1`` or an
                unknown policy (raised by this call, before the block is entered).
            BrokerUnavailable: on entering: the broker is closed, or Redis did not confirm
                the subscription in time.
        """
        if not channels:
            raise ValueError("subscribe() needs at least one channel")
        for channel in channels:
            validate_channel(channel)
        check_policy(max_backlog, policy)
        return self._subscription(unique(channels), max_backlog, policy)

    @asynccontextmanager
    async def _subscription(
        self, channels: tuple[str, ...], max_backlog: int, policy: SlowConsumerPolicy
    ) -> AsyncIterator[Subscription]:
        self._require_running()
        mailbox = Mailbox(channels, max_backlog, policy)

        released = False

        async def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            mailbox.close()
            emptied = self._fanout.remove(mailbox)
            if emptied and self._state == "running":
                with anyio.move_on_after(_CLEANUP_TIMEOUT, shield=True):
                    await self._unwatch(emptied)

        new_channels = self._fanout.add(mailbox)
        subscription = Subscription(mailbox, release)
        try:
            await self._watch(channels, new_channels)
            yield subscription
        finally:
            await release()

    # ---- presence --------------------------------------------------------------------------

    async def join(self, room: str, member_id: str, info: JSONValue = None) -> None:
        """Record ``member_id`` as present in ``room``, with optional JSON ``info``.

        Joining again with the same id replaces its ``info``. Presence is keyed by
        ``member_id`` alone: if one user may be connected several times, give each
        connection its own id (and put the user in ``info``).

        Raises:
            ValueError: invalid room name or member id.
            TypeError: ``info`` is not JSON-serializable.
            BrokerUnavailable: the backend is unreachable, or the broker is closed.
        """
        validate_channel(room)
        validate_member_id(member_id)
        self._require_running()
        await self._join(room, member_id, info)

    async def leave(self, room: str, member_id: str) -> None:
        """Remove ``member_id`` from ``room``; leaving a room one is not in does nothing.

        Raises:
            ValueError: invalid room name or member id.
        """
        validate_channel(room)
        validate_member_id(member_id)
        if self._state != "running":
            return  # a closed broker has already left every room
        await self._leave(room, member_id)

    async def members(self, room: str) -> dict[str, Any]:
        """Return who is in ``room``: member id -> the ``info`` given to :meth:`join`.

        Raises:
            ValueError: invalid room name.
            BrokerUnavailable: the backend is unreachable, or the broker is closed.
        """
        validate_channel(room)
        self._require_running()
        return await self._members(room)

    def presence(
        self, room: str, member_id: str, info: JSONValue = None
    ) -> AbstractAsyncContextManager[None]:
        """Be present in ``room`` for the duration of an ``async with`` block.

        Joins on entry and leaves on exit, even when the block is cancelled (the leave is
        shielded and bounded).

        Raises:
            ValueError: invalid room name or member id (raised by this call).
        """
        validate_channel(room)
        validate_member_id(member_id)
        return self._presence(room, member_id, info)

    @asynccontextmanager
    async def _presence(self, room: str, member_id: str, info: JSONValue) -> AsyncIterator[None]:
        await self.join(room, member_id, info)
        try:
            yield
        finally:
            with anyio.move_on_after(_CLEANUP_TIMEOUT, shield=True):
                await self.leave(room, member_id)

    # ---- backend hooks ---------------------------------------------------------------------

    @abc.abstractmethod
    async def _open(self) -> None:
        """Connect; raise BrokerUnavailable when the backend cannot be reached."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Leave local presence, stop background tasks, disconnect. Must not raise."""

    @abc.abstractmethod
    async def _publish(self, channel: str, message: WebSocketMessage) -> int:
        """Publish a validated message."""

    async def _watch(self, channels: tuple[str, ...], new_channels: list[str]) -> None:
        """Make sure ``channels`` are delivered here; ``new_channels`` had no subscriber."""
        await anyio.lowlevel.checkpoint()

    async def _unwatch(self, channels: list[str]) -> None:
        """``channels`` lost their last local subscriber."""
        await anyio.lowlevel.checkpoint()

    @abc.abstractmethod
    async def _join(self, room: str, member_id: str, info: JSONValue) -> None:
        """Record presence."""

    @abc.abstractmethod
    async def _leave(self, room: str, member_id: str) -> None:
        """Remove presence; must not raise for backend outages."""

    @abc.abstractmethod
    async def _members(self, room: str) -> dict[str, Any]:
        """Read presence."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._state}>"
