"""``merge``: read several async iterables as one, on asyncio and trio.

aiostream's ``stream.merge`` needs asyncio. This one is built on an anyio task group, so a
chat handler can combine its socket with a subscription on either event loop::

    async with broker.subscribe(room) as subscription, merge(socket, subscription) as events:
        async for event in events:
            if isinstance(event, ChannelMessage):
                await socket.send(event.message)      # from the room
            else:
                await broker.publish(room, event)     # from the client

Theory of operation
-------------------
``merge`` is an async context manager, because reading several sources at once needs
tasks, and tasks need a scope that closes them. Entering it starts one *pump* task per
source in a task group; each pump pulls one item at a time and hands it over an
unbuffered memory stream, so nothing is read ahead: a source is asked for its next item
only after the previous one was taken by the consumer.

When is it over? By default when the **first** source ends (``until_first_exhausted=True``):
put the socket first, and the merged stream ends when the client leaves, whatever the
other sources do; another source that ends earlier simply drops out. With
``until_first_exhausted=False`` it ends when every source has ended. An exception raised by
any source ends the merged stream too: it is re-raised by the consumer's ``async for``
(never from inside the task group, so it arrives as itself, not wrapped in an
``ExceptionGroup``, and the task group's cancel scope is never cancelled while the
consumer is suspended elsewhere; this is what makes ``yield`` inside the block of a
generator handler safe).

Leaving the block cancels the pumps that are still running and closes every source that
has an ``aclose()`` method (async generators, subscriptions), each in its own pump,
shielded and bounded, so resources are released before the block is left. A
:class:`~spikard.WebSocket` has no ``aclose()`` and is left open: closing the socket is the
handler's business.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Final, Generic, NoReturn, TypeVar, overload

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["merge"]

logger = logging.getLogger("spikard.pubsub")

_T = TypeVar("_T")
_V = TypeVar("_V")
_T1 = TypeVar("_T1")
_T2 = TypeVar("_T2")
_T3 = TypeVar("_T3")

_CLOSE_TIMEOUT: Final = 2.0
"""Seconds a source's ``aclose()`` may take when the merge ends."""


class _Item(Generic[_T]):
    __slots__ = ("value",)

    def __init__(self, value: _T) -> None:
        self.value = value


class _End:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


_Entry = _Item[_T] | _End | _Failure


class Merged(Generic[_T]):
    """The async iterator a ``merge`` block yields: items of every source, as they come."""

    def __init__(
        self, receive: MemoryObjectReceiveStream[_Entry[_T]], sources: int, until_first: bool
    ) -> None:
        self._receive = receive
        self._remaining = sources
        self._until_first = until_first
        self._done = False

    def __aiter__(self) -> Merged[_T]:
        return self

    async def __anext__(self) -> _T:
        while not self._done:
            try:
                entry = await self._receive.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                break
            if isinstance(entry, _Item):
                return entry.value
            if isinstance(entry, _Failure):
                self._done = True
                raise entry.error
            self._remaining -= 1
            if self._remaining == 0 or (self._until_first and entry.index == 0):
                break
        self._done = True
        raise StopAsyncIteration


async def _close_source(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True) as scope:
        try:
            await aclose()
        except Exception:
            logger.exception("closing a merged source failed")
    if scope.cancelled_caught:
        logger.warning("closing a merged source took longer than %s s; gave up", _CLOSE_TIMEOUT)


async def _pump(
    index: int, source: AsyncIterable[_T], send: MemoryObjectSendStream[_Entry[_T]]
) -> None:
    with send:
        try:
            iterator = aiter(source)
        except Exception as exc:
            await send.send(_Failure(exc))
            return
        try:
            while True:
                try:
                    value = await anext(iterator)
                except StopAsyncIteration:
                    await send.send(_End(index))
                    return
                except Exception as exc:
                    await send.send(_Failure(exc))
                    return
                await send.send(_Item(value))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the consumer left the block
        finally:
            await _close_source(iterator)


@asynccontextmanager
async def _merged(
    sources: tuple[AsyncIterable[Any], ...], until_first_exhausted: bool
) -> AsyncIterator[Merged[Any]]:
    send, receive = anyio.create_memory_object_stream[_Entry[Any]](0)
    error: BaseException | None = None
    with receive:
        async with anyio.create_task_group() as task_group:
            with send:
                for index, source in enumerate(sources):
                    task_group.start_soon(_pump, index, source, send.clone())
            try:
                yield Merged(receive, len(sources), until_first_exhausted)
            except BaseException as exc:
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    raise  # the task group handles cancellation natively
                # Re-raised below, outside the task group, so that it is not wrapped in an
                # exception group: an error of the block, or GeneratorExit when a generator
                # suspended inside the block is closed.
                error = exc
            finally:
                task_group.cancel_scope.cancel()
    if error is not None:
        raise error


class ContextOnly(AbstractAsyncContextManager[_V]):
    """An async context manager over ``manager`` that says how to use it when iterated."""

    def __init__(self, manager: AbstractAsyncContextManager[_V], usage: str) -> None:
        self._manager = manager
        self._usage = usage

    async def __aenter__(self) -> _V:
        return await self._manager.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        return await self._manager.__aexit__(exc_type, exc, traceback)

    def __aiter__(self) -> NoReturn:
        raise TypeError(self._usage)


class _Merge(ContextOnly["Merged[_T]"]):
    """What ``merge()`` returns: use it with ``async with``."""

    def __init__(
        self, sources: tuple[AsyncIterable[Any], ...], until_first_exhausted: bool
    ) -> None:
        super().__init__(
            _merged(sources, until_first_exhausted),
            "merge() is an async context manager: write "
            "`async with merge(a, b) as items: async for item in items: ...`",
        )


@overload
def merge(source: AsyncIterable[_T1], /, *, until_first_exhausted: bool = True) -> _Merge[_T1]: ...
@overload
def merge(
    source1: AsyncIterable[_T1],
    source2: AsyncIterable[_T2],
    /,
    *,
    until_first_exhausted: bool = True,
) -> _Merge[_T1 | _T2]: ...
@overload
def merge(
    source1: AsyncIterable[_T1],
    source2: AsyncIterable[_T2],
    source3: AsyncIterable[_T3],
    /,
    *,
    until_first_exhausted: bool = True,
) -> _Merge[_T1 | _T2 | _T3]: ...
@overload
def merge(*sources: AsyncIterable[_T], until_first_exhausted: bool = True) -> _Merge[_T]: ...
def merge(*sources: AsyncIterable[Any], until_first_exhausted: bool = True) -> _Merge[Any]:
    """Merge async iterables into one, inside an ``async with`` block.

    ::

        async with merge(socket, subscription) as items:
            async for item in items:
                ...

    Items are yielded in the order they arrive. Each source is read by its own task, one
    item at a time and only as fast as the block consumes them.

    Args:
        *sources: the async iterables to read; the first one is special, see below.
        until_first_exhausted: True (the default) ends the merged stream as soon as the
            first source ends (pass the socket first: the stream ends when the client
            leaves). False ends it when every source has ended.

    Returns:
        An async context manager yielding the merged async iterator. Leaving the block
        cancels the reads still pending and closes every source that has ``aclose()``.

    Raises:
        ValueError: no source was given.

    An exception raised by a source is raised by the merged iterator (as itself), and ends
    the merge.
    """
    if not sources:
        raise ValueError("merge() needs at least one source")
    return _Merge(sources, until_first_exhausted)
