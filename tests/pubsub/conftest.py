"""Fixtures for the pub/sub tests: a real ``redis-server`` on a free loopback port.

The Redis tests skip (with the reason) when the ``redis-server`` binary or redis-py is
missing. Each test that asks for ``redis_server`` gets its own server (startup takes a few
milliseconds), started with persistence off and killed at teardown; ``kill()`` and
``start()`` let a test crash it and bring it back on the same port.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import pytest

REDIS_SERVER = shutil.which("redis-server")
_STARTUP_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1 that a test can kill and restart."""

    def __init__(self, binary: str, port: int, directory: Path) -> None:
        self.binary = binary
        self.port = port
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while True:
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"redis-server exited at startup on port {self.port}")
            if self._answers_ping():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.01)

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as client:
                client.sendall(b"PING\r\n")
                return client.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server, like a crash, and wait for it to be gone."""
        process, self.process = self.process, None
        if process is None:
            return
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test; killed at teardown."""
    pytest.importorskip("redis", reason="redis-py is not installed (pip install -e '.[redis]')")
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(REDIS_SERVER, free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 10, interval: float = 0.01
) -> None:
    """Poll ``condition`` (a function, sync or async) until it is true; fail after ``timeout``."""
    with anyio.fail_after(timeout):
        while True:
            result = condition()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await anyio.sleep(interval)
