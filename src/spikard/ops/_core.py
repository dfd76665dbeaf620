"""What every operator is made of: :class:`Stage`, the upstream puller, and the pump.

Theory of operation
-------------------
An operator (``ops.batch(10, 0.05)``) is a recipe; applying it to a source
(``socket | ops.batch(10, 0.05)``) makes a :class:`Stage`, an async iterator that pulls
from its source only when its own consumer asks for the next item.

Timing operators must wait for "the next item, or an instant, whichever comes first". They
do it with a cancel scope that ends the wait at that instant (``Clock.deadline_scope``),
which is safe only when the pull can be stopped without losing an item. How a stage pulls
its source is decided once, when the stage is made (:class:`Upstream`):

``direct``
    The source is *cancel-safe*: a :class:`~spikard.WebSocket`, a pub/sub subscription, an
    object whose class sets ``cancel_safe = True``, or a stage that is (every stage keeps
    what it holds in its own attributes, so a stopped pull loses nothing, and it is
    cancel-safe when its own source is; ``map``/``filter`` with an async function are not).
    Pulls run inside the deadline scope; a batch waits for all its items under one scope.
``pumped``
    Any other async iterable (an async generator above all: cancelling it mid-step would
    finish it), when the stage waits with deadlines: a *pump* task pulls it, one item per
    request, and hands the item over through a one-item slot. The stage waits on the slot,
    which is safe to stop waiting on; the pump asks for the next item only when the stage
    asked, so at most one item is pulled ahead of the consumer.
``plain``
    The same, for a stage that never waits with a deadline (``rate_limit``, ``map``,
    ``filter``): pulled directly, and the stage is then not cancel-safe either.

Stages that run tasks (``buffer``, ``map_concurrent``, and pumps) need an anyio task group,
and structured concurrency asks that it is left in the task and the scope it was entered
in, whatever the way out (a ``break``, an exception, a generator handler closed at a
``yield``). So such a stage runs only when it is *managed*: entered with
``async with stage as items:`` (a handler that returns the pipeline gets that from its
session, which enters :meth:`Stage.stream`), which starts the tasks of the whole pipeline
there and ends them when the block is left; or pulled by a task of another stage (a pump, a
feeder, ``zip``), which opens them in that task and closes the stage when it stops.
Anywhere else it refuses with a ``RuntimeError`` that says how. A managed stage that ends
or fails is released by its manager; one that is not has no tasks and closes its source at
once. Pump and worker tasks never raise: what they catch is handed to the consumer and
raised by its ``async for``.

A pull stopped by a cancel scope (a deadline of the stage downstream, or the caller's
``move_on_after``) loses nothing when the stage is cancel-safe (:attr:`Stage.cancel_safe`),
and the stage goes on; a stage that is not (its source is a plain generator, which the
cancellation finished) ends.

Every stage closes its source (``aclose()``, shielded and bounded) when it ends or is
closed; a :class:`~spikard.WebSocket` has no ``aclose()`` and stays open, its session closes
it.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Final, Generic, TypeVar, cast

import anyio
import anyio.abc
from typing_extensions import Self

from ..pubsub.subscription import Subscription
from ..streams.socket import WebSocket
from ._clock import Clock

__all__ = [
    "TIMEOUT",
    "Operator",
    "Stage",
    "TimedOut",
    "Upstream",
    "close_quietly",
    "is_cancel_safe",
]

logger = logging.getLogger("spikard.ops")

_T = TypeVar("_T")

CLOSE_TIMEOUT: Final = 2.0
"""Seconds a source's ``aclose()`` may take when a stage ends."""


class TimedOut(enum.Enum):
    """The type of :data:`TIMEOUT`."""

    TIMEOUT = "TIMEOUT"


TIMEOUT: Final = TimedOut.TIMEOUT
"""What a pull returns when its deadline came first (internal)."""


class _Missing:
    __slots__ = ()


MISSING: Final = _Missing()
"""No item held."""


def is_cancel_safe(source: object) -> bool:
    """True when ``source.__anext__`` may be cancelled without losing an item."""
    if isinstance(source, (WebSocket, Subscription)):
        return True
    if isinstance(source, Stage):
        return source.cancel_safe
    return getattr(type(source), "cancel_safe", False) is True


