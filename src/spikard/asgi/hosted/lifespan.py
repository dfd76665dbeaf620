"""The ASGI ``lifespan`` scope, and the check that something ran the app's lifespan.

An ASGI server runs the app's lifespan (:meth:`~spikard.Spikard.lifespan_context`: broker,
startup and shutdown hooks, ``lifespan=``) through the ``lifespan`` scope, in one task from
``lifespan.startup`` to ``lifespan.shutdown``. A host app (Starlette, FastAPI) does not
forward that scope to a mounted app: it runs ``async with spikard_app.lifespan_context():``
in its own lifespan instead. Either way the broker is running afterwards, which is how a
request tells that the lifespan ran (:func:`lifespan_ran`).
"""

from __future__ import annotations

import logging
import weakref
from contextlib import AsyncExitStack
from typing import Any

from .types import HostedApp, Receive, Scope, Send

__all__ = ["NOT_STARTED", "lifespan_ran", "run_lifespan"]

logger = logging.getLogger("spikard.asgi")

NOT_STARTED = (
    "the spikard app's lifespan has not run: nothing sent it an ASGI lifespan scope. Mounted "
    "in Starlette or FastAPI, run `async with spikard_app.lifespan_context():` inside the host "
    "app's lifespan; under a server, do not turn lifespan off (uvicorn --lifespan on)"
)
"""The error every request gets until the lifespan ran (logged once per app)."""

_told: weakref.WeakSet[Any] = weakref.WeakSet()


def lifespan_ran(app: HostedApp) -> bool:
    """True once the app's lifespan started; else log :data:`NOT_STARTED` (once) and False."""
    if app.broker.running:
        return True
    if app not in _told:
        _told.add(app)
        logger.error("%s", NOT_STARTED)
    return False


async def run_lifespan(app: HostedApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve the ``lifespan`` scope: the app's lifespan from startup to shutdown.

    A failing startup is reported with ``lifespan.startup.failed`` (the server then stops),
    a failing shutdown with ``lifespan.shutdown.failed``; both are logged with their
    traceback.
    """
    message = await receive()
    if message["type"] != "lifespan.startup":
        return
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(app.lifespan_context())
        except Exception as exc:
            logger.exception("the spikard app's startup failed")
            await send({"type": "lifespan.startup.failed", "message": _describe(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        while message["type"] != "lifespan.shutdown":
            message = await receive()
        try:
            await stack.aclose()
        except Exception as exc:
            logger.exception("the spikard app's shutdown failed")
            await send({"type": "lifespan.shutdown.failed", "message": _describe(exc)})
            return
    await send({"type": "lifespan.shutdown.complete"})


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
