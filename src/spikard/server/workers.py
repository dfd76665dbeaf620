"""Run N worker processes on one port (SO_REUSEPORT) and supervise them.

Each worker is ``python -m spikard TARGET --reuse-port ...``: a whole server with its own
event loop, app instance and broker, and the kernel spreads new connections across them.
The supervisor restarts a worker that dies (with a pause when workers keep crashing), and on
SIGINT/SIGTERM passes the signal on, so every worker closes its sockets with 1001 and drains;
a second signal kills the workers at once. Workers that share state across processes need a
broker that does too (``Spikard(broker="redis://...")``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

__all__ = ["run_workers"]

logger = logging.getLogger("spikard.workers")

_POLL_SECONDS = 0.2
_RESTART_WINDOW = 30.0
_MAX_RESTARTS_IN_WINDOW = 5
_RESTART_PAUSE = 5.0


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class _Supervisor:
    def __init__(self, command: list[str], count: int, grace: float) -> None:
        self.command = command
        self.count = count
        self.grace = grace
        self.workers: dict[int, subprocess.Popen[bytes]] = {}
        self.restarts: list[float] = []
        self.signals = 0

    def spawn(self, index: int) -> None:
        env = dict(os.environ, SPIKARD_WORKER=str(index))
        self.workers[index] = subprocess.Popen(self.command, env=env)
        logger.info("worker %d started (pid %d)", index, self.workers[index].pid)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        first = self.signals == 1
        for process in self.workers.values():
            if process.poll() is None:
                process.send_signal(signum if first else signal.SIGKILL)
        if first:
            logger.info(
                "%s received: stopping %d worker(s)", signal.Signals(signum).name, len(self.workers)
            )
        else:
            logger.warning("second signal: killing the workers")

    def run(self) -> int:
        for index in range(self.count):
            self.spawn(index)
        stop_deadline: float | None = None
        while True:
            time.sleep(_POLL_SECONDS)
            if self.signals:
                stop_deadline = stop_deadline or time.monotonic() + self.grace
                alive = [p for p in self.workers.values() if p.poll() is None]
                if not alive:
                    return 0
                if time.monotonic() > stop_deadline:
                    logger.warning("workers did not stop in %.0f s: killing them", self.grace)
                    for process in alive:
                        process.kill()
                continue
            for index, process in list(self.workers.items()):
                code = process.poll()
                if code is None:
                    continue
                logger.error(
                    "worker %d (pid %d) exited with %s; restarting", index, process.pid, code
                )
                now = time.monotonic()
                self.restarts = [t for t in self.restarts if now - t < _RESTART_WINDOW]
                self.restarts.append(now)
                if len(self.restarts) > _MAX_RESTARTS_IN_WINDOW:
                    logger.error("workers keep crashing: pausing %.0f s", _RESTART_PAUSE)
                    time.sleep(_RESTART_PAUSE)
                if not self.signals:
                    self.spawn(index)


def run_workers(
    target: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 2,
    backend: str = "asyncio",
    log_level: str = "info",
    extra_args: Sequence[str] = (),
    shutdown_grace: float = 30.0,
) -> None:
    """Serve ``target`` (``module:attribute``) from ``workers`` processes sharing one port.

    Blocks until SIGINT/SIGTERM has stopped every worker. ``port=0`` picks a free port
    first, so that all workers share it.

    Raises:
        ValueError: ``workers`` is less than 1.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
        )
    if port == 0:
        port = _free_port(host)
    command = [
        sys.executable,
        "-m",
        "spikard",
        target,
        "--host",
        host,
        "--port",
        str(port),
        "--backend",
        backend,
        "--log-level",
        log_level,
        "--reuse-port",
        *extra_args,
    ]
    supervisor = _Supervisor(command, workers, shutdown_grace)
    previous = {
        sig: signal.signal(sig, supervisor.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        logger.info(
            "spikard supervisor (pid %d): %d workers on %s:%d", os.getpid(), workers, host, port
        )
        supervisor.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for process in supervisor.workers.values():
            if process.poll() is None:
                process.kill()
                process.wait()
