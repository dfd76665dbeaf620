"""The lifespan scope under real servers, and the examples served by uvicorn, hypercorn and
granian (one browserless round trip each)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import httpx
import pytest

from ..helpers import ws_connect
from .servers import serve, stop
from .test_websocket import BOUND

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # one client is enough: the servers vary
@pytest.mark.parametrize("kind", ["uvicorn", "hypercorn", "granian"])
async def test_chat_example(kind: str, tmp_path: Path) -> None:
    with serve(kind, "examples.chat:app", tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=BOUND) as http:
            page = await http.get("/")
            assert page.status_code == 200
            assert "<html" in page.text.lower()
        async with ws_connect(server.ws_url("/ws/lobby?name=ada")) as ada:
            with anyio.fail_after(BOUND):
                joined = json.loads(await ada.recv())
                assert joined == {
                    "type": "join",
                    "room": "lobby",
                    "name": "ada",
                    "members": ["ada"],
                }
                await ada.send("hello room")
                said = json.loads(await ada.recv())
            assert said == {"type": "message", "room": "lobby", "name": "ada", "text": "hello room"}
            async with httpx.AsyncClient(base_url=server.url, timeout=BOUND) as http:
                assert (await http.get("/rooms")).json() == {"lobby": ["ada"]}


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("kind", ["uvicorn", "hypercorn"])
async def test_shutdown_hooks_run_when_the_server_stops(kind: str, tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    env = {"SPIKARD_ASGI_TEST_RECORD": str(record)}
    with serve(kind, "tests.asgi_hosted.apps:app", tmp_path, env=env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=BOUND) as http:
            assert (await http.get("/state")).json()["broker"] is True
        await anyio.to_thread.run_sync(stop, server.process)
    assert record.read_text(encoding="utf-8") == "shutdown hook ran"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("kind", ["uvicorn", "hypercorn"])
async def test_a_failing_startup_stops_the_server(kind: str, tmp_path: Path) -> None:
    with serve(kind, "tests.asgi_hosted.apps:failing", tmp_path, wait=False) as server:
        try:
            status = await anyio.to_thread.run_sync(server.process.wait, BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{kind} kept running:\n{server.output()}")
        output = server.output()
    if kind == "uvicorn":
        assert status != 0  # (hypercorn 0.18 exits 0 after a failed startup)
    assert "the database is not there" in output
