"""A real browser (headless Chromium, driven over the DevTools protocol) chats with the example.

Skipped when no Chromium is installed; `.ci/run` installs Debian's ``chromium``.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import pytest
from examples import chat
from websockets.asyncio.client import ClientConnection, connect

pytestmark = [
    pytest.mark.parametrize("anyio_backend", ["asyncio"]),
    pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed"),
]

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]


@contextmanager
def chromium() -> Iterator[str]:
    """Start headless Chromium; yield its DevTools HTTP endpoint (``http://127.0.0.1:PORT``)."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stderr is not None
            for line in itertools.islice(process.stderr, 200):
                found = re.search(r"DevTools listening on ws://([^/]+)/", line)
                if found:
                    yield f"http://{found.group(1)}"
                    break
            else:
                pytest.fail("chromium did not start its DevTools endpoint")
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            assert process.stderr is not None
            process.stderr.close()


class Page:
    """The smallest DevTools client: evaluate JavaScript in one page."""

    def __init__(self, websocket: ClientConnection) -> None:
        self._websocket = websocket
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        request = {"id": message_id, "method": method, "params": params}
        await self._websocket.send(json.dumps(request))
        while True:
            reply = json.loads(await self._websocket.recv())
            if reply.get("id") == message_id:
                assert "error" not in reply, reply
                result: dict[str, Any] = reply["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def wait_for(self, expression: str) -> Any:
        """Poll until ``expression`` is truthy (bounded by the caller's fail_after)."""
        while not (value := await self.evaluate(expression)):
            await anyio.sleep(0.05)
        return value


@asynccontextmanager
async def open_page(devtools: str, url: str) -> AsyncIterator[Page]:
    request = urllib.request.Request(f"{devtools}/json/new?{url}", method="PUT")
    reply = await anyio.to_thread.run_sync(lambda: urllib.request.urlopen(request).read())
    target = json.loads(reply)
    async with connect(target["webSocketDebuggerUrl"], max_size=None) as websocket:
        yield Page(websocket)


async def next_json(ws: ClientConnection, **expected: str) -> dict[str, Any]:
    """The next JSON message whose fields match ``expected`` (earlier ones are skipped)."""
    while True:
        data: dict[str, Any] = json.loads(await ws.recv())
        if all(data.get(key) == value for key, value in expected.items()):
            return data


async def test_a_browser_chats_with_a_websockets_client() -> None:
    with anyio.fail_after(45), chromium() as devtools:
        async with (
            chat.app.test_server() as server,
            connect(server.ws_url("/ws/lobby?name=bob")) as bob,
        ):
            assert (await next_json(bob))["type"] == "join"  # bob's own join notice
            async with open_page(devtools, server.url + "/") as page:
                await page.wait_for("document.getElementById('join') !== null")
                await page.evaluate(
                    "document.getElementById('name').value = 'alice';"
                    "document.getElementById('join').requestSubmit(); true"
                )
                joined = await next_json(bob)
                assert joined["type"] == "join"
                assert joined["name"] == "alice"
                assert sorted(joined["members"]) == ["alice", "bob"]

                await bob.send(json.dumps({"text": "hello from python"}))
                line = await page.wait_for(
                    "[...document.querySelectorAll('#log li')]"
                    ".map(li => li.textContent).find(t => t.includes('hello from python'))"
                )
                assert line == "bob:hello from python"

                await page.evaluate(
                    "document.getElementById('text').value = 'hello from chromium';"
                    "document.getElementById('send').requestSubmit(); true"
                )
                message = await next_json(bob, type="message", name="alice")
                assert message["text"] == "hello from chromium"

                await page.evaluate("document.getElementById('leave').click(); true")
                left = await next_json(bob, type="leave")
                assert left["name"] == "alice"
                status = await page.wait_for(
                    "document.getElementById('status').textContent.includes('1000')"
                    " && document.getElementById('status').textContent"
                )
                assert "Disconnected (code 1000" in status
