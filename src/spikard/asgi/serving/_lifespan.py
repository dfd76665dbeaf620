"""The ASGI ``lifespan`` protocol: startup before the port opens, shutdown after the drain.

``mode``: ``"on"`` requires the application to speak it (anything else is a startup
failure), ``"auto"`` (the default) goes on without it when the application raises or
returns at once on a ``lifespan`` scope, ``"off"`` never sends it. ``lifespan.startup.failed``
is fatal in both modes. The ``state`` dict the application fills at startup is shared into
every request's scope (a shallow copy each).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import anyio
import anyio.abc

from ._types import ASGI_VERSION, ASGIApp, ASGIProtocolError, Message

__all__ = ["Lifespan", "LifespanFailure", "LifespanMode"]

logger = logging.getLogger("spikard.asgi")

LifespanMode = Literal["auto", "on", "off"]


class LifespanFailure(RuntimeError):
    """The application's lifespan startup failed; ``str()`` says why in one line."""


class Lifespan:
    """Run ``app``'s lifespan in a task; see the module docs.

    Args:
        app: the ASGI application.
        mode: ``"auto"``, ``"on"`` or ``"off"``.
        state: the namespace the application's startup may fill.
        shutdown_timeout: seconds the shutdown may take before it is given up (and cut).
    """

    def __init__(
        self, app: ASGIApp, mode: LifespanMode, state: dict[str, Any], shutdown_timeout: float
    ) -> None:
        self._app = app
        self._mode = mode
        self._state = state
        self._shutdown_timeout = shutdown_timeout
        self._started = anyio.Event()
        self._stopped = anyio.Event()
        self._shutdown_requested = anyio.Event()
        self._startup_sent = False
        self._complete = False
        self._failure: str | None = None
        self._shutdown_failure: str | None = None
        self._error: BaseException | None = None
        self._returned = False
        self.running = False
        """True while the application's lifespan is in effect (startup completed)."""

    async def startup(self, tasks: anyio.abc.TaskGroup) -> None:
        """Send ``lifespan.startup`` and wait for its answer.

        Raises:
            LifespanFailure: the startup failed (or, with ``mode="on"``, the application
                does not speak the lifespan protocol).
        """
        if self._mode == "off":
            return
        tasks.start_soon(self._run)
        await self._started.wait()
        if self._failure is not None:
            raise LifespanFailure(f"lifespan startup failed: {self._failure}")
        if self._complete:
            self.running = True
            return
        error = self._error
        cause = f"raised {type(error).__name__}: {error}" if error is not None else "returned"
        if self._mode == "on":
            raise LifespanFailure(f"the ASGI application {cause} on lifespan startup")
        logger.info(
            "the ASGI application does not support lifespan (it %s); going on without it", cause
        )

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown``; wait for it at most ``shutdown_timeout`` seconds."""
        if not self.running:
            return
        self.running = False
        self._shutdown_requested.set()
        with anyio.move_on_after(self._shutdown_timeout) as scope:
            await self._stopped.wait()
        if scope.cancelled_caught:
            logger.warning(
                "the ASGI lifespan shutdown did not finish in %.1f s: cut", self._shutdown_timeout
            )
        elif self._shutdown_failure is not None:
            logger.error("ASGI lifespan shutdown failed: %s", self._shutdown_failure)
        elif self._error is not None:
            logger.error("exception in the ASGI lifespan shutdown", exc_info=self._error)

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": dict(ASGI_VERSION), "state": self._state}
        try:
            await self._app(scope, self._receive, self._send)
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:
            self._error = exc
            if self._complete and not self._shutdown_requested.is_set():
                logger.error("exception in the ASGI lifespan task", exc_info=exc)
        finally:
            self._returned = True
            self._started.set()
            self._stopped.set()

    async def _receive(self) -> Message:
        if not self._startup_sent:
            self._startup_sent = True
            return {"type": "lifespan.startup"}
        await self._shutdown_requested.wait()
        return {"type": "lifespan.shutdown"}

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete" and not self._started.is_set():
            self._complete = True
            self._started.set()
        elif kind == "lifespan.startup.failed" and not self._started.is_set():
            self._failure = str(message.get("message", "")) or "no reason given"
            self._started.set()
        elif kind == "lifespan.shutdown.complete" and self._shutdown_requested.is_set():
            self._stopped.set()
        elif kind == "lifespan.shutdown.failed" and self._complete:
            # Also when the lifespan task is cancelled before the shutdown was asked.
            self._shutdown_failure = str(message.get("message", "")) or "no reason given"
            self._stopped.set()
        else:
            raise ASGIProtocolError(f"the ASGI application sent {kind!r} out of order")
