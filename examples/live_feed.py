"""A live feed over Server-Sent Events: the browser listens with EventSource, posts over HTTP.

::

    python -m spikard examples.live_feed:app      # then open http://127.0.0.1:8000

- ``GET /`` serves a small page: an ``EventSource`` on ``/events`` and a form that posts.
- ``POST /say`` (form field or plain-text body) publishes a line to everyone listening.
- ``GET /events`` streams the feed: each post is an event whose ``id`` counts the posts this
  process has seen, so a browser that reconnects (``EventSource`` does on its own) sends
  ``Last-Event-ID`` and gets what it missed from the recent history first.

Posts go through ``app.broker`` (in memory here; with a Redis broker, every worker's
listeners get every post, as in ``examples/chat.py``).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

from spikard import HTMLResponse, Request, ServerSentEvent, Spikard

app = Spikard()
CHANNEL = "live-feed"
HISTORY = 100
history: deque[tuple[int, str]] = deque(maxlen=HISTORY)
"""The recent posts with their ids, for listeners that reconnect."""
posted = 0


@app.get("/")
async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


@app.post("/say")
async def say(request: Request) -> dict[str, int]:
    global posted
    body = await request.text()
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = parse_qs(body).get("text", [""])[0]
    text = body.strip()[:500]
    if not text:
        return {"id": posted}
    posted += 1
    history.append((posted, text))
    await app.broker.publish(CHANNEL, json.dumps({"id": posted, "text": text}))
    return {"id": posted}


@app.sse("/events")
async def events(request: Request) -> AsyncIterator[ServerSentEvent]:
    seen = int(request.last_event_id or 0) if (request.last_event_id or "").isdigit() else 0
    async with app.broker.subscribe(CHANNEL) as subscription:
        for post_id, text in list(history):  # what a reconnecting browser missed
            if post_id > seen:
                seen = post_id
                yield ServerSentEvent(text, id=str(post_id))
        async for message in subscription:
            post = json.loads(message.message.as_text() or "{}")
            if post["id"] > seen:
                seen = post["id"]
                yield ServerSentEvent(post["text"], id=str(post["id"]))


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
