"""Real ASGI servers (uvicorn, hypercorn, granian) started as subprocesses on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STARTUP_BOUND = 20.0
"""Seconds a server gets to listen."""


@dataclass(frozen=True)
class Served:
    """A server subprocess and where it listens."""

    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str) -> str:
        """``ws://127.0.0.1:PORT/path``."""
        return f"ws://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        """What the server logged so far."""
        return self.log.read_text(errors="replace")


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def command(kind: str, target: str, port: int, *, factory: bool = False) -> list[str]:
    """The command line that serves ``target`` (``module:attr``) with server ``kind``."""
    if kind.startswith("uvicorn"):
        implementation = kind.partition("-")[2]  # uvicorn-wsproto, uvicorn-websockets
        ws = ["--ws", implementation] if implementation else []
        extra = ["--factory"] if factory else []
        return [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *ws,
            *extra,
        ]
    if kind.startswith("hypercorn"):
        if factory:
            target = f"{target}()"
        worker = ["-k", "trio"] if kind == "hypercorn-trio" else []
        return [sys.executable, "-m", "hypercorn", *worker, target, "-b", f"127.0.0.1:{port}"]
    if kind == "granian":
        extra = ["--factory"] if factory else []
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *extra,
            target,
        ]
    raise ValueError(kind)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@contextmanager
def serve(
    kind: str,
    target: str,
    tmp: Path,
    *,
    factory: bool = False,
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> Iterator[Served]:
    """Run ``target`` under ``kind`` until the block ends (SIGTERM, then SIGKILL)."""
    port = free_port()
    log = tmp / f"{kind}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command(kind, target, port, factory=factory),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    served = Served(kind, port, process, log)
    try:
        if wait:
            deadline = time.monotonic() + STARTUP_BOUND
            while not _listening(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} did not start:\n{served.output()}")
                time.sleep(0.05)
        yield served
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], bound: float = 10.0) -> int:
    """SIGTERM ``process`` and wait (``bound`` seconds, then SIGKILL); its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(bound)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait(bound)
