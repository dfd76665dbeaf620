"""``rate_limit``: the token bucket against a model, each policy, bytes, and validation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import accumulate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikard import WebSocketMessage, ops
from spikard.ops import ManualClock

from .support import SOURCE_KINDS, Log, drive, source

pytestmark = pytest.mark.anyio

# Quarter seconds and power-of-two rates keep every token count exact in floating point.
gaps = st.lists(st.integers(min_value=0, max_value=8).map(lambda q: q / 4), max_size=30)
rates = st.sampled_from([0.5, 1.0, 2.0, 4.0])
bursts = st.integers(min_value=1, max_value=5)


def schedule_of(gap_list: list[float]) -> list[tuple[float, int]]:
    return [(t, index) for index, t in enumerate(accumulate(gap_list))]


def admitted_by_model(
    schedule: list[tuple[float, int]], rate: float, burst: float
) -> list[tuple[float, int]]:
    """What a greedy token bucket lets through, for an always-ready consumer."""
    tokens, last, out = burst, 0.0, []
    for at, item in schedule:
        tokens = min(burst, tokens + (at - last) * rate)
        last = at
        if tokens >= 1:
            tokens -= 1
            out.append((at, item))
    return out


def delayed_by_model(
    schedule: list[tuple[float, int]], rate: float, burst: float
) -> list[tuple[float, int]]:
    """When each item leaves a delaying bucket (in order, none lost)."""
    tokens, last, now, out = burst, 0.0, 0.0, []
    for at, item in schedule:
        now = max(now, at)
        tokens = min(burst, tokens + (now - last) * rate)
        last = now
        if tokens < 1:
            wait = (1 - tokens) / rate
            now += wait
            tokens = 1.0
            last = now
        tokens -= 1
        out.append((now, item))
    return out


def within_bucket(times: list[float], rate: float, burst: float) -> bool:
    """In every window [t_i, t_j], at most burst + rate * (t_j - t_i) items."""
    return all(
        j - i + 1 <= burst + rate * (times[j] - times[i]) + 1e-9
        for i in range(len(times))
        for j in range(i, len(times))
    )


@settings(max_examples=60, deadline=None)
@given(gap_list=gaps, rate=rates, burst=bursts, kind=st.sampled_from(SOURCE_KINDS))
async def test_drop_lets_through_what_the_bucket_pays_for(
    gap_list: list[float], rate: float, burst: int, kind: str
) -> None:
    clock = ManualClock()
    schedule = schedule_of(gap_list)
    log = Log()
    limited = source(kind, clock, schedule, log) | ops.rate_limit(rate, burst, "drop", clock=clock)
    run = await drive(clock, limited)
    assert run.items == admitted_by_model(schedule, rate, burst)
    assert within_bucket([at for at, _ in run.items], rate, burst)
    assert limited.dropped == len(schedule) - len(run.items)
    assert log.closed


@settings(max_examples=60, deadline=None)
@given(gap_list=gaps, rate=rates, burst=bursts, kind=st.sampled_from(SOURCE_KINDS))
async def test_delay_keeps_every_item_in_order_at_the_earliest_allowed_time(
    gap_list: list[float], rate: float, burst: int, kind: str
) -> None:
    clock = ManualClock()
    schedule = schedule_of(gap_list)
    log = Log()
    limited = source(kind, clock, schedule, log) | ops.rate_limit(rate, burst, "delay", clock=clock)
    consumed = 0
    worst = 0

    def seen(_: int) -> None:
        nonlocal consumed, worst
        consumed += 1
        worst = max(worst, log.pulled - consumed)

    run = await drive(clock, limited, on_item=seen)
    assert run.items == delayed_by_model(schedule, rate, burst)
    assert within_bucket([at for at, _ in run.items], rate, burst)
    assert worst <= 0  # nothing is pulled while an item waits for tokens


@settings(max_examples=40, deadline=None)
@given(gap_list=gaps, rate=rates, burst=bursts)
async def test_close_raises_at_the_first_item_over_the_limit(
    gap_list: list[float], rate: float, burst: int
) -> None:
    clock = ManualClock()
    schedule = schedule_of(gap_list)
    log = Log()
    limited = source("generator", clock, schedule, log) | ops.rate_limit(rate, burst, clock=clock)
    run = await drive(clock, limited)
    admitted = admitted_by_model(schedule, rate, burst)
    first_refused = next(
        (index for index, (at, item) in enumerate(schedule) if (at, item) not in admitted), None
    )
    if first_refused is None:
        assert run.error is None
        assert run.items == admitted
    else:
        assert isinstance(run.error, ops.RateLimitExceeded)
        assert run.error.close_code == 1008
        assert run.items == schedule[:first_refused]
    assert log.closed


async def test_a_callable_replaces_or_drops_the_excess() -> None:
    clock = ManualClock()
    log = Log()
    schedule = [(0.0, n) for n in range(5)]
    replies: list[int] = []

    async def warn(item: int) -> int | None:
        replies.append(item)
        return -item if item % 2 else None

    limited = source("generator", clock, schedule, log) | ops.rate_limit(
        1, 2, on_exceed=warn, clock=clock
    )
    run = await drive(clock, limited)
    assert run.values == [0, 1, -3]
    assert replies == [2, 3, 4]
    assert limited.dropped == 2
    assert limited.exceeded == 3


async def test_bytes_count_the_payload() -> None:
    clock = ManualClock()
    log = Log()
    items = [WebSocketMessage.text("é" * 5), b"x" * 10, "abc", WebSocketMessage.binary(b"12")]
    schedule = [(0.0, item) for item in items]
    limited = source("generator", clock, schedule, log) | ops.rate_limit(
        10, 20, "drop", unit="bytes", clock=clock
    )
    run = await drive(clock, limited)
    # 10 bytes of UTF-8, then 10 bytes: the bucket is empty for "abc" and b"12".
    assert run.values == items[:2]


async def test_an_item_above_burst_waits_for_a_full_bucket_and_borrows() -> None:
    clock = ManualClock()
    log = Log()
    schedule = [(0.0, b"a" * 4), (0.0, b"b" * 30), (0.0, b"c")]
    limited = source("generator", clock, schedule, log) | ops.rate_limit(
        10, 10, "delay", unit="bytes", clock=clock
    )
    run = await drive(clock, limited)
    # b"b"*30 leaves once the bucket is full again (0.4 s) and leaves it 20 in debt;
    # b"c" then waits for 21 tokens: 2.1 s more.
    assert [at for at, _ in run.items] == pytest.approx([0.0, 0.4, 2.5])


async def test_bytes_refuse_what_has_no_size() -> None:
    async def numbers() -> AsyncIterator[int]:
        yield 1

    limited = numbers() | ops.rate_limit(1, 1, unit="bytes")
    with pytest.raises(TypeError, match="unit='bytes'"):
        await anext(limited)


@pytest.mark.parametrize(
    "arguments",
    [
        {"rate": 0},
        {"rate": -1},
        {"rate": float("nan")},
        {"rate": 1, "burst": 0.5},
        {"rate": 1, "on_exceed": "explode"},
        {"rate": 1, "unit": "frames"},
    ],
)
def test_bad_arguments_are_refused(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
        ops.rate_limit(**arguments)  # type: ignore[arg-type]


def test_the_error_names_the_limit() -> None:
    error = ops.RateLimitExceeded(5, 10, "messages")
    assert str(error) == "rate limit exceeded (5 messages/s, burst 10)"
    assert len(str(error)) <= 100
