"""A real browser (headless Chromium, driven over the DevTools protocol) against spikard.

It chats with the chat example over WebSocket, and follows a Server-Sent Events stream
through its reconnections. Skipped when no Chromium is installed; `.ci/run` installs
Debian's ``chromium``.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import pytest
from examples import chat
from websockets.asyncio.client import ClientConnection, connect

from spikard import (
    EventSourceResponse,
    HTMLResponse,
    Request,
    Response,
    ServerSentEvent,
    Spikard,
    StreamingResponse,
)
from spikard.sse import encode_event

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
        page = Page(websocket)
        # A new target starts on about:blank (an opaque origin, so fetches would send
        # ``Origin: null``); wait until the requested document itself has loaded.
        loaded = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        await page.wait_for(loaded)
        yield page


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


# ---- Server-Sent Events: EventSource reconnects by itself and resumes by Last-Event-ID ----

SSE_EVENTS: list[tuple[str, str | None, str]] = [
    ("1", "tick", "one"),
    ("2", None, "two lines\nsecond line"),
    ("3", "tick", "crlf\r\nthen cr\rthen the end"),
    ("4", None, ""),  # empty data is still an event
    ("5", "tick", "ünïcödé ✓ 🎉"),
    ("6", None, "  two leading spaces"),
    ("7", "tick", "seven"),
    ("8", None, ": not a comment"),
    ("9", "tick", "nine"),
]
"""(id, event type or None for ``message``, data): three per connection."""
SEGMENT = 3
RETRY_MS = 300

sse_app = Spikard()
sse_connections: list[tuple[str | None, float]] = []
"""(Last-Event-ID the browser sent, when the stream started), one per connection."""
sse_ended: list[float] = []
"""When each stream's generator finished (its ``finally`` ran)."""


class DropConnection(Exception):
    """Raised by the second stream: the server then aborts the connection mid-body."""


@sse_app.get("/")
async def sse_page(request: Request) -> HTMLResponse:
    return HTMLResponse(SSE_PAGE)


@sse_app.get("/stream")
async def sse_stream(request: Request) -> Response:
    sse_connections.append((request.last_event_id, time.monotonic()))
    known = [event_id for event_id, _, _ in SSE_EVENTS]
    start = known.index(request.last_event_id) + 1 if request.last_event_id in known else 0
    if start >= len(SSE_EVENTS):
        return Response(status_code=204)  # "no more": EventSource stops reconnecting
    segment = start // SEGMENT

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            for index in range(start, start + SEGMENT):
                event_id, event_type, data = SSE_EVENTS[index]
                retry = RETRY_MS if index == 0 else None
                yield ServerSentEvent(data, event=event_type, id=event_id, retry=retry)
                if segment == 2:
                    await anyio.sleep(0.2)  # ping comments (every 0.05 s) go out meanwhile
        finally:
            sse_ended.append(time.monotonic())

    if segment != 1:
        return EventSourceResponse(events(), ping=0.05)

    async def cut_mid_event() -> AsyncIterator[bytes]:
        """The segment's events, then half of one, then the server aborts the connection."""
        async for event in events():
            yield encode_event(event)
        yield b"id: 7\ndata: never dispatched\n"  # no blank line: the browser drops it
        await anyio.sleep(0.2)  # let the bytes reach the browser before the abort
        sse_ended[-1] = time.monotonic()
        raise DropConnection  # no last chunk: the TCP connection is aborted

    return StreamingResponse(cut_mid_event(), media_type="text/event-stream")


SSE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sse</title></head><body><script>
window.seen = []; window.opens = 0; window.errors = 0; window.finished = false;
const source = new EventSource("/stream");
const record = (event) => seen.push([event.type, event.data, event.lastEventId]);
source.addEventListener("tick", record);
source.addEventListener("message", record);
source.onopen = () => { opens += 1; };
source.onerror = () => {
  errors += 1;
  if (source.readyState === EventSource.CLOSED) { finished = true; }
};
</script></body></html>
"""


async def test_event_source_reconnects_after_retry_and_resumes_from_last_event_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sse_connections.clear()
    sse_ended.clear()
    with anyio.fail_after(20), chromium() as devtools:
        async with sse_app.test_server() as server, open_page(devtools, server.url + "/") as page:
            await page.wait_for("window.finished")
            state = await page.evaluate("({seen, opens, errors, state: source.readyState})")
    expected = [
        [event_type or "message", data.replace("\r\n", "\n").replace("\r", "\n"), event_id]
        for event_id, event_type, data in SSE_EVENTS
    ]
    # every event once, in order, named and multi-line; the half event never
    assert state["seen"] == expected
    assert state["opens"] == 3  # the fourth request got 204: no stream, no more retries
    assert state["errors"] == 4  # end of stream, dropped connection, end of stream, 204
    assert state["state"] == 2  # EventSource.CLOSED
    # The browser resumed each time from the last id it saw (a clean end and a cut alike;
    # the id of the half event was never taken).
    assert [last_id for last_id, _ in sse_connections] == [None, "3", "6", "9"]
    assert len(sse_ended) == 3
    for ended, (_, reconnected) in zip(sse_ended, sse_connections[1:], strict=True):
        # ...after the server's retry (300 ms), not the 3 s default
        assert RETRY_MS / 1000 * 0.8 <= reconnected - ended < 2.5
    assert "a streamed response body" in caplog.text  # the cut was the server's abort
