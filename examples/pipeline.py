"""Stream handlers built from aiostream operators: the socket is just another async iterable.

::

    python examples/pipeline.py
    python -m spikard examples.pipeline:app

- ``/shout``: text messages come back upper-cased; binary messages are filtered out.
- ``/numbers``: send numbers as text; each one is answered with a running count and sum
  (``"3: sum=6"``). Text that is not a number is skipped; ``end`` finishes the stream, and a
  finished handler closes the connection with 1000.
- ``/ticker``: echoes what you send while three ``tick N`` messages arrive on their own,
  0.2 s apart: ``stream.merge`` interleaves two sources. **asyncio only** (see below).

A handler may return the pipe instead of being a generator: spikard iterates it, sends each
item (``str`` as text, ``bytes`` as binary), and pulls the next one only when the previous
was written to the socket.

Which aiostream operators run on which event loop (aiostream 0.8; checked on trio 0.35):
aiostream's concurrent machinery and its sources are written against asyncio directly. On trio,
``filter``, ``map`` with a *sync* function, ``enumerate``, ``accumulate`` with a sync function,
``takewhile``, ``skip``, ``chunks``, ``take`` and ``starmap`` work over the socket. These need
asyncio: ``merge``, ``zip``, ``flatmap``, ``timeout``, ``map`` with an *async* function, and the
sources built on plain iterables (``iterate``/``from_iterable`` over a list, ``count``,
``range``, ``repeat``: they yield to the loop with ``asyncio.sleep``). Serve the asyncio-only
routes with ``--backend asyncio`` (the default).

spikard's own operators (``spikard.ops``, see ``docs/ops.md``) run on both backends:

- ``/cursor``: a live cursor. Send positions as JSON (``{"x": 10, "y": 20}``) as fast as the
  mouse moves; at most 60 per second are accepted (bursts of 120), and a client that sends
  faster is closed with 1008. Every 50 ms (or every 20 moves) the server answers with what
  it got: ``{"moves": 3, "x": 12, "y": 25}``, the last position of the batch.
- ``/prices``: a ticker. A price update is made every 5 ms; the client gets them in JSON
  lists, one list per 100 ms at most (50 updates at most per list), so a slow client gets
  fuller lists instead of a growing queue. Leaving stops the generator.
- ``/lookup``: send words; each is looked up (a simulated 20 ms query), at most 8 at a time,
  and the answers (``"word: 4 letters"``) come back in the order the words were sent.
"""

from __future__ import annotations

import argparse
import json
import operator
import random
from collections.abc import AsyncIterator
from typing import Any

import anyio
from aiostream import pipe, stream

from spikard import Spikard, WebSocket, WebSocketMessage, ops

app = Spikard()


# aiostream types a map function as ``f(item, /, *items)`` (map can zip several sources),
# so under mypy --strict the functions below take a ``*_`` they never use.


def shout_text(message: WebSocketMessage, *_: WebSocketMessage) -> str:
    return (message.as_text() or "").upper()


@app.websocket("/shout")
def shout(socket: WebSocket) -> Any:
    return socket | pipe.filter(WebSocketMessage.is_text) | pipe.map(shout_text)


def _not_end(message: WebSocketMessage) -> bool:
    return message.as_text() != "end"


def _as_number(message: WebSocketMessage, *_: WebSocketMessage) -> float | None:
    try:
        return float(message.as_text() or "")
    except ValueError:
        return None


def _is_number(value: float | None) -> bool:
    return value is not None


@app.websocket("/numbers")
def numbers(socket: WebSocket) -> Any:
    return (
        socket
        | pipe.takewhile(_not_end)  # "end" finishes the stream (and closes with 1000)
        | pipe.map(_as_number)
        | pipe.filter(_is_number)
        | pipe.accumulate(operator.add)  # the running sum, like itertools.accumulate
        | pipe.enumerate(start=1)
        | pipe.starmap(lambda index, total: f"{index}: sum={total:g}")
    )


def _echo_text(message: WebSocketMessage, *_: WebSocketMessage) -> str:
    return f"echo: {message.as_text()}" if message.is_text() else "echo: <binary>"


def _tick(number: int, *_: int) -> str:
    return f"tick {number}"


@app.websocket("/ticker")
def ticker(socket: WebSocket) -> Any:
    # asyncio only: merge runs its sources as asyncio tasks, and count sleeps with asyncio.
    ticks = stream.count(interval=0.2) | pipe.take(3) | pipe.map(_tick)
    return stream.merge(socket | pipe.map(_echo_text), ticks)


# ---- spikard.ops: on asyncio and trio ---------------------------------------------------------


def _cursor_summary(moves: list[WebSocketMessage]) -> str:
    last: dict[str, Any] = {}
    for move in reversed(moves):  # the newest position that parses
        try:
            position = json.loads(move.as_text() or "")
        except ValueError:
            continue
        if isinstance(position, dict):
            last = position
            break
    return json.dumps({"moves": len(moves), "x": last.get("x"), "y": last.get("y")})


@app.websocket("/cursor")
def cursor(socket: WebSocket) -> Any:
    return (
        socket
        | ops.rate_limit(60, burst=120)  # a flood closes with 1008
        | ops.batch(20, 0.05)  # one answer per 50 ms (or 20 moves)
        | ops.map(_cursor_summary)
    )


async def _price_updates(symbol: str) -> AsyncIterator[dict[str, Any]]:
    price = 100.0
    for sequence in range(1_000_000):
        await anyio.sleep(0.005)
        price = round(price * (1 + random.uniform(-0.001, 0.001)), 4)
        yield {"symbol": symbol, "seq": sequence, "price": price}


@app.websocket("/prices")
async def prices(socket: WebSocket) -> AsyncIterator[str]:
    symbol = socket.query_params.get("symbol", "SPKD")
    # batch waits on time over a generator, so it runs a task: iterate it in `async with`.
    async with _price_updates(symbol) | ops.batch(50, 0.1) as updates:
        async for group in updates:
            yield json.dumps(group)


async def _look_up(message: WebSocketMessage) -> str:
    word = message.as_text() or ""
    await anyio.sleep(0.02)  # stands for a database query
    return f"{word}: {len(word)} letters"


@app.websocket("/lookup")
def lookup(socket: WebSocket) -> Any:
    return socket | ops.map_concurrent(_look_up, limit=8)  # answers in order


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="spikard aiostream pipelines")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    app.run(args.host, args.port, backend=args.backend)
