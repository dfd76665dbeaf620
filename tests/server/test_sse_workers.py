"""Server-Sent Events across worker processes: ``python -m spikard examples.live_feed:app
--workers 2`` on one Redis. Streams served by either worker get every post, whichever worker
took it, with the same ids; a stream resumes on the other worker from its Last-Event-ID;
SIGTERM ends every stream with its last chunk.

Which worker serves a connection is read from /proc (the worker whose socket has our
client port), as in ``tests/pubsub/test_workers.py``.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest

from ..app.test_sse import Event, SSEClient
from ..pubsub.conftest import RedisServer, free_port
from ..pubsub.test_workers import serving_pid, worker_pids
from . import Served, serve_subprocess

pytestmark = [
    pytest.mark.parametrize("anyio_backend", ["asyncio"]),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]
APP = "examples.live_feed:app"
ATTEMPTS = 64
"""Connections tried before giving up on reaching a given worker (SO_REUSEPORT hashes)."""


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A fresh ``redis-server`` on a free loopback port, killed at teardown."""
    pytest.importorskip("redis", reason="redis-py is not installed (pip install -e '.[redis]')")
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(binary, free_port(), tmp_path)
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


@asynccontextmanager
async def live_feed_workers(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Served, set[int]]]:
    """The supervisor and its two workers, both listening; yields it and the worker pids."""
    monkeypatch.setenv("SPIKARD_LIVE_FEED_REDIS", redis_url)  # how the workers learn it
    async with serve_subprocess(["--workers", "2"], app=APP, drain=True) as served:
        with anyio.fail_after(20):  # two interpreters start and connect to Redis
            while served.output.count(b"listening on") < 2:
                await anyio.sleep(0.05)
            while len(pids := worker_pids(served.process.pid)) < 2:
                await anyio.sleep(0.05)
        yield served, pids


async def worker_of(client: SSEClient, pids: set[int]) -> int:
    """The pid of the worker that accepted ``client``'s connection (bounded: 5 s)."""
    local_port = client.stream.extra(anyio.abc.SocketAttribute.local_port)
    with anyio.fail_after(5):
        while (pid := serving_pid(local_port, pids)) is None:
            await anyio.sleep(0.01)
    return pid


async def connect_to(port: int, pids: set[int], wanted: int | None) -> tuple[SSEClient, int]:
    """A fresh connection served by ``wanted`` (any worker if None), nothing sent yet."""
    for _ in range(ATTEMPTS):
        client = SSEClient(await anyio.connect_tcp("127.0.0.1", port))
        pid = await worker_of(client, pids)
        if wanted is None or pid == wanted:
            return client, pid
        await client.aclose()
    raise AssertionError(f"{ATTEMPTS} connections and none reached worker {wanted}")


async def listen(
    port: int, pids: set[int], wanted: int | None, last_event_id: str | None = None
) -> tuple[SSEClient, int]:
    client, pid = await connect_to(port, pids, wanted)
    headers = {} if last_event_id is None else {"last-event-id": last_event_id}
    await client.send_request("GET", "/events", headers)
    await client.read_head()
    assert client.status == 200
    return client, pid


async def post(port: int, pids: set[int], wanted: int, text: str) -> str:
    """POST ``text`` to /say through worker ``wanted``; return the post's id."""
    client, _ = await connect_to(port, pids, wanted)
    async with client:
        await client.send_request(
            "POST", "/say", {"content-type": "text/plain; charset=utf-8"}, text.encode()
        )
        await client.read_head()
        assert client.status == 200
        await client.read_to_end()
        post_id: str = json.loads(client.body)["id"]
        return post_id


async def test_streams_on_both_workers_get_every_post_and_resume_anywhere(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_feed_workers(redis_url, monkeypatch) as (served, pids):
        port = served.port
        first_pid, second_pid = sorted(pids)
        streams: list[tuple[SSEClient, int]] = []
        try:
            with anyio.fail_after(30):
                # Two streams on each worker.
                for wanted in (first_pid, second_pid, first_pid, second_pid):
                    streams.append(await listen(port, pids, wanted))
                assert {pid for _, pid in streams} == pids  # both workers serve streams

                # One post through each worker: every stream gets both, in order, same ids.
                sent = [
                    (
                        await post(port, pids, first_pid, "from the first worker"),
                        "from the first worker",
                    ),
                    (
                        await post(port, pids, second_pid, "from the second worker"),
                        "from the second worker",
                    ),
                ]
                expected = [Event("message", text, post_id) for post_id, text in sent]
                for client, _ in streams:
                    assert [await client.next_event() for _ in sent] == expected

                # A stream on the first worker leaves, misses a post, and comes back on the
                # second worker with its Last-Event-ID: it gets exactly what it missed.
                leaver, _ = streams.pop(0)
                await leaver.aclose()
                missed_id = await post(port, pids, first_pid, "missed")
                back, _ = await listen(port, pids, second_pid, last_event_id=sent[-1][0])
                streams.append((back, second_pid))
                assert await back.next_event() == Event("message", "missed", missed_id)
                # And from an older id, on the first worker: everything after it.
                old, _ = await listen(port, pids, first_pid, last_event_id=sent[0][0])
                streams.append((old, first_pid))
                assert [await old.next_event() for _ in range(2)] == [
                    Event("message", "from the second worker", sent[1][0]),
                    Event("message", "missed", missed_id),
                ]

            # SIGTERM: the supervisor passes it on; every stream ends with its last chunk.
            served.process.send_signal(signal.SIGTERM)
            with anyio.fail_after(15):  # the workers' shutdown_timeout is 10 s
                for client, _ in streams:
                    await client.read_to_end()
                    assert client.clean
                assert await served.process.wait() == 0
        finally:
            for client, _ in streams:
                await client.aclose()
