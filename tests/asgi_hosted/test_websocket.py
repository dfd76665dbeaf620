"""WebSocket routes of a spikard app under real ASGI servers, with real clients.

uvicorn runs everything; hypercorn and granian (``any_server``) the core of it. What differs
between servers is the server's doing (``docs/asgi.md``): hypercorn reports every close by
the client as 1006, and granian sends no extra headers with the accept.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from ..helpers import handshake_refusal, read_until, upgrade_request, ws_connect
from .servers import Served

pytestmark = pytest.mark.anyio

BOUND = 10.0


async def recorded(server: Served) -> list[str]:
    """What the app recorded (cleanup, hooks), from its /events route."""
    async with httpx.AsyncClient(base_url=server.url, timeout=BOUND) as client:
        return list((await client.get("/events")).json())


async def wait_recorded(server: Served, *entries: str, before: list[str]) -> str:
    """Poll /events until one of ``entries`` was recorded once more than in ``before``."""
    with anyio.fail_after(BOUND):
        while True:
            now = await recorded(server)
            for candidate in entries:
                if now.count(candidate) > before.count(candidate):
                    return candidate
            await anyio.sleep(0.05)


async def closed_with(socket: Any) -> tuple[int, str]:
    """Read until the server closes; the code and reason of its close frame."""
    with anyio.fail_after(BOUND):
        try:
            while True:
                await socket.recv()
        except ConnectionClosed as closed:
            frame = closed.rcvd
    assert frame is not None
    return frame.code, frame.reason


# ---- every server -------------------------------------------------------------------------


async def test_echo_text_and_binary(any_server: Served) -> None:
    async with ws_connect(any_server.ws_url("/echo")) as socket:
        for message in ("hello", b"\x00\xffbytes", "é" * 500):
            await socket.send(message)
            with anyio.fail_after(BOUND):
                assert await socket.recv() == message


async def test_callback_shim_and_its_refusal(any_server: Served) -> None:
    async with ws_connect(any_server.ws_url("/callbacks?token=ok")) as socket:
        await socket.send("hi")
        with anyio.fail_after(BOUND):
            assert await socket.recv() == "cb:hi"
    response = await handshake_refusal(any_server.ws_url("/callbacks?token=no"))
    assert response.status_code == 401
    assert response.body == b"bad token"


async def test_handshake_control(any_server: Served) -> None:
    url = any_server.ws_url("/game/7")
    async with ws_connect(
        url,
        subprotocols=["game.v1", "game.v2"],
        additional_headers={"authorization": "Bearer letmein"},
    ) as socket:
        assert socket.subprotocol == "game.v2"
        if any_server.kind != "granian":  # granian drops the accept's extra headers
            assert socket.response.headers["x-table"] == "7"
        await socket.send("e4")
        with anyio.fail_after(BOUND):
            assert await socket.recv() == "table 7: e4"
    refused = await handshake_refusal(url)
    assert (refused.status_code, refused.body) == (401, b"who are you?")
    assert refused.headers["x-why"] == "no token"
    wrong = await handshake_refusal(url, additional_headers={"authorization": "Bearer letmein"})
    assert (wrong.status_code, wrong.body) == (400, b"this server speaks game.v2")


async def test_close_code_and_reason_from_the_handler(any_server: Served) -> None:
    async with ws_connect(any_server.ws_url("/close")) as socket:
        await socket.send("abc")
        assert await closed_with(socket) == (4003, "bye now")


async def test_a_handler_that_raises_closes_1011(any_server: Served) -> None:
    async with ws_connect(any_server.ws_url("/boom")) as socket:
        await socket.send("x")
        with anyio.fail_after(BOUND):
            assert await socket.recv() == "about to fail"
        assert await closed_with(socket) == (1011, "internal error")


async def test_max_message_size_still_applies(any_server: Served) -> None:
    async with ws_connect(any_server.ws_url("/echo")) as socket:
        await socket.send("small")
        with anyio.fail_after(BOUND):
            assert await socket.recv() == "small"
        await socket.send("x" * 1025)  # the app's max_message_size is 1024
        code, reason = await closed_with(socket)
        assert code == 1009
        assert "max_message_size" in reason


async def test_a_handler_that_never_reads_stops_when_the_client_leaves(
    any_server: Served,
) -> None:
    before = await recorded(any_server)
    async with ws_connect(any_server.ws_url("/ticker")) as socket:
        with anyio.fail_after(BOUND):
            assert [await socket.recv() for _ in range(3)] == ["0", "1", "2"]
    await wait_recorded(any_server, "ticker stopped", before=before)


async def test_unknown_path_is_refused_404(any_server: Served) -> None:
    response = await handshake_refusal(any_server.ws_url("/no/such/socket"))
    assert response.status_code == 404


# ---- uvicorn (both WebSocket implementations where it matters) ------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # aiostream operators need asyncio
async def test_aiostream_pipe(uvicorn_server: Served) -> None:
    async with ws_connect(uvicorn_server.ws_url("/shout")) as socket:
        await socket.send(b"skipped: binary")
        await socket.send("quiet")
        with anyio.fail_after(BOUND):
            assert await socket.recv() == "QUIET"


async def test_typed_messages(uvicorn_server: Served) -> None:
    async with ws_connect(uvicorn_server.ws_url("/typed")) as socket:
        await socket.send(json.dumps({"x": 2, "y": 3}))
        with anyio.fail_after(BOUND):
            assert json.loads(await socket.recv()) == {"sum": 5}
        await socket.send(json.dumps({"x": "two"}))
        code, _ = await closed_with(socket)
        assert code == 1007


@pytest.mark.parametrize("kind", ["uvicorn", "wsproto", "legacy"])
async def test_the_clients_close_code_reaches_the_handler(
    kind: str, request: pytest.FixtureRequest
) -> None:
    server: Served = request.getfixturevalue(f"{kind}_server")
    before = await recorded(server)
    async with ws_connect(server.ws_url("/peer-close")) as socket:
        await socket.send("x")
        with anyio.fail_after(BOUND):
            assert await socket.recv() == "got it"
        close = getattr(socket, "aclose", None) or socket.close  # the trio client's name
        await close(4001, "see you")
    await wait_recorded(server, "peer closed 4001 see you", before=before)


async def test_cleanup_ran_before_the_close_returns(uvicorn_server: Served) -> None:
    before = await recorded(uvicorn_server)
    async with ws_connect(uvicorn_server.ws_url("/echo")) as socket:
        await socket.send("x")
        with anyio.fail_after(BOUND):
            await socket.recv()
    now = await recorded(uvicorn_server)
    assert now.count("echo closed 1000") == before.count("echo closed 1000") + 1


async def test_broker_fans_out_to_sockets(uvicorn_server: Served) -> None:
    async with (
        ws_connect(uvicorn_server.ws_url("/room/blue")) as alice,
        ws_connect(uvicorn_server.ws_url("/room/blue")) as bob,
    ):
        await anyio.sleep(0.2)  # both subscribed
        await alice.send("from alice")
        with anyio.fail_after(BOUND):
            assert await alice.recv() == "from alice"
            assert await bob.recv() == "from alice"
        async with httpx.AsyncClient(base_url=uvicorn_server.url, timeout=BOUND) as client:
            assert (
                await client.get("/publish/blue", params={"text": "over http"})
            ).status_code == 200
        with anyio.fail_after(BOUND):
            assert await bob.recv() == "over http"


@pytest.mark.parametrize("kind", ["wsproto", "legacy"])
async def test_other_uvicorn_implementations(kind: str, request: pytest.FixtureRequest) -> None:
    server: Served = request.getfixturevalue(f"{kind}_server")
    async with ws_connect(
        server.ws_url("/game/1"),
        subprotocols=["game.v2"],
        additional_headers={"authorization": "Bearer letmein"},
    ) as socket:
        assert socket.response.headers["x-table"] == "1"
        await socket.send("go")
        with anyio.fail_after(BOUND):
            assert await socket.recv() == "table 1: go"
    refused = await handshake_refusal(server.ws_url("/game/1"))
    assert (refused.status_code, refused.body) == (401, b"who are you?")


@pytest.mark.parametrize("kind", ["uvicorn", "wsproto"])
async def test_client_that_vanishes_is_seen(kind: str, request: pytest.FixtureRequest) -> None:
    """A client that drops TCP without a close frame: the input ends for the handler.

    uvicorn reports it as a ``websocket.disconnect`` with 1005 (both implementations), which
    the handler sees as it is; 1006 where a server says so.
    """
    server: Served = request.getfixturevalue(f"{kind}_server")
    before = await recorded(server)
    with anyio.fail_after(BOUND):
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
        await stream.send(upgrade_request("/echo", port=server.port))
        assert b" 101 " in await read_until(stream, b"\r\n\r\n")
        await stream.aclose()
    await wait_recorded(server, "echo closed 1005", "echo closed 1006", before=before)


async def test_connection_closed_error_for_the_client_after_1011(uvicorn_server: Served) -> None:
    async with ws_connect(uvicorn_server.ws_url("/boom")) as socket:
        await socket.send("x")
        await socket.recv()
        with anyio.fail_after(BOUND), pytest.raises(ConnectionClosedError):
            await socket.recv()


async def test_many_concurrent_sockets(uvicorn_server: Served) -> None:
    replies: list[int] = []

    async def client(n: int) -> None:
        async with ws_connect(uvicorn_server.ws_url("/echo")) as socket:
            for i in range(20):
                await socket.send(f"{n}:{i}")
                assert await socket.recv() == f"{n}:{i}"
            replies.append(n)

    with anyio.fail_after(BOUND * 2):
        async with anyio.create_task_group() as task_group:
            for n in range(40):
                task_group.start_soon(client, n)
    assert sorted(replies) == list(range(40))
