"""The lifespan scope under real servers, and the examples served by uvicorn, hypercorn and
granian (one browserless round trip each)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from ..helpers import handshake_refusal, read_until, ws_connect
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
            async with ws_connect(server.ws_url("/ws/lobby?name=bob")) as bob:
                with anyio.fail_after(BOUND):
                    assert json.loads(await bob.recv())["members"] == ["ada", "bob"]
                    assert json.loads(await ada.recv())["type"] == "join"
            with anyio.fail_after(BOUND):  # bob's handler cleaned up: the room hears it
                left = json.loads(await ada.recv())
            assert (left["type"], left["name"], left["members"]) == ("leave", "bob", ["ada"])


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


async def _echo(url: str) -> None:
    async with ws_connect(url + "/echo") as socket:
        await socket.send("ping")
        assert await socket.recv() == "ping"


async def _json_rpc(url: str) -> None:
    async with ws_connect(url + "/rpc") as socket:
        await socket.send(
            json.dumps({"jsonrpc": "2.0", "method": "add", "params": [2, 3], "id": 1})
        )
        assert json.loads(await socket.recv()) == {"jsonrpc": "2.0", "result": 5, "id": 1}


async def _callbacks(url: str) -> None:
    async with ws_connect(url + "/secure?token=alice-token") as socket:
        await socket.send("whoami")
        assert await socket.recv() == "alice"
    refused = await handshake_refusal(url + "/secure?token=nope")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="spikard"'


async def _pipeline(url: str) -> None:
    async with ws_connect(url + "/shout") as socket:
        await socket.send("quiet")
        assert await socket.recv() == "QUIET"


async def _binary(url: str) -> None:
    from examples import binary

    async with ws_connect(url + "/records") as socket:
        await socket.send(binary.encode_request(binary.Op.REVERSE, 7, b"abc"))
        reply = binary.decode_response(await socket.recv())
        assert reply == binary.Reply(binary.Status.OK, 7, b"cba")
        await socket.send("text is refused")
        with pytest.raises(ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1003


ROUND_TRIPS = {
    "binary": _binary,
    "echo": _echo,
    "json_rpc": _json_rpc,
    "callbacks": _callbacks,
    "pipeline": _pipeline,
}


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # aiostream (pipeline) needs asyncio
@pytest.mark.parametrize("example", sorted(ROUND_TRIPS))
@pytest.mark.parametrize("kind", ["uvicorn", "hypercorn"])
async def test_websocket_examples(kind: str, example: str, tmp_path: Path) -> None:
    with serve(kind, f"examples.{example}:app", tmp_path) as server, anyio.fail_after(BOUND):
        await ROUND_TRIPS[example](f"ws://127.0.0.1:{server.port}")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("kind", ["uvicorn", "hypercorn"])
async def test_live_feed_example(kind: str, tmp_path: Path) -> None:
    """SSE fed by the broker through a subscription the app's lifespan started."""
    with serve(kind, "examples.live_feed:app", tmp_path) as server, anyio.fail_after(BOUND):
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
        async with stream:
            await stream.send(
                b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
            )
            assert b" 200 " in await read_until(stream, b"\r\n\r\n")
            async with httpx.AsyncClient(base_url=server.url, timeout=BOUND) as http:
                posted = await http.post("/say", content="hello feed")
                post_id = posted.json()["id"]
            received = await read_until(stream, b"hello feed")
        assert f"id: {post_id}".encode() in received
