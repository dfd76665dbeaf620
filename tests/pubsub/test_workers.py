"""Two worker processes sharing one port and one Redis: one chat, whoever serves whom."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect

from .conftest import RedisServer, free_port

pytestmark = pytest.mark.parametrize("anyio_backend", ["asyncio"])
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def chat_workers(redis_server: RedisServer) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``python examples/chat.py --redis URL --workers 2`` on a free port."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "examples/chat.py",
            "--redis",
            redis_server.url,
            "--workers",
            "2",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def worker_pids(supervisor: int) -> set[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return {int(pid) for pid in children}


def serving_pid(client_port: int, pids: set[int]) -> int | None:
    """The worker whose socket is connected to our ``client_port`` (from /proc)."""
    inodes: dict[int, int] = {}
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        for link in links:
            if link.startswith("socket:["):
                inodes[int(link[8:-1])] = pid
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == client_port and int(fields[9]) in inodes:
            return inodes[int(fields[9])]
    return None


async def joined(port: int, name: str) -> ClientConnection:
    """Connect and wait for ``name``'s own join notice."""
    ws = await connect(f"ws://127.0.0.1:{port}/ws/lobby?name={name}")
    await next_event(ws, type="join", name=name)
    return ws


async def next_event(ws: ClientConnection, **expected: Any) -> dict[str, Any]:
    while True:
        event: dict[str, Any] = json.loads(await ws.recv())
        if all(event.get(k) == v for k, v in expected.items()):
            return event


async def wait_listening(port: int) -> None:
    with anyio.fail_after(20):
        while True:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.1)
                continue
            await stream.aclose()
            return


async def test_clients_on_different_workers_share_a_room(
    chat_workers: tuple[subprocess.Popen[bytes], int],
) -> None:
    supervisor, port = chat_workers
    await wait_listening(port)
    with anyio.fail_after(60):
        while len(pids := worker_pids(supervisor.pid)) < 2:
            await anyio.sleep(0.1)
        # SO_REUSEPORT spreads connections by hash: connect until both workers serve someone.
        by_worker: dict[int, ClientConnection] = {}
        sockets = []
        for index in range(64):
            ws = await joined(port, f"user{index}")
            sockets.append(ws)
            pid = serving_pid(ws.local_address[1], pids)
            if pid is not None:
                by_worker.setdefault(pid, ws)
            if len(by_worker) == 2:
                break
        assert len(by_worker) == 2, "every connection landed on one worker"
        first, second = by_worker.values()

        await first.send("across workers")
        event = await next_event(second, type="message", text="across workers")
        assert event["room"] == "lobby"

        # Kill the worker that serves `first`: the supervisor replaces it, `second` keeps
        # chatting, and a newcomer (on whichever worker) joins the same room.
        victim = next(pid for pid, ws in by_worker.items() if ws is first)
        os.kill(victim, signal.SIGKILL)
        while victim in (pids := worker_pids(supervisor.pid)) or len(pids) < 2:
            await anyio.sleep(0.1)
        newcomer = await joined(port, "late")
        await newcomer.send("after the restart")
        event = await next_event(second, type="message", text="after the restart")
        assert event["name"] == "late"
        await second.send("welcome back")
        assert (await next_event(newcomer, type="message", text="welcome back"))["name"]
        for ws in [newcomer, *sockets]:
            with anyio.move_on_after(2):
                await ws.close()
