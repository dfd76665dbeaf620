"""Stream-layer tests; ``Log`` is a list that tests can wait on without polling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio


class Log(list[Any]):
    """What server-side handlers did, in order; ``wait_for`` wakes on every ``append``."""

    _changed: anyio.Event | None = None

    def append(self, item: Any) -> None:
        super().append(item)
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait_for(self, predicate: Callable[[Log], bool], timeout: float = 3.0) -> None:
        """Wait until ``predicate(self)`` holds; fail after ``timeout`` seconds."""
        with anyio.fail_after(timeout):
            while not predicate(self):
                if self._changed is None:
                    self._changed = anyio.Event()
                await self._changed.wait()

    async def wait_for_item(self, item: Any, timeout: float = 3.0) -> None:
        """Wait until ``item`` was appended."""
        await self.wait_for(lambda log: item in log, timeout)
