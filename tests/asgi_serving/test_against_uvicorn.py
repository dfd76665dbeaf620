"""Differential: the same bare ASGI app under uvicorn (h11, websockets) and under spikard.

What a client sees must agree: status, headers (but for framing, ``date`` and ``server``),
bodies, the scope the app is given, WebSocket handshakes, refusals and close codes. Known,
deliberate differences are listed in ``_FRAMING`` (spikard sends ``content-length`` for a
body sent whole; uvicorn chunks it).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from ..server import ROOT, serve_subprocess

APP = "tests.asgi_serving.reference_app:app"
_FRAMING = {"content-length", "transfer-encoding", "date", "server", "connection"}
pytestmark = pytest.mark.parametrize("anyio_backend", ["asyncio"])


async def observe(port: int) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        for method, path in (
            ("GET", "/"),
            ("HEAD", "/"),
            ("GET", "/raise"),
            ("GET", "/return"),
            ("GET", "/stream"),
            ("POST", "/echo"),
        ):
            response = await http.request(method, path, content=b"x" * 70000)
            headers = sorted((k, v) for k, v in response.headers.multi_items() if k not in _FRAMING)
            seen[f"{method} {path}"] = (response.status_code, headers, response.content)
        scope = (await http.get("/scope", params={"a": "1 2"})).json()
        odd = (await http.get("/scope/%2Fa%20b/%C3%A9?q=%C3%A9&x")).json()
        seen["odd path"] = {k: odd[k] for k in ("path", "raw_path", "query_string")}
        big = await http.post("/echo", content=b"y" * (5 * 1024 * 1024))
        seen["big upload"] = (big.status_code, len(big.content))
        expect = await http.post("/echo", content=b"z" * 100, headers={"expect": "100-continue"})
        seen["expect"] = (expect.status_code, expect.content)
        try:
            await http.get("/raise-after")
            seen["raise-after"] = "complete"
        except httpx.HTTPError as exc:  # the body was cut: never taken as complete
            seen["raise-after"] = type(exc).__name__
    seen["scope"] = {k: v for k, v in scope.items() if k not in ("client", "server", "headers")}
    seen["scope headers"] = [name for name, _ in scope["headers"]]
    for path in ("/ws/close-before", "/ws/deny", "/ws/raise", "/ws/return"):
        try:
            async with connect(f"ws://127.0.0.1:{port}{path}", max_size=None):
                seen[path] = "opened"  # pragma: no cover - a failure to compare
        except InvalidStatus as refused:
            seen[path] = (refused.response.status_code, refused.response.headers.get("x-a"))
    offer = [Subprotocol("p1"), Subprotocol("p2")]
    async with connect(f"ws://127.0.0.1:{port}/ws/x?q=1", subprotocols=offer, max_size=None) as ws:
        await ws.send("scope")
        ws_scope = json.loads(await ws.recv())
        seen["ws scope"] = {k: v for k, v in ws_scope.items() if k not in ("client", "server")}
        seen["subprotocol"] = ws.subprotocol
        await ws.send(b"\x00bin")
        seen["bytes"] = await ws.recv()
        await ws.send("m" * (4 * 1024 * 1024))
        seen["big message"] = len(await ws.recv())
        await ws.send("close")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        seen["close"] = (ws.close_code, ws.close_reason)
    return seen


async def under_uvicorn() -> dict[str, Any]:
    with anyio.fail_after(20):
        async with await anyio.open_process(
            [sys.executable, "-m", "uvicorn", APP, "--port", "0", "--http", "h11"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        ) as process:
            assert process.stderr is not None
            output = b""
            while b"Uvicorn running on http://127.0.0.1:" not in output:
                output += await process.stderr.receive()
            port = int(output.split(b"127.0.0.1:")[1].split(b" ")[0])
            try:
                return await observe(port)
            finally:
                process.send_signal(signal.SIGTERM)
                await process.wait()


async def test_spikard_answers_as_uvicorn_does() -> None:
    pytest.importorskip("uvicorn")
    reference = await under_uvicorn()
    async with serve_subprocess(app=APP, drain=True) as served:
        ours = await observe(served.port)
    assert reference["raise-after"] != "complete"
    assert reference["GET /"][1].count(("set-cookie", "a=1")) == 1
    for key, expected in reference.items():
        assert ours[key] == expected, key
