"""Every operator: closes its source, is cancellation-clean, raises errors as themselves,
and pulls no faster than its consumer takes (beyond its documented bound)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from spikard import ops

pytestmark = pytest.mark.anyio


async def _same(item: Any) -> Any:
    await anyio.lowlevel.checkpoint()
    return item


OPERATORS: dict[str, tuple[Callable[[], Any], int]] = {
    # name: (operator, how many items it may pull beyond what the consumer took)
    "rate_limit": (lambda: ops.rate_limit(1000, 1000), 0),
    "rate_limit_delay": (lambda: ops.rate_limit(1000, 1, "delay"), 0),
    "batch": (lambda: ops.batch(3, 0.01), 3),
    "throttle": (lambda: ops.throttle(0.001), -1),
    "debounce": (lambda: ops.debounce(0.001), -1),
    "timeout": (lambda: ops.timeout(5), 0),
    "map": (lambda: ops.map(str), 0),
    "map_async": (lambda: ops.map(_same), 0),
    "filter": (lambda: ops.filter(lambda item: True), 0),
    "map_concurrent": (lambda: ops.map_concurrent(_same, 4), 4),
    "map_concurrent_unordered": (lambda: ops.map_concurrent(_same, 3, ordered=False), 3),
    "buffer": (lambda: ops.buffer(5), 6),
    "buffer_drop_oldest": (lambda: ops.buffer(5, "drop_oldest"), -1),
    "buffer_drop_newest": (lambda: ops.buffer(5, "drop_newest"), -1),
}
names = pytest.mark.parametrize("name", sorted(OPERATORS))


def gap_for(name: str) -> float:
    """debounce emits only after a silence: its source pauses between items."""
    return 0.005 if name == "debounce" else 0.0


class Source:
    """An endless async generator that records what happened to it."""

    def __init__(self, delay: float = 0.0, fail_at: int | None = None) -> None:
        self.pulled = 0
        self.closed = False
        self.delay = delay
        self.fail_at = fail_at

    async def items(self) -> AsyncIterator[int]:
        try:
            while True:
                if self.delay:
                    await anyio.sleep(self.delay)
                else:
                    await anyio.lowlevel.checkpoint()
                if self.pulled == self.fail_at:
                    raise LookupError("the source broke")
                self.pulled += 1
                yield self.pulled
        finally:
            with anyio.CancelScope(shield=True):  # cleanup that awaits shields itself
                await anyio.lowlevel.checkpoint()
            self.closed = True


@names
async def test_leaving_early_closes_the_source(name: str) -> None:
    source = Source(delay=gap_for(name))
    with anyio.fail_after(5):
        async with source.items() | OPERATORS[name][0]() as stage:
            async for _ in stage:
                break
    assert source.closed


def first_item(value: Any) -> Any:
    while isinstance(value, list):
        value = value[0]
    return value


@names
async def test_a_cancelled_pull_loses_nothing_or_ends_the_stage(name: str) -> None:
    source = Source(delay=0.1)
    with anyio.fail_after(5):
        async with source.items() | OPERATORS[name][0]() as stage:
            with anyio.move_on_after(0.02):
                await anext(stage)
            if stage.cancel_safe:
                # Stopped mid-pull, it goes on where it was: the first item is still first.
                assert str(first_item(await anext(stage))) == "1"
                assert not source.closed
            else:
                # The cancellation reached the generator and ended it.
                with pytest.raises(StopAsyncIteration):
                    await anext(stage)
    assert source.closed


@names
async def test_a_source_error_is_raised_as_itself(name: str) -> None:
    source = Source(fail_at=7)

    async def consume() -> None:
        async with source.items() | OPERATORS[name][0]() as stage:
            async for _ in stage:
                pass

    with anyio.fail_after(5), pytest.raises(LookupError, match="the source broke"):
        await consume()
    assert source.closed


@names
async def test_pulls_only_as_fast_as_the_consumer_takes(name: str) -> None:
    operator, bound = OPERATORS[name]
    if bound < 0:
        pytest.skip("this policy reads on to keep the freshest item (bounded memory)")
    source = Source()
    taken = 0
    with anyio.fail_after(5):
        async with source.items() | operator() as stage:
            async for item in stage:
                taken += len(item) if isinstance(item, list) else 1
                for _ in range(30):  # the consumer is busy: give every task a chance
                    await anyio.lowlevel.checkpoint()
                assert source.pulled - taken <= bound + 1
                if taken >= 20:
                    break
    assert source.closed


@names
async def test_a_pipeline_over_an_operator_can_be_closed_from_the_end(name: str) -> None:
    source = Source(delay=gap_for(name))
    with anyio.fail_after(5):
        async with source.items() | OPERATORS[name][0]() | ops.batch(2, 0.01) as pipeline:
            await anext(pipeline)
    assert source.closed


@names
async def test_an_operator_under_a_deadline_from_its_first_pull(name: str) -> None:
    source = Source(delay=gap_for(name))
    with anyio.fail_after(5):
        async with source.items() | OPERATORS[name][0]() | ops.timeout(5) as pipeline:
            await anext(pipeline)
    assert source.closed
