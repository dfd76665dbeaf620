"""spikard fan-out server for ``benchmarks.fanout``: subscribe-and-forward sockets, HTTP publish.

::

    python -m spikard benchmarks.peers.fanout_spikard:app --port 8000               # in-memory
    SPIKARD_FANOUT_REDIS=redis://127.0.0.1:6379/0 \\
        python -m spikard benchmarks.peers.fanout_spikard:app --port 8000 --workers 2  # Redis

- ``ws://HOST/sub/{channel}`` subscribes to ``channel`` on ``app.broker``, sends one text
  message ``ready <pid>`` once the subscription is live (with Redis: confirmed by the server),
  then forwards every message published to the channel, as published.
- ``POST /publish/{channel}`` publishes the request body (UTF-8 text) to ``channel`` and
  answers with what ``publish`` returned (subscriptions in memory, processes with Redis).

The broker comes from the ``SPIKARD_FANOUT_REDIS`` environment variable (in-memory when it is
unset), which is how the worker processes of ``--workers N`` learn it. Keepalive pings are off
so that none lands inside a measurement (the peers are configured the same way).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from spikard import Request, Spikard, WebSocket, WebSocketConfig, WebSocketMessage
from spikard.pubsub import SubscriberTooSlow

from ._limits import NO_CLIENT_LIMITS

BACKLOG = 64
"""Messages queued for one socket before the ``disconnect`` policy cuts it off (1008)."""

app = Spikard(
    websocket=WebSocketConfig(ping_interval=None, **NO_CLIENT_LIMITS),
    broker=os.environ.get("SPIKARD_FANOUT_REDIS") or None,
)


@app.websocket("/sub/{channel}")
async def subscribe(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    channel: str = socket.path_params["channel"]
    try:
        async with app.broker.subscribe(
            channel, max_backlog=BACKLOG, policy="disconnect"
        ) as subscription:
            yield WebSocketMessage.text(f"ready {os.getpid()}")
            async for message in subscription.messages():
                yield message
    except SubscriberTooSlow as exc:
        yield WebSocketMessage.close(exc.close_code, "too slow")


@app.post("/publish/{channel}")
async def publish(request: Request, channel: str) -> str:
    return str(await app.broker.publish(channel, (await request.body()).decode()))
