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
"""

from __future__ import annotations

import argparse
import operator
from typing import Any

from aiostream import pipe, stream

from spikard import Spikard, WebSocket, WebSocketMessage

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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="spikard aiostream pipelines")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    app.run(args.host, args.port, backend=args.backend)
