"""Server tests; ``serve_subprocess`` runs ``python -m spikard`` for the CLI and signal tests."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.server.app_for_cli:app"
_LISTENING = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")


@dataclass
class Served:
    """A running ``python -m spikard`` process and what it printed so far."""

    process: anyio.abc.Process
    port: int
    output: bytearray = field(default_factory=bytearray)

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def wait(self, timeout: float) -> int:
        """Wait for exit (collecting stderr); return the exit code."""
        assert self.process.stderr is not None
        with anyio.fail_after(timeout):
            async for chunk in self.process.stderr:
                self.output += chunk
            return await self.process.wait()


def spikard_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "spikard", *args]


@asynccontextmanager
async def serve_subprocess(
    extra: Sequence[str] = (), app: str = APP, *, drain: bool = False
) -> AsyncIterator[Served]:
    """Start ``python -m spikard APP --port 0`` and wait until it listens; kill it at the end.

    With ``drain``, stderr keeps being read in the background (into ``Served.output``) so a
    chatty server never blocks on a full pipe; ``Served.wait`` is then unavailable.
    """
    process = await anyio.open_process(
        spikard_command(app, "--port", "0", *extra),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        assert process.stderr is not None
        output = bytearray()
        with anyio.fail_after(15):
            while (found := _LISTENING.search(output)) is None:
                try:
                    output += await process.stderr.receive()
                except anyio.EndOfStream:
                    raise AssertionError(f"server exited early:\n{output.decode()}") from None
        served = Served(process, int(found.group(1)), output)
        if not drain:
            yield served
            return
        async with anyio.create_task_group() as task_group:

            async def keep_reading() -> None:
                assert process.stderr is not None
                async for chunk in process.stderr:
                    output.extend(chunk[-65536:])

            task_group.start_soon(keep_reading)
            yield served
            task_group.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
            with anyio.CancelScope(shield=True):
                await process.wait()
        await process.aclose()
