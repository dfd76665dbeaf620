r"""The Redis broker: pub/sub and presence across worker processes and hosts (asyncio only).

Install the extra from a spikard checkout: ``pip install -e ".[redis]"`` (redis-py; the
``spikard`` package on PyPI is an unrelated project). redis-py's client is built
on asyncio, so this broker runs on the asyncio backend only; starting it on trio raises a
``RuntimeError`` that says so (use the in-memory broker there).

Theory of operation
-------------------
**Connections.** A process holds *one* subscriber connection, whatever the number of
subscriptions, plus a small bounded pool (``max_connections``) for ``PUBLISH`` and the
presence commands. Channel ``C`` is the Redis channel ``prefix + C``. The subscriber
connection is SUBSCRIBEd to a channel while at least one local subscription needs it
(``_watch`` on the first, ``_unwatch`` after the last), and entering ``subscribe`` waits
until Redis confirmed it, so a message published after that is delivered. Redis answers
SUBSCRIBE and UNSUBSCRIBE in order, one reply per channel, so the broker counts per channel
the commands sent and not yet answered (:class:`_Confirmations`): a channel is confirmed
once its latest command was SUBSCRIBE and every command sent for it has been answered. A
late reply to an earlier SUBSCRIBE (of a subscription that left before it arrived) thus
never confirms a newer one.

**Reader.** One background task reads the subscriber connection and hands every message to
the local fan-out (:mod:`spikard.pubsub.subscription`), which applies each subscription's
backlog policy. ``drop_oldest`` and ``disconnect`` never make the reader wait. ``block``
does: a stalled ``block`` subscriber stalls delivery to the whole process, and Redis then
buffers for this connection until its ``client-output-buffer-limit pubsub`` cuts it off,
after which the broker reconnects and the messages in between are lost. Use ``block`` only
for trusted in-process consumers.

**Health and reconnection.** When the connection is idle for ``health_check_interval``
seconds the reader sends ``PING``; no answer within another interval counts as a lost
connection, like a reset or EOF. The reader then reconnects with exponential backoff
(``reconnect_delay`` doubling up to ``max_reconnect_delay``, each delay scaled by a random
factor between 0.5 and 1 so that many workers do not reconnect in lockstep), for as long as
the broker runs, and re-subscribes every channel that has local subscribers in the same
step. Subscriptions stay open through an outage; messages published while the connection
is down are not delivered to this process (Redis pub/sub is at-most-once). ``publish`` and
presence calls raise :class:`~spikard.pubsub.errors.BrokerUnavailable` while Redis is down.

**Messages.** See :mod:`spikard.pubsub._codec`: text stays text, binary stays binary.

**Presence.** Room ``R`` is the hash ``prefix + "presence:" + R``: member id ->
``node_id + "\n" + json(info)``. Every broker instance (every process) has a random
``node_id`` and keeps the key ``prefix + "node:" + node_id`` alive with a TTL of
``presence_ttl`` seconds, renewed every ``presence_ttl / 3`` seconds by a heartbeat task.
The same heartbeat rewrites this process's members (one pipelined round trip), which
repairs whatever an outage, a Redis restart or an expired key removed, and retries leaves
that failed during an outage. ``members`` runs a small Lua script that returns the
entries whose node key exists and deletes the others, atomically. So a crashed process's
members disappear at most ``presence_ttl`` seconds after its last heartbeat; a cleanly
closed broker removes its members at once. An entry that is not in this encoding (written
by another program: no node id, invalid UTF-8 or JSON) is never returned as a member:
``members`` skips it and logs its field (never its value) at WARNING; the script does not
delete a value without a node id, since spikard did not write it. Presence is eventually
consistent: see ``docs/pubsub.md``. All brokers sharing a Redis must use the same
``prefix`` and ``presence_ttl``; the script reads keys it is not given, so this targets a
standalone Redis (or one primary), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import anyio

from ..messages import WebSocketMessage
from . import _codec
from .base import Broker, JSONValue, dump_info
from .errors import BrokerUnavailable

try:
    from redis.asyncio import Redis
    from redis.asyncio.connection import AbstractConnection, BlockingConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the Redis broker needs redis-py: pip install 'redis>=5.0.2' "
        "(or pip install -e '.[redis]' in a spikard checkout)"
    ) from exc

__all__ = ["RedisBroker"]

logger = logging.getLogger("spikard.pubsub")

_REDIS_ERRORS: Final = (RedisError, OSError)
"""What a Redis call raises when Redis is unreachable, slow or refuses (TimeoutError is an
OSError, and redis-py's own errors derive from RedisError)."""

_SUBSCRIBE_BATCH: Final = 512
"""Channels per SUBSCRIBE command when re-subscribing after a reconnect."""

_DISCONNECT_TIMEOUT: Final = 1.0

# KEYS[1]: the room hash; ARGV[1]: the node-key prefix. Returns [member, value, ...] of the
# members whose node is alive and deletes the others, in one atomic step. A value without a
# newline has no node: spikard did not write it, so it is returned as is (for the caller to
# skip and log), never deleted.
_MEMBERS_SCRIPT: Final = """
local entries = redis.call('HGETALL', KEYS[1])
local alive = {}
local live = {}
for i = 1, #entries, 2 do
  local value = entries[i + 1]
  local cut = string.find(value, '\\n', 1, true)
  local keep = true
  if cut then
    local node = string.sub(value, 1, cut - 1)
    if alive[node] == nil then
      alive[node] = redis.call('EXISTS', ARGV[1] .. node) == 1
    end
    keep = alive[node]
  end
  if keep then
    live[#live + 1] = entries[i]
    live[#live + 1] = value
  else
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
return live
"""

_MAX_LOGGED_FIELDS: Final = 10
"""How many fields of foreign presence entries one warning names at most."""


def _redacted(url: str) -> str:
    """``url`` without its password, for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{netloc}"
    return urlunsplit(parts._replace(netloc=netloc))


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, not {value!r}")
    return float(value)


async def _disconnect(connection: AbstractConnection) -> None:
    """Close ``connection`` even when the caller is being cancelled; bounded, never raises."""
    with anyio.move_on_after(_DISCONNECT_TIMEOUT, shield=True):
        try:
            await connection.disconnect()
        except Exception:  # a broken socket may fail to close cleanly; it is gone anyway
            logger.debug("error while closing a Redis connection", exc_info=True)


class _Confirmations:
    """Which channels Redis confirmed on the current subscriber connection.

    Redis answers SUBSCRIBE and UNSUBSCRIBE in the order it received them, with one reply per
    channel, so counting the commands sent and the replies received per channel is exact:
    a channel is confirmed when its latest command was SUBSCRIBE and every command sent for
    it has been answered. The counts belong to one connection: reset them when it changes.
    """

    def __init__(self) -> None:
        # channel -> commands sent and not answered yet; never 0 (the entry is removed).
        self._unanswered: dict[str, int] = {}
        # The channels whose latest command sent was SUBSCRIBE.
        self._subscribed: set[str] = set()

    def reset(self) -> None:
        """Forget everything: a new connection has been subscribed to nothing yet."""
        self._unanswered.clear()
        self._subscribed.clear()

    def sent(self, channels: Iterable[str], *, subscribe: bool) -> None:
        """Record a SUBSCRIBE (or UNSUBSCRIBE) of ``channels``; call it before sending."""
        for channel in channels:
            self._unanswered[channel] = self._unanswered.get(channel, 0) + 1
            if subscribe:
                self._subscribed.add(channel)
            else:
                self._subscribed.discard(channel)

    def answered(self, channel: str) -> None:
        """Record one reply (``subscribe`` or ``unsubscribe``) for ``channel``."""
        count = self._unanswered.get(channel)
        if count is None:  # no command of ours is waiting for it: not an answer to us
            logger.debug("unexpected subscription reply for channel %r", channel)
        elif count > 1:
            self._unanswered[channel] = count - 1
        else:
            del self._unanswered[channel]

    def confirmed(self, channel: str) -> bool:
        """True when Redis answered the latest command for ``channel`` and it was SUBSCRIBE."""
        return channel in self._subscribed and channel not in self._unanswered


class RedisBroker(Broker):
    """Pub/sub and presence through Redis, for several processes or hosts.

    ::

        async with RedisBroker("redis://127.0.0.1:6379/0") as broker:
            async with broker.subscribe("room:lobby") as subscription:
                await broker.publish("room:lobby", "hello")   # reaches every process

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` (``rediss://`` for TLS,
            ``unix:///path/to/socket`` for a Unix socket).
        prefix: prepended to every channel and key, so several applications can share
            a Redis; every broker of one application must use the same prefix.
        presence_ttl: seconds after its last heartbeat that a vanished process's members
            expire; heartbeats run every ``presence_ttl / 3`` seconds.
        timeout: seconds allowed for connecting, and for each command.
        subscribe_timeout: seconds ``subscribe`` waits for Redis to confirm a new channel
            (including a reconnect in progress) before it raises BrokerUnavailable.
        reconnect_delay: the first delay before reconnecting after a lost connection.
        max_reconnect_delay: the cap of the doubling reconnect delay.
        health_check_interval: seconds of silence on the subscriber connection after
            which it is probed with PING.
        max_connections: the size of the pool used by publish and presence (callers wait
            for a free connection, up to ``timeout``).

    Raises:
        ImportError: redis-py is not installed.
        ValueError: a non-positive duration or pool size.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "spikard:",
        presence_ttl: float = 30.0,
        timeout: float = 5.0,
        subscribe_timeout: float = 5.0,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
        health_check_interval: float = 15.0,
        max_connections: int = 8,
    ) -> None:
        super().__init__()
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, not {max_connections!r}")
        self.url = url
        self.prefix = prefix
        self.node_id = uuid.uuid4().hex[:16]
        """This broker's identity in Redis (client names, presence entries)."""
        self._presence_ttl = _positive("presence_ttl", presence_ttl)
        self._timeout = _positive("timeout", timeout)
        self._subscribe_timeout = _positive("subscribe_timeout", subscribe_timeout)
        self._reconnect_delay = _positive("reconnect_delay", reconnect_delay)
        self._max_reconnect_delay = max(
            _positive("max_reconnect_delay", max_reconnect_delay), self._reconnect_delay
        )
        self._health_check_interval = _positive("health_check_interval", health_check_interval)
        self._max_connections = max_connections
        self._pool: BlockingConnectionPool | None = None
        self._client: Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # The subscriber connection: replaced on reconnect; commands on it take the lock.
        self._connection: AbstractConnection | None = None
        self._connected = False
        self._lock: anyio.Lock | None = None
        # What Redis confirmed on self._connection; reset whenever the connection changes.
        self._confirmations = _Confirmations()
        self._waiters: dict[str, anyio.Event] = {}
        # Presence held by this process: room -> member id -> hash value.
        self._local: dict[str, dict[str, str]] = {}
        self._pending_leaves: set[tuple[str, str]] = set()
        self.reconnects = 0
        """How many times the subscriber connection was re-established."""

    # ---- introspection ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the subscriber connection is up (False during a reconnect)."""
        return self._connected

    @property
    def subscriber_client_name(self) -> str:
        """The ``CLIENT SETNAME`` of this broker's subscriber connection."""
        return f"spikard-{self.node_id}-sub"

    @property
    def publisher_client_name(self) -> str:
        """The ``CLIENT SETNAME`` of this broker's pooled connections."""
        return f"spikard-{self.node_id}-pub"

    def _room_key(self, room: str) -> str:
        return f"{self.prefix}presence:{room}"

    @property
    def _node_key(self) -> str:
        return f"{self.prefix}node:{self.node_id}"

    def _redis(self) -> Redis:
        assert self._client is not None
        return self._client

    def _unavailable(self, action: str, error: BaseException) -> BrokerUnavailable:
        return BrokerUnavailable(f"cannot {action}: Redis at {_redacted(self.url)}: {error}")

    # ---- lifecycle -------------------------------------------------------------------------

    async def _open(self) -> None:
        self._confirmations.reset()
        self._waiters = {}
        self._local = {}
        self._pending_leaves = set()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "the Redis broker runs on asyncio only (redis-py's client is asyncio-based); "
                "run the app with backend='asyncio', or use the in-memory broker on trio"
            ) from None
        self._lock = anyio.Lock()
        self._pool = BlockingConnectionPool.from_url(
            self.url,
            max_connections=self._max_connections,
            timeout=self._timeout,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            client_name=self.publisher_client_name,
            protocol=2,
            retry=Retry(NoBackoff(), 1),  # one immediate retry: replaces a stale pooled socket
        )
        self._client = Redis(connection_pool=self._pool)
        connection: AbstractConnection | None = None
        try:
            with anyio.fail_after(self._timeout):
                await _execute(self._client, "PING")
                connection = await self._connect_subscriber()
                await self._heartbeat()
        except _REDIS_ERRORS as exc:
            if connection is not None:
                await _disconnect(connection)
            await self._close_pool()
            raise BrokerUnavailable(
                f"cannot reach Redis at {_redacted(self.url)}: {exc or type(exc).__name__}"
            ) from exc
        # Plain asyncio tasks (this broker is asyncio-only anyway): start() and aclose() may
        # then be called from anywhere, in any order relative to other brokers and scopes.
        self._tasks = [
            asyncio.create_task(self._run_subscriber(connection), name="spikard-redis-reader"),
            asyncio.create_task(self._run_heartbeat(), name="spikard-redis-heartbeat"),
        ]

    async def _close(self) -> None:
        for waiter in self._waiters.values():  # subscriptions waiting for a confirmation
            waiter.set()
        self._waiters.clear()
        with anyio.move_on_after(self._timeout, shield=True):
            try:
                await self._leave_everything()
            except _REDIS_ERRORS:
                logger.debug("could not remove presence while closing", exc_info=True)
        with anyio.CancelScope(shield=True):
            tasks, self._tasks = self._tasks, []
            for task in tasks:
                task.cancel()
            if tasks:
                # The tasks' cleanup is bounded, so this wait is too.
                await asyncio.wait(tasks, timeout=self._timeout + _DISCONNECT_TIMEOUT)
            if self._connection is not None:
                await _disconnect(self._connection)
                self._connection = None
            self._connected = False
            await self._close_pool()

    async def _close_pool(self) -> None:
        with anyio.move_on_after(_DISCONNECT_TIMEOUT, shield=True):
            try:
                if self._client is not None:
                    await self._client.aclose()
                if self._pool is not None:
                    await self._pool.disconnect()
            except Exception:
                logger.debug("error while closing the Redis pool", exc_info=True)

    # ---- subscriber connection -------------------------------------------------------------

    async def _connect_subscriber(self) -> AbstractConnection:
        """Open a subscriber connection and subscribe every channel with local subscribers."""
        assert self._pool is not None
        assert self._lock is not None
        options = dict(self._pool.connection_kwargs)
        options["client_name"] = self.subscriber_client_name
        options["retry"] = Retry(NoBackoff(), 0)
        connection: AbstractConnection = self._pool.connection_class(**options)
        try:
            await connection.connect()  # type: ignore[no-untyped-call]
            async with self._lock:
                # Under the lock, so no _watch or _unwatch interleaves: the counts describe
                # exactly the commands sent on this connection.
                self._confirmations.reset()
                channels = self._fanout.channels()
                self._confirmations.sent(channels, subscribe=True)
                for start in range(0, len(channels), _SUBSCRIBE_BATCH):
                    batch = channels[start : start + _SUBSCRIBE_BATCH]
                    await connection.send_command(
                        "SUBSCRIBE", *(self.prefix + channel for channel in batch)
                    )
                self._connection = connection
                self._connected = True
        except BaseException:
            await _disconnect(connection)
            raise
        return connection

    async def _run_subscriber(self, connection: AbstractConnection) -> None:
        """Read the subscriber connection for the broker's lifetime, reconnecting as needed."""
        while True:  # ends when aclose() cancels the task group
            try:
                await self._read(connection)
            except _REDIS_ERRORS as exc:
                logger.warning(
                    "lost the Redis subscriber connection to %s (%s); reconnecting",
                    _redacted(self.url),
                    exc or type(exc).__name__,
                )
            except Exception:
                logger.exception("unexpected error reading from Redis; reconnecting")
            finally:
                self._connected = False
                self._confirmations.reset()  # nothing is confirmed until the reconnect
                if self._connection is connection:
                    self._connection = None
                await _disconnect(connection)
            connection = await self._reconnect()

    async def _read(self, connection: AbstractConnection) -> None:
        probing = False
        while True:
            response = await connection.read_response(timeout=self._health_check_interval)
            if response is None:  # nothing for a whole interval
                if probing:
                    raise RedisConnectionError("no answer to PING")
                assert self._lock is not None
                async with self._lock:
                    await connection.send_command("PING")
                probing = True
                continue
            probing = False
            await self._dispatch(response)

    async def _dispatch(self, response: object) -> None:
        if not isinstance(response, list) or len(response) < 2:
            return
        kind = response[0]
        channel = self._local_channel(response[1])
        if channel is None:
            return
        if kind == b"message" and len(response) == 3 and isinstance(response[2], bytes):
            try:
                message = _codec.decode(response[2])
            except ValueError:
                logger.warning("dropped a malformed message on channel %r", channel)
                return
            await self._fanout.deliver(channel, message)
        elif kind in (b"subscribe", b"unsubscribe"):
            self._confirmations.answered(channel)
            # Waiters re-check whether their channel is confirmed; waking them on every
            # reply also drops the event of a channel whose subscription left meanwhile.
            waiter = self._waiters.pop(channel, None)
            if waiter is not None:
                waiter.set()

    def _local_channel(self, raw: object) -> str | None:
        if not isinstance(raw, bytes):
            return None
        try:
            name = raw.decode()
        except UnicodeDecodeError:
            return None
        if not name.startswith(self.prefix):
            return None
        return name[len(self.prefix) :]

    def _backoff(self, attempt: int) -> float:
        delay = min(self._max_reconnect_delay, self._reconnect_delay * 2.0 ** min(attempt, 30))
        return delay * random.uniform(0.5, 1.0)

    async def _reconnect(self) -> AbstractConnection:
        attempt = 0
        while True:  # bounded by the broker's lifetime; every attempt is bounded by timeout
            await anyio.sleep(self._backoff(attempt))
            try:
                with anyio.fail_after(self._timeout):
                    connection = await self._connect_subscriber()
            except _REDIS_ERRORS as exc:
                attempt += 1
                log = logger.warning if attempt % 10 == 0 else logger.debug
                log("reconnecting to Redis: attempt %d failed (%s)", attempt, exc)
                continue
            self.reconnects += 1
            logger.warning(
                "reconnected to Redis at %s after %d failed attempts; %d channels re-subscribed",
                _redacted(self.url),
                attempt,
                len(self._fanout.channels()),
            )
            return connection

    async def _watch(self, channels: tuple[str, ...], new_channels: list[str]) -> None:
        assert self._lock is not None
        if new_channels:
            async with self._lock:
                if self._connected and self._connection is not None:
                    # Counted before sending: the reply may be read before send_command returns.
                    self._confirmations.sent(new_channels, subscribe=True)
                    try:
                        await self._connection.send_command(
                            "SUBSCRIBE", *(self.prefix + channel for channel in new_channels)
                        )
                    except _REDIS_ERRORS:
                        pass  # the reader notices; the reconnect subscribes every channel
        confirmed = self._confirmations.confirmed
        pending = [channel for channel in channels if not confirmed(channel)]
        if not pending:
            return
        try:
            with anyio.fail_after(self._subscribe_timeout):
                for channel in pending:
                    while not confirmed(channel):
                        if self._state != "running":
                            raise BrokerUnavailable(f"{self!r} is closed")
                        waiter = self._waiters.get(channel)
                        if waiter is None:
                            waiter = self._waiters[channel] = anyio.Event()
                        await waiter.wait()
        except TimeoutError:
            raise BrokerUnavailable(
                f"Redis at {_redacted(self.url)} did not confirm the subscription to "
                f"{pending!r} within {self._subscribe_timeout} s"
            ) from None

    async def _unwatch(self, channels: list[str]) -> None:
        assert self._lock is not None
        async with self._lock:
            # A channel may have gained a subscriber while this call waited for the lock.
            gone = [channel for channel in channels if not self._fanout.has_subscribers(channel)]
            if gone and self._connected and self._connection is not None:
                # Until Redis answers this UNSUBSCRIBE (and any SUBSCRIBE sent later), a
                # reply to an earlier SUBSCRIBE cannot confirm these channels again.
                self._confirmations.sent(gone, subscribe=False)
                try:
                    await self._connection.send_command(
                        "UNSUBSCRIBE", *(self.prefix + channel for channel in gone)
                    )
                except _REDIS_ERRORS:
                    pass  # a new connection will not subscribe it

    # ---- publish ---------------------------------------------------------------------------

    async def _publish(self, channel: str, message: WebSocketMessage) -> int:
        try:
            receivers = await _execute(
                self._redis(), "PUBLISH", self.prefix + channel, _codec.encode(message)
            )
        except _REDIS_ERRORS as exc:
            raise self._unavailable("publish", exc) from exc
        return int(receivers)

    # ---- presence --------------------------------------------------------------------------

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self._presence_ttl * 1000))

    async def _run_heartbeat(self) -> None:
        while True:  # ends when aclose() cancels the task group
            await anyio.sleep(self._presence_ttl / 3)
            try:
                with anyio.fail_after(self._timeout):
                    await self._heartbeat()
            except _REDIS_ERRORS as exc:
                logger.debug("presence heartbeat failed: %s", exc)
            except Exception:
                logger.exception("presence heartbeat failed")

    async def _heartbeat(self) -> None:
        """Renew this node's key and rewrite its members; retry failed leaves."""
        pipeline = self._redis().pipeline(transaction=False)
        pipeline.execute_command("SET", self._node_key, b"1", "PX", self._ttl_ms)
        for room, members in self._local.items():
            key = self._room_key(room)
            pipeline.execute_command("HSET", key, *_flatten(members))
            pipeline.execute_command("PEXPIRE", key, self._ttl_ms)
        leaves = list(self._pending_leaves)
        for room, member_id in leaves:
            pipeline.execute_command("HDEL", self._room_key(room), member_id)
        await pipeline.execute()
        self._pending_leaves.difference_update(leaves)

    async def _join(self, room: str, member_id: str, info: JSONValue) -> None:
        value = f"{self.node_id}\n{dump_info(info)}"
        key = self._room_key(room)
        pipeline = self._redis().pipeline(transaction=False)
        pipeline.execute_command("SET", self._node_key, b"1", "PX", self._ttl_ms)
        pipeline.execute_command("HSET", key, member_id, value)
        pipeline.execute_command("PEXPIRE", key, self._ttl_ms)
        try:
            await pipeline.execute()
        except _REDIS_ERRORS as exc:
            raise self._unavailable("join", exc) from exc
        self._local.setdefault(room, {})[member_id] = value
        self._pending_leaves.discard((room, member_id))

    async def _leave(self, room: str, member_id: str) -> None:
        members = self._local.get(room)
        if members is not None:
            members.pop(member_id, None)
            if not members:
                del self._local[room]
        try:
            await _execute(self._redis(), "HDEL", self._room_key(room), member_id)
        except _REDIS_ERRORS:
            # Retried by the heartbeat; until then the entry stays (this node is alive).
            self._pending_leaves.add((room, member_id))

    async def _members(self, room: str) -> dict[str, Any]:
        try:
            flat = await _execute(
                self._redis(),
                "EVAL",
                _MEMBERS_SCRIPT,
                1,
                self._room_key(room),
                f"{self.prefix}node:",
            )
        except _REDIS_ERRORS as exc:
            raise self._unavailable("read presence", exc) from exc
        members: dict[str, Any] = {}
        foreign: list[bytes] = []
        for index in range(0, len(flat) - 1, 2):
            field = bytes(flat[index])
            try:
                _, newline, info = bytes(flat[index + 1]).decode().partition("\n")
                if not newline:
                    raise ValueError("no node id")
                members[field.decode()] = json.loads(info)
            except (ValueError, RecursionError):  # UnicodeDecodeError, JSONDecodeError too
                foreign.append(field)
        if foreign:
            # One warning per call; the values are never logged (they may be sensitive).
            named = ", ".join(_field_name(field) for field in foreign[:_MAX_LOGGED_FIELDS])
            if len(foreign) > _MAX_LOGGED_FIELDS:
                named += f" and {len(foreign) - _MAX_LOGGED_FIELDS} more"
            logger.warning(
                "skipped %d presence entries that spikard did not write in Redis hash %r: "
                "fields %s",
                len(foreign),
                self._room_key(room),
                named,
            )
        return members

    async def _leave_everything(self) -> None:
        pipeline = self._redis().pipeline(transaction=False)
        for room, members in self._local.items():
            pipeline.execute_command("HDEL", self._room_key(room), *members)
        for room, member_id in self._pending_leaves:
            pipeline.execute_command("HDEL", self._room_key(room), member_id)
        pipeline.execute_command("DEL", self._node_key)
        self._local.clear()
        self._pending_leaves.clear()
        await pipeline.execute()

    def __repr__(self) -> str:
        return f"<RedisBroker {_redacted(self.url)} node={self.node_id} {self._state}>"


async def _execute(client: Redis, *args: str | bytes | int) -> Any:
    """Run one command (redis-py leaves ``execute_command`` untyped)."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


def _field_name(field: bytes) -> str:
    """A hash field for a log line: quoted text, or the ``bytes`` repr if not UTF-8."""
    try:
        return repr(field.decode())
    except UnicodeDecodeError:
        return repr(field)


def _flatten(members: dict[str, str]) -> Sequence[str]:
    flat: list[str] = []
    for member_id, value in members.items():
        flat += (member_id, value)
    return flat
