"""A live feed over Server-Sent Events: the browser listens with EventSource, posts over HTTP.

::

    python -m spikard examples.live_feed:app      # then open http://127.0.0.1:8000
    SPIKARD_LIVE_FEED_REDIS=redis://127.0.0.1:6379/0 \\
        python -m spikard examples.live_feed:app --workers 2

- ``GET /`` serves a small page: an ``EventSource`` on ``/events`` and a form that posts.
- ``POST /say`` (form field or plain-text body) publishes a line to everyone listening and
  answers ``{"id": ...}``, the post's event id.
- ``GET /events`` streams the feed, the recent posts first. Each event's ``id`` names its
  post, so a browser that reconnects (``EventSource`` does on its own) sends
  ``Last-Event-ID`` and gets exactly what it missed, on whichever worker it lands.

Posts travel only through ``app.broker`` (in memory by default; Redis when
``SPIKARD_LIVE_FEED_REDIS`` is set, which is how every worker process learns it). Each
process keeps one subscription that records the posts, in the order the broker delivers
them, in a bounded history; listeners stream from that history. Redis delivers a channel's
messages to every subscriber in the same order, so every worker's history is the same
sequence, and an id handed out by one worker resumes the stream on another. Post ids are
unique across processes (a random prefix per process and a counter), never compared as
numbers. A listener that falls behind by more than the history skips what was dropped.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs

import anyio
import anyio.abc

from spikard import (
    BrokerUnavailable,
    HTMLResponse,
    JSONResponse,
    Request,
    ServerSentEvent,
    Spikard,
)

logger = logging.getLogger("examples.live_feed")
CHANNEL = "live-feed"
HISTORY = 100
MAX_POST = 500
"""Longest post, in characters."""


@dataclass(frozen=True, slots=True)
class Post:
    """One post as this process received it from the broker."""

    seq: int
    """Its position in this process's feed (the order the broker delivered it)."""
    id: str
    """Its event id, the same in every process."""
    text: str


history: deque[Post] = deque(maxlen=HISTORY)
"""The recent posts, oldest first, for listeners that join or reconnect."""
_received = 0
"""Posts recorded so far in this process: the ``seq`` of the next one."""
_arrived: anyio.Event | None = None
"""Set, then replaced, each time a post is recorded (listeners wait on it)."""
_ID_PREFIX = secrets.token_hex(4)
_posted = 0


def _record(post_id: str, text: str) -> None:
    global _received, _arrived
    history.append(Post(_received, post_id, text))
    _received += 1
    arrived, _arrived = _arrived, anyio.Event()
    if arrived is not None:
        arrived.set()


async def _record_posts(*, task_status: anyio.abc.TaskStatus[None]) -> None:
    """Record every post the broker delivers; ends when the broker closes."""
    async with app.broker.subscribe(CHANNEL, max_backlog=HISTORY) as subscription:
        task_status.started()  # subscribed: no post published from now on is missed
        async for message in subscription:
            try:
                post = json.loads(message.message.as_text() or "")
                _record(str(post["id"]), str(post["text"]))
            except (ValueError, KeyError, TypeError):
                logger.warning("ignored a message on %r that is not a post", CHANNEL)


@asynccontextmanager
async def _feed(app: Spikard) -> AsyncIterator[None]:
    """For the server's life: the recorder runs (the broker is started before, closed after)."""
    global _arrived
    _arrived = anyio.Event()
    async with anyio.create_task_group() as task_group:
        await task_group.start(_record_posts)
        yield
        task_group.cancel_scope.cancel()


app = Spikard(lifespan=_feed, broker=os.environ.get("SPIKARD_LIVE_FEED_REDIS") or None)


@app.get("/")
async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


@app.post("/say")
async def say(request: Request) -> JSONResponse:
    global _posted
    body = await request.text()
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = parse_qs(body).get("text", [""])[0]
    text = body.strip()[:MAX_POST]
    if not text:
        return JSONResponse({"error": "empty post"}, 400)
    _posted += 1
    post_id = f"{_ID_PREFIX}-{_posted}"
    try:
        await app.broker.publish(CHANNEL, json.dumps({"id": post_id, "text": text}))
    except BrokerUnavailable:
        return JSONResponse({"error": "the feed is unavailable; try again"}, 503)
    return JSONResponse({"id": post_id})


def _first_to_send(last_event_id: str | None) -> int:
    """The ``seq`` to stream from: after ``last_event_id``, else all of the history."""
    if last_event_id is not None:
        for post in history:
            if post.id == last_event_id:
                return post.seq + 1
    # A new listener, or an id this process no longer (or never) had: the history we have.
    return history[0].seq if history else _received


@app.sse("/events")
async def events(request: Request) -> AsyncIterator[ServerSentEvent]:
    position = _first_to_send(request.last_event_id)
    while True:
        arrived = _arrived  # taken before reading the history: a later post sets it
        assert arrived is not None, "the app's lifespan is not running"
        for post in [post for post in history if post.seq >= position]:
            yield ServerSentEvent(post.text, id=post.id)
            position = post.seq + 1
        await arrived.wait()


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>spikard live feed</title>
<style>body{font:16px system-ui;margin:2em auto;max-width:40em}#feed{min-height:10em}</style>
</head><body>
<h1>Live feed</h1>
<p id="status">connecting...</p>
<ol id="feed"></ol>
<form id="form"><input name="text" id="text" autocomplete="off" autofocus>
<button>Post</button></form>
<script>
const feed = document.getElementById("feed"), status = document.getElementById("status");
const source = new EventSource("/events");
source.onopen = () => { status.textContent = "live"; };
source.onerror = () => { status.textContent = "reconnecting..."; };
source.onmessage = (event) => {
  const item = document.createElement("li");
  item.textContent = event.data;
  item.dataset.id = event.lastEventId;
  feed.appendChild(item);
};
document.getElementById("form").onsubmit = async (event) => {
  event.preventDefault();
  const input = document.getElementById("text");
  await fetch("/say", {method: "POST", body: new URLSearchParams({text: input.value})});
  input.value = "";
};
</script></body></html>
"""
