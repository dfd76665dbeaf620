"""Middleware on a WebSocket handshake: the handler's answer passes through the middleware.

With middleware registered, a WebSocket session runs on a :class:`HandshakeGate` wrapped
around the real connection. When the handler accepts (or rejects), the gate does not answer
the client yet: it hands the pending answer to the middleware chain as a :class:`Response`
(status 101 with the handler's extra headers, or the rejection) and waits. What the chain
returns is what the client gets: the same 101 response object, perhaps with more headers,
accepts; any other response rejects the handshake with it (the handler's ``accept()`` then
raises :class:`~spikard.errors.ConnectionClosed`). A middleware that answers without calling
``call_next`` rejects the handshake before the handler runs.

Bounds: the gate waits for the chain only while the chain runs (a middleware's own awaits
bound it); the chain waits for the handler's decision, which the session always reaches (a
handler that returns, raises or is cancelled is accepted or rejected by the session runner),
or for the session's end.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping

import anyio

from ..connection.contract import (
    AnsweredCallback,
    Deadline,
    EndedCallback,
    Waiter,
    WebSocketConnection,
)
from ..connection.state import ConnectionState
from ..errors import ConnectionClosedError
from ..messages import CloseCode, WebSocketMessage
from ..responses import PlainTextResponse, Response

__all__ = ["HandshakeGate", "UpgradeResponse", "reject_with"]

logger = logging.getLogger("spikard.websocket")


class UpgradeResponse(Response):
    """The pending ``101 Switching Protocols`` a middleware sees for an accepted handshake.

    Headers set on it go out with the 101 (one value per name).
    """


class HandshakeGate(WebSocketConnection):
    """A connection whose handshake answer is decided by the middleware chain."""

    __slots__ = ("_answer", "_answered", "_decided", "_decision", "_inner", "config", "request")

    def __init__(self, inner: WebSocketConnection) -> None:
        self._inner = inner
        self.request = inner.request
        self.config = inner.config
        self._decided = anyio.Event()
        self._decision: Response | None = None
        self._answered = anyio.Event()
        self._answer: Response | None = None

    # ---- the middleware side -----------------------------------------------------------

    async def decision(self) -> Response:
        """Wait for the handler's answer: an :class:`UpgradeResponse` or the rejection."""
        await self._decided.wait()
        if self._decision is None:  # the session ended without answering (client gone)
            return PlainTextResponse("Client Closed Request", 400)
        return self._decision

    def answer(self, response: Response) -> None:
        """Release the handler with the chain's final response."""
        self._answer = response
        self._answered.set()

    def session_ended(self) -> None:
        """The session is over; a chain still waiting for a decision stops waiting."""
        self._decided.set()

    async def _decide(self, pending: Response) -> Response:
        self._decision = pending
        self._decided.set()
        await self._answered.wait()
        assert self._answer is not None
        return self._answer

    # ---- the contract: handshake ---------------------------------------------------------

    async def accept(
        self, subprotocol: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Hand the 101 to the middleware; send what it returns (101: accept, else refuse)."""
        pending = UpgradeResponse(status_code=101, headers=dict(headers or {}))
        final = await self._decide(pending)
        if final is pending and final.status_code == 101:
            await self._inner.accept(subprotocol, dict(final.headers))
            return
        await self._reject_with(final)
        raise ConnectionClosedError(CloseCode.ABNORMAL_CLOSURE, "handshake rejected by middleware")

    async def reject(
        self,
        status_code: int = 403,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Hand the refusal to the middleware; send the response it returns."""
        pending = Response(body or b"", status_code, dict(headers or {}))
        if body is not None and "content-type" not in pending.headers:
            pending.headers["content-type"] = "text/plain; charset=utf-8"
        final = await self._decide(pending)
        await self._reject_with(final)

    async def _reject_with(self, response: Response) -> None:
        await reject_with(self._inner, response)

    # ---- everything else is the real connection's ------------------------------------------

    @property
    def on_ended(self) -> EndedCallback | None:
        """The real connection's ``on_ended``."""
        return self._inner.on_ended

    @on_ended.setter
    def on_ended(self, callback: EndedCallback | None) -> None:
        self._inner.on_ended = callback

    @property
    def supports_answer_hook(self) -> bool:  # type: ignore[override]
        """The real connection's ``supports_answer_hook``."""
        return self._inner.supports_answer_hook

    @property
    def on_answered(self) -> AnsweredCallback | None:
        """The real connection's ``on_answered``."""
        return self._inner.on_answered

    @on_answered.setter
    def on_answered(self, callback: AnsweredCallback | None) -> None:
        self._inner.on_answered = callback

    @property
    def state(self) -> ConnectionState:
        """The real connection's ``state``."""
        return self._inner.state

    def time(self) -> float:
        """The real connection's clock."""
        return self._inner.time()

    def new_event(self) -> Waiter:
        """An event of the real connection's loop."""
        return self._inner.new_event()

    def move_on_after(self, delay: float) -> Deadline:
        """A deadline on the real connection's loop."""
        return self._inner.move_on_after(delay)

    @property
    def accepted(self) -> bool:
        """The real connection's ``accepted``."""
        return self._inner.accepted

    @property
    def rejected(self) -> bool:
        """The real connection's ``rejected``."""
        return self._inner.rejected

    @property
    def subprotocols(self) -> tuple[str, ...]:
        """The real connection's ``subprotocols``."""
        return self._inner.subprotocols

    @property
    def subprotocol(self) -> str | None:
        """The real connection's ``subprotocol``."""
        return self._inner.subprotocol

    @property
    def close_code(self) -> int | None:
        """The real connection's ``close_code``."""
        return self._inner.close_code

    @property
    def close_reason(self) -> str | None:
        """The real connection's ``close_reason``."""
        return self._inner.close_reason

    @property
    def peer_close(self) -> tuple[int, str] | None:
        """The real connection's ``peer_close``."""
        return self._inner.peer_close

    @property
    def failure(self) -> tuple[int, str] | None:
        """The real connection's ``failure``."""
        return self._inner.failure

    @property
    def queued_messages(self) -> int:
        """The real connection's ``queued_messages``."""
        return self._inner.queued_messages

    @property
    def supports_ping(self) -> bool:
        """The real connection's ``supports_ping``."""
        return self._inner.supports_ping

    async def receive(self) -> WebSocketMessage:
        """The real connection's ``receive``."""
        return await self._inner.receive()

    def receive_nowait(self) -> WebSocketMessage | None:
        """The real connection's ``receive_nowait``."""
        return self._inner.receive_nowait()

    async def send(self, message: WebSocketMessage) -> None:
        """The real connection's ``send``."""
        await self._inner.send(message)

    def discard_incoming(self) -> None:
        """The real connection's ``discard_incoming``."""
        self._inner.discard_incoming()

    async def ping(self, payload: bytes | None = None) -> Awaitable[object]:
        """The real connection's ``ping``."""
        return await self._inner.ping(payload)

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """The real connection's ``close``."""
        await self._inner.close(code, reason)

    async def wait_closed(self) -> None:
        """The real connection's ``wait_closed``."""
        await self._inner.wait_closed()


async def reject_with(connection: WebSocketConnection, response: Response) -> None:
    """Refuse the handshake on ``connection`` with ``response`` (a 4xx or 5xx; else 500)."""
    status = response.status_code
    if not 400 <= status <= 599:
        logger.error(
            "a WebSocket handshake to %s can only be refused with 4xx or 5xx, not %d; "
            "answering 500",
            connection.request.path,
            status,
        )
        await connection.reject(500)
        return
    await connection.reject(status, response.body, dict(response.headers))
