"""The ASGI lifespan under spikard's server: startup, state in every scope, failures, modes."""

from __future__ import annotations

import logging

import pytest

from spikard.asgi.serving import ASGIApplication, LifespanFailure, Receive, Scope, Send

from .apps import EVENTS, starlette_app
from .serving import client, serve


class LifespanApp:
    """Records lifespan events; ``startup`` says how startup answers."""

    def __init__(self, startup: str = "complete") -> None:
        self.startup = startup
        self.seen: list[str] = []
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            self.seen.append(message["type"])
            if self.startup == "raise":
                raise RuntimeError("no lifespan here")
            if self.startup == "return":
                return
            if self.startup == "failed":
                await send({"type": "lifespan.startup.failed", "message": "no database"})
                return
            scope["state"]["db"] = "connected"
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            self.seen.append(message["type"])
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def test_startup_state_reaches_every_scope_and_shutdown_runs() -> None:
    app = LifespanApp()
    async with serve(app) as running, client(running) as http:
        assert app.seen == ["lifespan.startup"]
        await http.get("/")
        await http.get("/")
    assert app.seen == ["lifespan.startup", "lifespan.shutdown"]
    first, second = app.scopes
    assert first["state"] == second["state"] == {"db": "connected"}
    first["state"]["mine"] = 1
    assert "mine" not in second["state"]  # each scope has its own copy


async def test_starlette_lifespan_state() -> None:
    EVENTS.clear()
    async with serve(starlette_app) as running, client(running) as http:
        assert EVENTS == ["startup"]
        scope = (await http.get("/scope/x")).json()
    assert scope["state"] == ["greeting"]
    assert EVENTS == ["startup", "shutdown"]


async def test_startup_failure_is_fatal() -> None:
    app = LifespanApp("failed")
    with pytest.raises(LifespanFailure, match="no database"):
        async with serve(app):
            pytest.fail("served despite a failed startup")  # pragma: no cover


async def test_the_context_raises_the_failure_itself() -> None:
    adapter = ASGIApplication(LifespanApp("failed"))
    with pytest.raises(LifespanFailure, match="lifespan startup failed: no database"):
        async with adapter.lifespan_context():
            pytest.fail("entered despite a failed startup")  # pragma: no cover


@pytest.mark.parametrize("startup", ["raise", "return"])
async def test_on_requires_lifespan(startup: str) -> None:
    with pytest.raises(LifespanFailure, match=startup[:5]):
        async with serve(LifespanApp(startup), lifespan="on"):
            pytest.fail("served without lifespan")  # pragma: no cover


@pytest.mark.parametrize("startup", ["raise", "return"])
async def test_auto_goes_on_without_lifespan(
    startup: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = LifespanApp(startup)
    async with serve(app) as running, client(running) as http:
        assert (await http.get("/")).text == "ok"
    assert app.scopes[0]["state"] == {}
    assert [r for r in caplog.records if "does not support lifespan" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_off_never_sends_lifespan() -> None:
    app = LifespanApp()
    async with serve(app, lifespan="off") as running, client(running) as http:
        await http.get("/")
    assert app.seen == []
    assert app.scopes[0]["state"] == {}  # as under uvicorn: always there


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="lifespan must be"):
        ASGIApplication(LifespanApp(), lifespan="maybe")  # type: ignore[arg-type]
