"""Run N worker processes on one port (SO_REUSEPORT) and supervise them.

Each worker is ``python -m spikard TARGET --reuse-port ...``: a whole server with its own
event loop, app instance and broker, and the kernel spreads new connections across them.
The supervisor restarts a worker that dies (with a pause when workers keep crashing), and on
SIGINT/SIGTERM passes the signal on, so every worker closes its sockets with 1001 and drains;
a second signal kills the workers at once. SIGHUP is passed on to every worker, each of which
reloads its TLS certificate files (and stops nothing). Workers that share state across
processes need a broker that does too (``Spikard(broker="redis://...")``).
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

from .bind import bind_error, format_address, probe_bind

__all__ = ["RETIRED_EXIT", "STARTUP_FAILED_EXIT", "run_workers"]

logger = logging.getLogger("spikard.workers")

STARTUP_FAILED_EXIT = 3
"""The exit status of a worker that could not start (port or startup hook): restarting it
would fail again, so the supervisor stops and exits with 1 instead."""

RETIRED_EXIT = 4
"""The exit status of a worker that stopped after its ``--limit-max-requests``: the
supervisor starts a new one at once, without counting a crash."""

_POLL_SECONDS = 0.2
_RESTART_WINDOW = 30.0
_MAX_RESTARTS_IN_WINDOW = 5
_RESTART_PAUSE = 5.0


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _worker_setup() -> None:  # pragma: no cover - runs in the child before exec
    """Make a worker die with its supervisor (Linux), whatever killed the supervisor."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class _Supervisor:
    def __init__(self, command: list[str], count: int, grace: float) -> None:
        self.command = command
        self.count = count
        self.grace = grace
        self.workers: dict[int, subprocess.Popen[bytes]] = {}
        self.restart_at: dict[int, float] = {}
        self.crashes: list[float] = []
        self.signals = 0
        self.failed = False
        """A worker could not start: every worker is being stopped, the exit status is 1."""

    def spawn(self, index: int) -> None:
        env = dict(os.environ, SPIKARD_WORKER=str(index))
        # Each worker gets its own session: a terminal's Ctrl-C reaches only the supervisor,
        # which passes it on once (a worker that got it twice would skip its drain).
        self.workers[index] = subprocess.Popen(
            self.command, env=env, start_new_session=True, preexec_fn=_worker_setup
        )
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

    def on_hangup(self, signum: int, frame: FrameType | None) -> None:
        """SIGHUP: pass it on; each worker reloads its TLS certificate.

        A worker starting at this moment reads the new files anyway.
        """
        alive = [p for p in self.workers.values() if p.poll() is None]
        logger.info("SIGHUP received: passing it to %d worker(s)", len(alive))
        for process in alive:
            process.send_signal(signal.SIGHUP)

    def _stop(self, deadline: float) -> bool:
        """One step of stopping; True once every worker has exited."""
        alive = [p for p in self.workers.values() if p.poll() is None]
        if not alive:
            return True
        if time.monotonic() > deadline:
            logger.warning("workers did not stop in %.0f s: killing them", self.grace)
            for process in alive:
                process.kill()
        return False

    def _supervise(self) -> None:
        """One step of supervision: notice exits, schedule and perform restarts."""
        now = time.monotonic()
        for index, process in list(self.workers.items()):
            code = process.poll()
            if code is None or index in self.restart_at:
                continue
            if code == STARTUP_FAILED_EXIT:
                logger.critical(
                    "worker %d (pid %d) could not start (see its line above): stopping",
                    index,
                    process.pid,
                )
                self.failed = True
                for other in self.workers.values():
                    if other.poll() is None:
                        other.send_signal(signal.SIGTERM)
                return
            if code == RETIRED_EXIT:  # a planned exit, no crash: replaced at once
                logger.info(
                    "worker %d (pid %d) served its --limit-max-requests; starting a new one",
                    index,
                    process.pid,
                )
                self.restart_at[index] = now
                continue
            level = logging.WARNING if code == 0 else logging.ERROR
            logger.log(
                level, "worker %d (pid %d) exited with %s; restarting", index, process.pid, code
            )
            self.crashes = [t for t in self.crashes if now - t < _RESTART_WINDOW]
            self.crashes.append(now)
            pause = _RESTART_PAUSE if len(self.crashes) > _MAX_RESTARTS_IN_WINDOW else 0.0
            if pause:
                logger.error("workers keep crashing: next restart in %.0f s", pause)
            self.restart_at[index] = now + pause
        for index, when in list(self.restart_at.items()):
            if now >= when:
                del self.restart_at[index]
                self.spawn(index)

    def run(self) -> int:
        for index in range(self.count):
            self.spawn(index)
        stop_deadline: float | None = None
        while True:
            time.sleep(_POLL_SECONDS)
            if self.signals or self.failed:
                stop_deadline = stop_deadline or time.monotonic() + self.grace
                if self._stop(stop_deadline):
                    return 1 if self.failed else 0
            else:
                self._supervise()


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
    reuse_port: bool = False,
) -> None:
    """Serve ``target`` (``module:attribute``) from ``workers`` processes sharing one port.

    Blocks until SIGINT/SIGTERM has stopped every worker; SIGHUP is passed on to the
    workers (each reloads its TLS certificate). ``port=0`` picks a free port
    first, so that all workers share it. The port must be free when the supervisor starts,
    unless ``reuse_port`` is set: then the workers may join other servers that listen on it
    with SO_REUSEPORT (such as the previous release during a rolling restart).

    Raises:
        ValueError: ``workers`` is less than 1.
        SystemExit: with status 1 when the port cannot be bound (checked before any worker
            starts) or a worker could not start; one CRITICAL log line says why.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
        )
    try:
        if port == 0:
            port = _free_port(host)
        # Without SO_REUSEPORT the probe fails on any listener, one of another spikard
        # supervisor's workers included: a busy port is an error unless sharing was asked for.
        probe_bind(host, port, reuse_port=reuse_port)
    except (OSError, OverflowError) as exc:  # BindError, or _free_port's own failure
        logger.critical("%s", bind_error(host, port, exc))
        raise SystemExit(1) from None
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
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, supervisor.on_hangup)
    try:
        logger.info(
            "spikard supervisor (pid %d): %d workers on %s",
            os.getpid(),
            workers,
            format_address(host, port),
        )
        status = supervisor.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for process in supervisor.workers.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    if status:
        raise SystemExit(status)