async def close_quietly(iterator: object) -> None:
    """Call ``iterator.aclose()`` if it has one: shielded, bounded, errors logged.

    A stage is closed as it is: its task group must be left in the scope it was entered in,
    not in a new one, and its own sources are closed shielded and bounded.
    """
    if isinstance(iterator, Stage):
        await iterator.aclose()
        return
    aclose: Callable[[], Awaitable[object]] | None = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    with anyio.move_on_after(CLOSE_TIMEOUT, shield=True) as scope:
        try:
            await aclose()
        except Exception:
            logger.exception("closing the source of a stream operator failed")
    if scope.cancelled_caught:
        logger.warning("closing a stream operator's source took over %s s; gave up", CLOSE_TIMEOUT)


def manage_in_this_task(source: object) -> None:
    """Mark a stage that a task iterates and closes (a pump, a feeder) as managed."""
    if isinstance(source, Stage):
        source.manage()


class Stage(AsyncIterator[_T]):
    """An operator applied to a source: an async iterator that closes its source.

    Iterate it (or return it from a handler); :meth:`aclose` ends it early, closing its
    source and stopping its tasks. Compose further with ``stage | operator``.
    """

    _cancel_safe_itself: bool = True
    """False when a stopped :meth:`_next` may lose an item whatever the source does."""

    def __init__(self) -> None:
        self._task_group: anyio.abc.TaskGroup | None = None
        self._closed = False
        self._ended = False
        """Ended, failed or closed: later pulls end at once."""
        self._managed = False
        self._host: int | None = None
        """The task that started this stage's tasks (the only one that may stop them)."""
        self._source_link: Upstream[Any] | None = None

    # ---- the consumer's side ------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        """Iterate inside ``async with``: the tasks start now, leaving the block ends them."""
        self.manage()
        await self._prepare()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def stream(self) -> Self:
        """Return the stage as its own context manager (what a WebSocket session enters)."""
        return self

    def manage(self) -> None:
        """Record that whoever iterates this stage also closes it (see the module docs)."""
        self._managed = True
        link = self._source_link
        if link is not None:
            link.manage()

    async def __anext__(self) -> _T:
        if self._ended:
            raise StopAsyncIteration
        try:
            return await self._next()
        except BaseException as exc:
            if self.cancel_safe and isinstance(exc, anyio.get_cancelled_exc_class()):
                raise  # a stopped pull lost nothing: the stage goes on
            self._ended = True
            # A managed stage is released by its manager, where its tasks were started;
            # any other has no tasks, and releases its source now.
            if not self._managed:
                await self.aclose()
            raise

    @property
    def cancel_safe(self) -> bool:
        """True when a pull may be stopped (cancelled) without losing an item."""
        link = self._source_link
        return self._cancel_safe_itself and (link is None or link.cancel_safe)

    async def aclose(self) -> None:
        """End the stage: stop its tasks, then close its source (idempotent).

        Called from another task than the one that started the stage's tasks (``merge``
        closes its sources in its own tasks), it only ends the stage: the tasks are stopped
        where they were started, when that task leaves the ``async with`` block.
        """
        if self._closed:
            return
        if self._task_group is not None and anyio.get_current_task().id != self._host:
            self._ended = True
            return
        self._closed = self._ended = True
        task_group, self._task_group = self._task_group, None
        try:
            if task_group is not None:
                task_group.cancel_scope.cancel()
                await task_group.__aexit__(None, None, None)
        finally:
            await self._close_source()

    # ---- for subclasses -----------------------------------------------------------------

    async def _next(self) -> _T:
        """Return the next item; raise StopAsyncIteration at the end.

        Must keep what it holds in attributes when it is cancelled, so that the next call
        goes on from there (a stage downstream stops it at its deadlines).
        """
        raise NotImplementedError

    async def _close_source(self) -> None:
        """Close the source (called once, after the tasks have stopped)."""

    async def _prepare(self) -> None:
        """Start the tasks this stage (or one upstream) runs, without waiting for an item.

        A stage downstream calls it before its first pull with a deadline, so that no task
        group is opened inside a deadline scope (it would outlive the scope).
        """
        link = self._source_link
        if link is not None:
            await link.prepare()

    async def _start(self, function: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        """Run ``function`` in this stage's task group, opened on first use."""
        if self._closed:
            raise StopAsyncIteration
        task_group = self._task_group
        if task_group is None:
            if not self._managed:
                raise RuntimeError(
                    f"{self!r} runs tasks, so it must be closed by whoever iterates it: "
                    "return the pipeline from the handler, or iterate it inside "
                    "`async with pipeline as items: async for item in items: ...`"
                )
            task_group = anyio.create_task_group()
            await task_group.__aenter__()
            self._task_group = task_group
            self._host = anyio.get_current_task().id
        task_group.start_soon(function, name=name)


class Pump(Generic[_T]):
    """Pulls a source in its own task, only the items asked for, into a small queue.

    The consumer calls :meth:`request` to ask for items (one, or as many as a batch still
    needs), and the pump pulls that many, one after the other, without a task switch
    between items that are ready. Stopping a wait on the queue loses nothing: items are
    taken only by a consumer that is running. What the source raises is raised by
    :meth:`take` in the consumer's task, after the items pulled before it.
    """

    __slots__ = ("_final", "_items", "_ready", "_source", "_started", "_wake", "_wanted")

    def __init__(self, source: AsyncIterable[_T]) -> None:
        self._source = source
        self._items: deque[_T] = deque()
        self._final: BaseException | None = None
        self._wanted = 0
        """Items asked for and not pulled yet."""
        self._wake: anyio.Event | None = None
        self._ready: anyio.Event | None = None
        self._started = False

    @property
    def started(self) -> bool:
        """True once :meth:`run` was scheduled."""
        return self._started

    def mark_started(self) -> None:
        """Record that :meth:`run` was scheduled in some task group."""
        self._started = True

    def request(self, count: int = 1) -> None:
        """Make sure ``count`` items are queued or asked for."""
        missing = count - len(self._items) - self._wanted
        if missing > 0 and self._final is None:
            self._wanted += missing
            wake, self._wake = self._wake, None
            if wake is not None:
                wake.set()

    def withdraw(self) -> None:
        """Cancel the requests not served yet (an item being pulled still arrives)."""
        self._wanted = 0

    def _settle(self) -> None:
        ready, self._ready = self._ready, None
        if ready is not None:
            ready.set()

    async def run(self) -> None:
        """The pump task: pull on request until the source ends or fails; then close it."""
        iterator: AsyncIterator[_T] | None = None
        items = self._items
        try:
            iterator = aiter(self._source)
            manage_in_this_task(iterator)
            while True:
                while not self._wanted:
                    self._wake = anyio.Event()
                    await self._wake.wait()
                try:
                    value = await anext(iterator)
                except StopAsyncIteration:
                    self._final = StopAsyncIteration()
                    return
                items.append(value)
                self._wanted = max(0, self._wanted - 1)
                self._settle()
        except Exception as exc:
            self._final = exc
        finally:
            if self._final is None:
                self._final = StopAsyncIteration()  # cancelled: the stage is closing
            self._settle()
            if iterator is not None:
                await close_quietly(iterator)

    def take(self) -> _T | _Missing:
        """Return the next queued item, or MISSING; raise what ended the source."""
        items = self._items
        if items:
            return items.popleft()
        final = self._final
        if final is not None:
            if isinstance(final, StopAsyncIteration):
                raise StopAsyncIteration
            raise final
        return MISSING

    async def wait(self) -> None:
        """Wait until an item is queued or the source ended."""
        while not self._items and self._final is None:
            if self._ready is None:
                self._ready = anyio.Event()
            await self._ready.wait()


class Upstream(Generic[_T]):
    """How a stage pulls its source (see the module docstring).

    :meth:`pull` waits as long as it takes; :meth:`next` and :meth:`fill` stop at a
    deadline, which a stage made with ``deadlines=False`` never asks for.
    """

    __slots__ = ("_clock", "_iterator", "_mode", "_owner", "_prepared", "_pump", "_source", "pull")

    def __init__(
        self, source: AsyncIterable[_T], owner: Stage[Any], clock: Clock, *, deadlines: bool
    ) -> None:
        self._source = source
        self._owner = owner
        self._clock = clock
        self._pump: Pump[_T] | None = None
        self._iterator: AsyncIterator[_T] | None = None
        self._prepared = False
        owner._source_link = self
        self.pull: Callable[[], Awaitable[_T]]
        """Return the next item, waiting as long as it takes (StopAsyncIteration at the end)."""
        if is_cancel_safe(source):
            self._mode = "direct"
        elif deadlines:
            self._mode = "pumped"
            self._pump = Pump(source)
        else:
            self._mode = "plain"
        if self._mode == "pumped":
            self.pull = self._start_pump
        elif isinstance(source, Stage):
            self.pull = source._next  # not __anext__: a stopped pull must not end it
        else:
            self.pull = self._first_pull

    @property
    def cancel_safe(self) -> bool:
        """True when a pull may be stopped without losing an item."""
        return self._mode != "plain"

    def manage(self) -> None:
        """Pass on to a source stage that it is closed by its consumer (this stage)."""
        source = self._source
        if isinstance(source, Stage):
            source.manage()

    async def _first_pull(self) -> _T:
        iterator = self._iterator = aiter(self._source)
        self.pull = iterator.__anext__
        return await iterator.__anext__()

    async def _start_pump(self) -> _T:
        pump = cast(Pump[_T], self._pump)
        pump.mark_started()
        # Outside any deadline scope: the task group opened here outlives the pull.
        await self._owner._start(pump.run, "spikard.ops pump")
        self.pull = self._pumped
        return await self._pumped()

    async def _pumped(self) -> _T:
        pump = cast(Pump[_T], self._pump)
        value = pump.take()
        if value is MISSING:
            pump.request()
            await pump.wait()
            value = pump.take()
        return cast(_T, value)

    async def prepare(self) -> None:
        """Start what pulling needs (a pump, the tasks of a source stage) once, now."""
        if self._prepared:
            return
        self._prepared = True
        pump = self._pump
        if pump is not None and not pump.started:
            pump.mark_started()
            await self._owner._start(pump.run, "spikard.ops pump")
            self.pull = self._pumped
        elif isinstance(self._source, Stage):
            await self._source._prepare()

    async def next(self, deadline: float | None) -> _T | TimedOut:
        """Return the next item, or TIMEOUT once ``deadline`` passed; StopAsyncIteration."""
        if deadline is None:
            return await self.pull()
        if not self._prepared:
            await self.prepare()
        with self._clock.deadline_scope(deadline):
            return await self.pull()
        return TIMEOUT

    async def fill(self, into: list[_T], limit: int, deadline: float | None) -> bool:
        """Append items to ``into`` until it holds ``limit``; False once ``deadline`` passed.

        One deadline scope covers every pull. Raises what ends the source (items pulled
        before it stay in ``into``).
        """
        if deadline is None:
            while len(into) < limit:
                into.append(await self.pull())
            return True
        if not self._prepared:
            await self.prepare()
        pump = self._pump
        with self._clock.deadline_scope(deadline):
            if pump is None:
                while len(into) < limit:
                    into.append(await self.pull())
                return True
            pump.request(limit - len(into))  # pulled one after the other, no task switches
            try:
                while len(into) < limit:
                    value = pump.take()
                    if value is MISSING:
                        await pump.wait()
                    else:
                        into.append(cast(_T, value))
            finally:
                pump.withdraw()  # nothing more is pulled while the consumer is away
            return True
        return False

    async def aclose(self) -> None:
        """Close the source (a pumped source is closed by its pump, when it stops)."""
        source = self._source
        if self._pump is not None and self._pump.started:
            return
        if isinstance(source, Stage):
            if source._managed and not self._owner._managed:
                return  # entered by the caller: closed where it was entered
            await source.aclose()
        else:
            await close_quietly(self._iterator if self._iterator is not None else source)


class Operator:
    """Base of the operators that keep the item type: ``source | operator`` is a stage.

    ``operator(source)`` is the same as ``source | operator``; a
    :class:`~spikard.WebSocket` calls the operator, any other async iterable gets
    ``__ror__``.
    """

    __slots__ = ()

    def __call__(self, source: AsyncIterable[_T]) -> Stage[_T]:
        return self._apply(source)

    def __ror__(self, source: AsyncIterable[_T]) -> Stage[_T]:
        return self._apply(source)

    def _apply(self, source: AsyncIterable[_T]) -> Stage[_T]:
        raise NotImplementedError


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, or raise ValueError unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not (value >= 0 if allow_zero else value > 0) or value != value or value == float("inf"):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, not {value!r}")
    return float(value)


def check_count(name: str, value: int) -> int:
    """Return ``value``, or raise unless it is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, not {value!r}")
    return value
