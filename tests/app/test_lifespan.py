"""Startup and shutdown hooks, and the lifespan context manager."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from spikard import Spikard

from ..helpers import ws_connect


async def test_hooks_run_around_serving_in_order() -> None:
    calls: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Spikard) -> AsyncIterator[None]:
        calls.append("lifespan enter")
        yield
        calls.append("lifespan exit")

    app = Spikard(lifespan=lifespan)

    @app.on_startup
    def first() -> None:
        calls.append("startup 1")

    @app.on_startup
    async def second() -> None:
        await anyio.lowlevel.checkpoint()
        calls.append("startup 2")

    @app.on_shutdown
    async def closing() -> None:
        await anyio.lowlevel.checkpoint()
        calls.append("shutdown 1")

    @app.on_shutdown
    def last() -> None:
        calls.append("shutdown 2")

    @app.websocket("/ws")
    async def ws(socket: object) -> AsyncIterator[str]:
        calls.append("handler")
        yield "hi"

    async with app.test_server() as server:
        assert calls == ["startup 1", "startup 2", "lifespan enter"]
        async with ws_connect(server.ws_url("/ws")) as client:
            assert await client.recv() == "hi"
    assert calls == [
        "startup 1",
        "startup 2",
        "lifespan enter",
        "handler",
        "lifespan exit",
        "shutdown 2",
        "shutdown 1",
    ]


async def test_a_failing_startup_never_opens_the_port() -> None:
    app = Spikard()

    @app.on_startup
    async def broken() -> None:
        raise ConnectionError("database unreachable")

    with pytest.raises(ConnectionError, match="database unreachable"):
        async with app.test_server():
            pytest.fail("the server started")


def test_the_cli_exits_1_with_a_clear_message_when_startup_fails(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text(
        "from spikard import Spikard\n"
        "app = Spikard()\n"
        "@app.on_startup\n"
        "async def connect() -> None:\n"
        "    raise ConnectionError('redis://127.0.0.1:1 is unreachable')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-m", "spikard", "broken_app:app", "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 1
    assert "application startup failed: ConnectionError" in completed.stderr
    assert "Traceback" not in completed.stderr
