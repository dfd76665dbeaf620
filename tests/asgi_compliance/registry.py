"""What the apps under test observed, kept per key so that a test can ask for it over HTTP.

A test passes a fresh key (``?key=...``) to the route it exercises; the app appends what it
saw under that key; the test polls ``GET /events?key=...`` (bounded) to read it back.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import httpx

_SEEN: defaultdict[str, list[str]] = defaultdict(list)
_MAX_KEYS = 10_000


def record(key: str, what: str) -> None:
    if len(_SEEN) < _MAX_KEYS or key in _SEEN:
        _SEEN[key].append(what)


def seen(key: str) -> list[str]:
    return list(_SEEN.get(key, []))


def seen_json(key: str) -> bytes:
    return json.dumps(seen(key)).encode()


def wait_for(client: httpx.Client, key: str, count: int = 1, timeout: float = 5.0) -> list[str]:
    """Poll the app's ``/events`` until ``count`` entries are under ``key`` (or time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        events: list[Any] = client.get("/events", params={"key": key}).json()
        if len(events) >= count or time.monotonic() > deadline:
            return [str(event) for event in events]
        time.sleep(0.05)
