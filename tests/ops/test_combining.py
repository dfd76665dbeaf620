"""``zip`` (and ``merge``, re-exported): pairs, ending, closing, errors, backpressure."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

import spikard
from spikard import ops

pytestmark = pytest.mark.anyio


async def counting(
    name: str, count: int | None, closed: list[str], pulled: dict[str, int]
) -> AsyncIterator[str]:
    index = 0
    try:
        while count is None or index < count:
            await anyio.lowlevel.checkpoint()
            pulled[name] = pulled.get(name, 0) + 1
            yield f"{name}{index}"
            index += 1
    finally:
        closed.append(name)


def test_merge_is_the_same_object() -> None:
    assert ops.merge is spikard.merge


async def test_zip_pairs_items_and_ends_with_the_shortest_source() -> None:
    closed: list[str] = []
    pulled: dict[str, int] = {}
    with anyio.fail_after(5):
        async with ops.zip(
            counting("a", 3, closed, pulled), counting("b", None, closed, pulled)
        ) as pairs:
            got = [pair async for pair in pairs]
    assert got == [("a0", "b0"), ("a1", "b1"), ("a2", "b2")]
    assert sorted(closed) == ["a", "b"]
    assert pulled["b"] <= 4  # one per pair, and one asked for when "a" ended


async def test_zip_reads_nothing_ahead() -> None:
    closed: list[str] = []
    pulled: dict[str, int] = {}
    with anyio.fail_after(5):
        async with ops.zip(
            counting("a", None, closed, pulled), counting("b", None, closed, pulled)
        ) as pairs:
            for expected in range(1, 6):
                await anext(pairs)
                for _ in range(20):
                    await anyio.lowlevel.checkpoint()
                assert pulled == {"a": expected, "b": expected}
    assert sorted(closed) == ["a", "b"]


async def test_zip_raises_a_source_error_as_itself() -> None:
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise LookupError("broken source")

    closed: list[str] = []

    async def consume() -> None:
        async with ops.zip(broken(), counting("a", None, closed, {})) as pairs:
            async for _ in pairs:
                pass

    with anyio.fail_after(5), pytest.raises(LookupError, match="broken source"):
        await consume()
    assert closed == ["a"]


async def test_zip_is_a_context_manager_and_says_so() -> None:
    with pytest.raises(TypeError, match="async with zip"):
        async for _ in ops.zip(counting("a", 1, [], {})):
            pass  # pragma: no cover
    with pytest.raises(ValueError, match="at least one source"):
        ops.zip()


async def test_leaving_the_block_early_closes_every_source() -> None:
    closed: list[str] = []
    with anyio.fail_after(5):
        async with ops.zip(
            counting("a", None, closed, {}), counting("b", None, closed, {})
        ) as pairs:
            async for _ in pairs:
                break
    assert sorted(closed) == ["a", "b"]


async def test_a_stage_that_runs_tasks_can_be_merged_inside_its_block() -> None:
    closed: list[str] = []
    with anyio.fail_after(5):
        async with (
            counting("a", None, closed, {}) | ops.buffer(3) as buffered,
            ops.merge(buffered, counting("b", None, closed, {})) as events,
        ):
            seen = [await anext(events) for _ in range(6)]
    assert {item[0] for item in seen} <= {"a", "b"}
    assert sorted(closed) == ["a", "b"]
