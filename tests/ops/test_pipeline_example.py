"""``examples/pipeline.py``'s ``spikard.ops`` routes, over real sockets, on asyncio and trio."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from examples import pipeline
from websockets.exceptions import ConnectionClosedError

from ..helpers import ws_connect

pytestmark = pytest.mark.anyio

TIMEOUT = 10


async def recv_json(client: Any) -> Any:
    with anyio.fail_after(TIMEOUT):
        return json.loads(await client.recv())


async def test_cursor_batches_moves_and_answers_with_the_last_position() -> None:
    async with pipeline.app.test_server() as server, ws_connect(server.ws_url("/cursor")) as ws:
        for x in range(5):
            await ws.send(json.dumps({"x": x, "y": 2 * x}))
        moves = 0
        while moves < 5:
            summary = await recv_json(ws)
            moves += summary["moves"]
        assert moves == 5
        assert (summary["x"], summary["y"]) == (4, 8)


async def test_cursor_closes_a_flood_with_1008() -> None:
    async with pipeline.app.test_server() as server, ws_connect(server.ws_url("/cursor")) as ws:

        async def flood() -> None:
            for x in range(1000):
                await ws.send(json.dumps({"x": x, "y": 0}))
            while True:
                await ws.recv()

        with anyio.fail_after(TIMEOUT), pytest.raises(ConnectionClosedError) as closed:
            await flood()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


async def test_prices_come_in_order_in_lists_for_a_slow_client() -> None:
    url = "/prices?symbol=ABC"
    async with pipeline.app.test_server() as server, ws_connect(server.ws_url(url)) as ws:
        groups = []
        for _ in range(3):
            groups.append(await recv_json(ws))
            await anyio.sleep(0.2)
        updates = [update for group in groups for update in group]
        assert [update["seq"] for update in updates] == list(range(len(updates)))
        assert {update["symbol"] for update in updates} == {"ABC"}
        assert all(1 <= len(group) <= 50 for group in groups)
        assert max(len(group) for group in groups) > 1


async def test_lookup_answers_in_order_with_concurrency() -> None:
    words = [f"w{'x' * n}" for n in range(16)]
    async with pipeline.app.test_server() as server, ws_connect(server.ws_url("/lookup")) as ws:
        began = anyio.current_time()
        for word in words:
            await ws.send(word)
        with anyio.fail_after(TIMEOUT):
            answers = [await ws.recv() for _ in words]
        elapsed = anyio.current_time() - began
    assert answers == [f"{word}: {len(word)} letters" for word in words]
    assert elapsed < 16 * 0.02  # eight at a time, not one after the other
