"""What the uvicorn-based fan-out peers share: arguments, and N workers on one port.

A peer started with ``--workers N`` (N > 1) re-runs its own module N times with
``--workers 1 --reuse-port``, so N uvicorn processes bind the port with SO_REUSEPORT and the
kernel spreads connections over them, as ``python -m spikard --workers N`` does for spikard.
SIGTERM/SIGINT are passed on to the workers; the parent exits when they all have.

Every peer runs uvicorn like the suite's ``uvicorn`` echo peer (uvloop, ``http="h11"``,
``ws="wsproto"``, no access log, logging at WARNING, backlog 4096), with keepalive pings off.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
from types import FrameType
from typing import Any, Literal

__all__ = ["parse_args", "serve"]


def parse_args(description: str) -> argparse.Namespace:
    """``--host``, ``--port``, ``--redis URL`` (else in-memory), ``--workers N``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", metavar="URL", help="pub/sub through Redis (else in-memory)")
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    parser.add_argument("--reuse-port", action="store_true", help="set SO_REUSEPORT")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def _listen(host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


def _run_workers(module: str, args: argparse.Namespace) -> None:
    command = [sys.executable, "-m", module, "--host", args.host, "--port", str(args.port)]
    command += ["--workers", "1", "--reuse-port"]
    if args.redis:
        command += ["--redis", args.redis]
    workers = [subprocess.Popen(command) for _ in range(args.workers)]

    def forward(signum: int, frame: FrameType | None) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for worker in workers:
        worker.wait()


def serve(
    module: str,
    app: Any,
    args: argparse.Namespace,
    *,
    lifespan: Literal["on", "off"] = "off",
) -> None:
    """Serve the ASGI ``app`` with uvicorn, or start ``--workers`` copies of ``module``."""
    if args.workers > 1:
        _run_workers(module, args)
        return
    import uvicorn

    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="h11",
        ws="wsproto",
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        lifespan=lifespan,
        access_log=False,
        log_level="warning",
        backlog=4096,
    )
    uvicorn.Server(config).run(sockets=[_listen(args.host, args.port, args.reuse_port)])
