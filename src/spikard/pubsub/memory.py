"""The in-memory broker: pub/sub and presence inside one process, on asyncio or trio.

Publishing hands the message straight to the local fan-out (see
:mod:`spikard.pubsub.subscription` for the backlog policies), so delivery is immediate and
exact, and the number returned by ``publish`` is the number of subscriptions that took the
message. Presence is a dict of rooms; a room disappears with its last member.

Nothing here uses asyncio-only APIs: the broker is built on anyio primitives and runs on
whichever event loop the application runs on. It has no background task, so ``start`` and
``aclose`` only switch its state (``aclose`` ends the subscriptions and forgets presence).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import anyio.lowlevel

from ..messages import WebSocketMessage
from .base import Broker, JSONValue, dump_info

__all__ = ["MemoryBroker"]


class MemoryBroker(Broker):
    """Pub/sub and presence for one process (the default broker).

    ::

        async with MemoryBroker() as broker:
            async with broker.subscribe("news") as subscription:
                await broker.publish("news", "hello")
    """

    def __init__(self) -> None:
        super().__init__()
        self._rooms: dict[str, dict[str, Any]] = {}

    async def _open(self) -> None:
        await anyio.lowlevel.checkpoint()

    async def _close(self) -> None:
        self._rooms.clear()

    async def _publish(self, channel: str, message: WebSocketMessage) -> int:
        return await self._fanout.deliver(channel, message)

    async def _join(self, room: str, member_id: str, info: JSONValue) -> None:
        copied = json.loads(dump_info(info))  # accept exactly what Redis accepts
        await anyio.lowlevel.checkpoint()
        self._rooms.setdefault(room, {})[member_id] = copied

    async def _leave(self, room: str, member_id: str) -> None:
        await anyio.lowlevel.checkpoint()
        members = self._rooms.get(room)
        if members is None:
            return
        members.pop(member_id, None)
        if not members:
            del self._rooms[room]

    async def _members(self, room: str) -> dict[str, Any]:
        await anyio.lowlevel.checkpoint()
        return copy.deepcopy(self._rooms.get(room, {}))
