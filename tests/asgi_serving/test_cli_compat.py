"""uvicorn's command-line options on ``python -m spikard module:app`` (issue 12).

Each test starts the real CLI in a subprocess against the small ASGI apps below (this module
is also the target the subprocess imports) and checks what a client sees.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import httpx
import pytest

from spikard import Spikard
from spikard.asgi.serving import Receive, Scope, Send
from spikard.server.cli import build_parser, resolve_app

from ..server import serve_subprocess

THIS = "tests.asgi_serving.test_cli_compat"
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the client side


def parse(*options: str) -> argparse.Namespace:
    return build_parser().parse_args(["m:app", *options])


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every request with the parts of its scope the tests look at, as JSON."""
    if scope["type"] != "http":
        return
    shown: dict[str, Any] = {
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "root_path": scope["root_path"],
    }
    body = json.dumps(shown).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def get(path: str, *options: str) -> httpx.Response:
    """Serve this module's ``app`` with ``options`` and GET ``path`` from it once."""
    async with serve_subprocess(options, app=f"{THIS}:app") as served:
        url = f"http://127.0.0.1:{served.port}{path}"
        async with httpx.AsyncClient() as http:
            return await http.get(url)


@asyncio_only
async def test_root_path_is_in_every_scope_and_its_path() -> None:
    scope = (await get("/items/1", "--root-path", "/api/")).json()
    assert scope == {"path": "/api/items/1", "raw_path": "/api/items/1", "root_path": "/api"}


@asyncio_only
async def test_without_root_path_the_scope_has_none() -> None:
    scope = (await get("/items/1")).json()
    assert scope == {"path": "/items/1", "raw_path": "/items/1", "root_path": ""}


def test_root_path_is_for_plain_asgi_apps() -> None:
    with pytest.raises(SystemExit, match="--root-path configures the server for a plain ASGI"):
        resolve_app(Spikard(), "m:app", parse("--root-path", "/api"))
