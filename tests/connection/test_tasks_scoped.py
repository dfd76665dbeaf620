"""LightTaskGroup.start_soon_scoped: the given scope stops that task alone, on both backends."""

from __future__ import annotations

import anyio

from spikard.connection.tasks import LightTaskGroup


async def test_cancelling_the_given_scope_stops_only_that_task() -> None:
    events: list[str] = []
    scopes: list[anyio.CancelScope] = []

    async def scoped(scope: anyio.CancelScope, label: str) -> None:
        scopes.append(scope)
        try:
            await anyio.sleep_forever()
        finally:
            events.append(f"{label} stopped")

    async def neighbour() -> None:
        await anyio.sleep(0.1)
        events.append("neighbour done")

    with anyio.fail_after(5):
        async with LightTaskGroup() as tasks:
            tasks.start_soon_scoped(scoped, "scoped")
            tasks.start_soon(neighbour)
            while not scopes:
                await anyio.sleep(0.01)
            scopes[0].cancel()
    assert events == ["scoped stopped", "neighbour done"]
    assert scopes[0].cancel_called


async def test_the_scope_respects_a_shield_and_the_group_cancels_it() -> None:
    events: list[str] = []

    async def shielded(scope: anyio.CancelScope) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.05)
            events.append("shielded part ran out")
        await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with LightTaskGroup() as tasks:
            tasks.start_soon_scoped(shielded)
            await anyio.sleep(0.01)
            tasks.cancel()
    assert events == ["shielded part ran out"]
