"""Concurrency: many requests at once, slow and fast interleaved, on one connection each."""

from __future__ import annotations

import asyncio
import time

import httpx

from .servers import Target

_MANY = httpx.Limits(max_connections=100, max_keepalive_connections=100)


def test_100_concurrent_requests(raw: Target) -> None:
    async def run() -> list[bytes]:
        async with raw.async_http(limits=_MANY) as client:
            calls = (client.post("/echo", content=b"%d" % n) for n in range(100))
            return [response.content for response in await asyncio.gather(*calls)]

    assert asyncio.run(run()) == [b"%d" % n for n in range(100)]


def test_slow_requests_do_not_hold_up_fast_ones(raw: Target) -> None:
    async def run() -> tuple[float, float]:
        async with raw.async_http(limits=_MANY) as client:
            started = time.monotonic()

            async def timed(path: str) -> float:
                response = await client.get(path)
                assert response.status_code == 200
                return time.monotonic() - started

            slow = [asyncio.ensure_future(timed("/slow?delay=1.0")) for _ in range(10)]
            await asyncio.sleep(0.05)
            fast = await asyncio.gather(*(timed("/method") for _ in range(40)))
            slowest = max(await asyncio.gather(*slow))
            return max(fast), slowest

    fast, slow = asyncio.run(run())
    assert fast < 0.9  # every fast call was answered while the slow ones slept
    assert slow < 3.0  # the slow ones ran concurrently, not one after another


def test_concurrent_streams(raw: Target) -> None:
    async def run() -> list[int]:
        async with raw.async_http(limits=_MANY) as client:

            async def fetch() -> int:
                response = await client.get("/stream", params={"n": 100, "size": 1000})
                return len(response.content)

            return await asyncio.gather(*(fetch() for _ in range(20)))

    assert asyncio.run(run()) == [100_000] * 20


def test_concurrent_uploads(raw: Target) -> None:
    async def run() -> list[int]:
        async with raw.async_http(limits=_MANY) as client:
            calls = (client.post("/upload-stats", content=b"u" * 200_000) for _ in range(20))
            return [response.json()["total"] for response in await asyncio.gather(*calls)]

    assert asyncio.run(run()) == [200_000] * 20


def test_many_sequential_connections(raw: Target) -> None:
    for _ in range(50):
        with raw.http() as client:
            assert client.get("/method").text == "GET 0"
