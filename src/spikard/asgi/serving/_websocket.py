"""One WebSocket served by an ASGI application: ``websocket.*`` events over the contract.

The session speaks to the connection only through
:class:`~spikard.connection.contract.WebSocketConnection`, so every server feature under it
(keepalive pings, limits, permessage-deflate, the close handshake's bounds, the access log)
applies as it does to spikard's own handlers.

- ``receive`` says ``websocket.connect`` first; after ``websocket.accept`` it returns each
  message the client sent (read only as the application asks: the connection's bounded
  queue then stops reading), and ``websocket.disconnect`` with the close code once the
  input is over (again on every later call).
- ``send``: ``websocket.accept`` (subprotocol, headers), ``websocket.send`` (text or bytes;
  returns once the transport took the frame), ``websocket.close`` (code, reason; before
  accept it refuses the handshake with 403), and the denial extension's
  ``websocket.http.response.start``/``.body`` (any status, headers and body, instead of the
  handshake). A message out of order raises :class:`~._types.ASGIProtocolError` (logged once)
  and ends the connection (500 before accept, close 1011 after).
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable

from ...connection.contract import WebSocketConnection
from ...connection.deadline import Deadline
from ...connection.events import Waiter
from ...connection.state import ConnectionState
from ...errors import ConnectionClosed
from ...messages import CloseCode, MessageType, new_message, validate_close_code
from ...requests import Request
from ...responses import PlainTextResponse, Response
from ._calls import start_call
from ._http import AppResponse, _header_fields
from ._scope import websocket_scope
from ._types import ASGIProtocolError, CallHost, ClientDisconnectedError, Message, Scope

__all__ = ["WebSocketSession", "serve_websocket"]

logger = logging.getLogger("spikard.asgi")

_BYTES = (bytes, bytearray)
_MAX_DENIAL_BODY = 1024 * 1024
"""Largest body of a ``websocket.http.response`` the server holds for the denial."""


class _Phase(enum.Enum):
    CONNECTING = "connecting"
    """The handshake is not answered yet."""
    DENYING = "denying"
    """``websocket.http.response.start`` came; the body follows."""
    REFUSED = "refused"
    """The handshake was refused (close before accept, or the denial response)."""
    OPEN = "open"
    """Accepted."""
    CLOSED = "closed"
    """The application sent ``websocket.close`` after accepting."""


class WebSocketSession:
    """The ``receive``/``send`` pair of one WebSocket; see the module docs.

    Args:
        connection: the connection, in ``CONNECTING``.
        scope: its ``websocket`` scope.
    """

    __slots__ = (
        "_answered",
        "_connect_sent",
        "_deadline",
        "_denial",
        "_denial_fields",
        "_denial_size",
        "_denial_status",
        "_disconnect",
        "_phase",
        "app_done",
        "cancel",
        "connection",
        "done",
        "ended",
        "failed",
        "input_over",
        "protocol_error",
        "response",
        "scope",
        "shutdown_code",
        "timed_out",
    )

    def __init__(self, connection: WebSocketConnection, scope: Scope) -> None:
        self.connection = connection
        self.scope = scope
        self._phase = _Phase.CONNECTING
        self._connect_sent = False
        self._answered: Waiter | None = None
        """Made when the application waits in ``receive`` for its own answer."""
        self._deadline: Deadline | None = None
        """The server's wait for the application (see :func:`serve_websocket`)."""
        self._disconnect: Message | None = None
        self._denial_status = 0
        self._denial_fields: list[tuple[bytes, bytes]] = []
        self._denial: list[bytes] = []
        self._denial_size = 0
        self.response: Response | None = None
        """The HTTP answer instead of the handshake (denial, or 500); None otherwise."""
        self.done = connection.new_event()
        """Set when the server's handler may stop waiting for the application."""
        self.protocol_error: ASGIProtocolError | None = None
        self.cancel: Callable[[], object] | None = None
        """Cancels the application's task, once it runs."""
        self.shutdown_code: int | None = None
        """Set when the server shuts down: the close code open sockets get."""
        self.failed = False
        """The application raised."""
        self.app_done = False
        """The application returned (or raised)."""
        self.input_over = False
        """The connection's input is over (the client closed, left or failed)."""
        self.ended = False
        """The connection was over and the application had its grace to return."""
        self.timed_out = False
        """The handshake went unanswered for ``accept_timeout`` (logged already)."""

    @property
    def accepted(self) -> bool:
        """True once the application accepted the handshake."""
        return self._phase is _Phase.OPEN or self._phase is _Phase.CLOSED

    @property
    def answered(self) -> bool:
        """True once the handshake was accepted or refused."""
        return self._phase is not _Phase.CONNECTING and self._phase is not _Phase.DENYING

    # ---- receive ---------------------------------------------------------------------------

    async def receive(self) -> Message:
        """The next ``websocket.*`` event for the application."""
        if self._phase is not _Phase.OPEN or self._disconnect is not None or not self._connect_sent:
            event = await self._receive_not_open()
            if event is not None:
                return event
        try:
            message = await self.connection.receive()
        except ConnectionClosed as closed:
            return self._ended(closed.code, closed.reason)
        data = message.data
        if type(data) is str:
            return {"type": "websocket.receive", "text": data}
        return {"type": "websocket.receive", "bytes": data}

    async def _receive_not_open(self) -> Message | None:
        """``receive`` before the accept, after the end, or after ``websocket.close``.

        None: read the connection (the handshake was accepted).
        """
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        disconnect = self._disconnect
        if disconnect is not None:
            return disconnect
        if not self.answered:
            answered = self._answered
            if answered is None:
                answered = self._answered = self.connection.new_event()
            await answered.wait()
        if self._phase is _Phase.REFUSED:
            return self._ended(CloseCode.ABNORMAL_CLOSURE, "")
        return None

    def _ended(self, code: int, reason: str) -> Message:
        disconnect = self._disconnect = {
            "type": "websocket.disconnect",
            "code": code,
            "reason": reason,
        }
        return disconnect

    # ---- send ------------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """Take one ``websocket.*`` message of the application.

        Raises:
            ClientDisconnectedError: the connection is closed (the client left or closed).
            ASGIProtocolError: a message out of order (logged here, once).
        """
        kind = message.get("type")
        phase = self._phase
        if kind == "websocket.send":
            if phase is _Phase.CLOSED:
                raise ClientDisconnectedError("the WebSocket is closing")
            if phase is not _Phase.OPEN:
                raise self._broken(f"'websocket.send' {self._where()}")
            text = message.get("text")
            data = message.get("bytes")
            if text is not None and data is None and type(text) is str:
                outgoing = new_message(MessageType.TEXT, text)
            elif data is not None and text is None and isinstance(data, _BYTES):
                outgoing = new_message(MessageType.BINARY, bytes(data))
            else:
                raise self._broken("'websocket.send' without exactly one of 'text' and 'bytes'")
            try:
                await self.connection.send(outgoing)
            except ConnectionClosed:
                raise ClientDisconnectedError("the WebSocket is closed") from None
            return
        if kind == "websocket.accept":
            if phase is not _Phase.CONNECTING:
                raise self._broken(f"'websocket.accept' {self._where()}")
            await self._accept(message)
            return
        if kind == "websocket.close":
            await self._close(message)
            return
        if kind == "websocket.http.response.start":
            if phase is not _Phase.CONNECTING:
                raise self._broken(f"'websocket.http.response.start' {self._where()}")
            status = message.get("status")
            if type(status) is not int or not 100 <= status <= 999 or status == 101:
                raise self._broken(f"'websocket.http.response.start' with status {status!r}")
            self._denial_status = status
            self._denial_fields = _header_fields(message.get("headers", ()))
            self._phase = _Phase.DENYING
            return
        if kind == "websocket.http.response.body":
            if phase is not _Phase.DENYING:
                raise self._broken("'websocket.http.response.body' before its start")
            body = bytes(message.get("body", b""))
            self._denial_size += len(body)
            if self._denial_size > _MAX_DENIAL_BODY:
                raise self._broken(f"a denial response body over {_MAX_DENIAL_BODY} bytes")
            self._denial.append(body)
            if not message.get("more_body", False):
                fields = self._denial_fields
                body = b"".join(self._denial)
                self.response = AppResponse(self._denial_status, fields, body, head=False)
                self._refused()
            return
        raise self._broken(f"unexpected ASGI message {kind!r} in a WebSocket")

    async def _accept(self, message: Message) -> None:
        subprotocol = message.get("subprotocol")
        headers: dict[str, str] = {}
        for name, value in _header_fields(message.get("headers", ())):
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        if subprotocol is not None and subprotocol not in self.connection.subprotocols:
            raise self._broken(f"subprotocol {subprotocol!r}, which the client did not offer")
        try:
            await self.connection.accept(subprotocol, headers or None)
        except ValueError as exc:
            raise self._broken(f"'websocket.accept' that cannot be sent: {exc}") from None
        self._phase = _Phase.OPEN
        self._wake_answer()
        code = self.shutdown_code
        if code is not None:
            await self.connection.close(code, "server shutting down")

    async def _close(self, message: Message) -> None:
        phase = self._phase
        if phase is _Phase.CONNECTING:
            await self.connection.reject(403)
            self._refused()
            return
        if phase is not _Phase.OPEN:
            raise self._broken(f"'websocket.close' {self._where()}")
        code = message.get("code")
        reason = message.get("reason") or ""
        code = CloseCode.NORMAL_CLOSURE if code is None else code
        try:
            validate_close_code(code)
            if type(reason) is not str or len(reason.encode()) > 123:
                raise ValueError("the reason must be text of at most 123 bytes in UTF-8")
        except (TypeError, ValueError) as exc:
            raise self._broken(f"'websocket.close' that cannot be sent: {exc}") from None
        self._phase = _Phase.CLOSED
        await self.connection.close(code, reason)

    def _refused(self) -> None:
        self._phase = _Phase.REFUSED
        self._wake_answer()
        self.done.set()

    def _wake_answer(self) -> None:
        self.answer_noted()
        answered = self._answered
        if answered is not None:
            answered.set()

    def _where(self) -> str:
        return {
            _Phase.CONNECTING: "before 'websocket.accept'",
            _Phase.DENYING: "while sending a denial response",
            _Phase.REFUSED: "after the handshake was refused",
            _Phase.OPEN: "after 'websocket.accept'",
            _Phase.CLOSED: "after 'websocket.close'",
        }[self._phase]

    def _broken(self, what: str) -> ASGIProtocolError:
        error = ASGIProtocolError(f"the ASGI application sent {what}")
        if self.protocol_error is None:
            self.protocol_error = error
            logger.error("WebSocket %s: %s", self.connection.request.raw_path, error)
            self.done.set()  # the handler ends the connection for it
        return error

    # ---- the server's side -------------------------------------------------------------------

    async def finish(self) -> Response | None:
        """End the connection after the application returned (or broke the protocol).

        Returns:
            The HTTP response to send instead of the handshake, None when it was answered.
        """
        connection = self.connection
        phase = self._phase
        if phase is _Phase.REFUSED:
            return self.response
        if not self.answered:
            self._phase = _Phase.REFUSED
            self._wake_answer()
            if self.ended and not self.app_done:
                return None  # the client left before the answer: nothing to send
            if self.protocol_error is None and not self.failed and not self.timed_out:
                logger.error(
                    "the ASGI application returned without answering the WebSocket "
                    "handshake for %s",
                    connection.request.raw_path,
                )
            return PlainTextResponse("Internal Server Error", 500)
        if phase is _Phase.OPEN:
            self._phase = _Phase.CLOSED
            error = self.failed or self.protocol_error is not None
            code = CloseCode.INTERNAL_ERROR if error else CloseCode.NORMAL_CLOSURE
            await connection.close(code, "")
        state = connection.state
        if state is not ConnectionState.CLOSED and state is not ConnectionState.FAILING:
            await connection.wait_closed()  # bounded by close_timeout (the connection's timer)
        return None

    async def going_away(self, code: int) -> None:
        """The server shuts down: close an open socket with ``code``; later accepts too."""
        self.shutdown_code = code
        if self._phase is _Phase.OPEN:
            await self.connection.close(code, "server shutting down")

    # ---- the server's wait ------------------------------------------------------------------
    # One deadline bounds the server's wait for the application; it is moved, never replaced:
    # ``accept_timeout`` while the handshake is unanswered, none once it is answered, and
    # ``handler_grace`` from the moment the input is over (answered or not). Which of these
    # it was when it fires is read from ``input_over`` (then it was the grace).

    def wait_bounded(self) -> Deadline:
        """Bound the server's wait for the application (see the comment above)."""
        connection = self.connection
        deadline = self._deadline = connection.move_on_after(connection.config.accept_timeout)
        if connection.supports_answer_hook:
            connection.on_answered = self.answer_noted
        connection.on_ended = self.input_ended
        state = connection.state
        if state is ConnectionState.CLOSED or state is ConnectionState.FAILING:
            self.input_ended(connection.time())  # it ended before the handler ran
        return deadline

    def answer_noted(self) -> None:
        """The handshake was answered: the wait is bounded by the connection's end only."""
        deadline = self._deadline
        if deadline is not None and not self.input_over:
            deadline.deadline = math.inf

    def input_ended(self, now: float) -> None:
        """The input is over: the application gets ``handler_grace`` to return."""
        self.input_over = True
        deadline = self._deadline
        if deadline is not None:
            deadline.deadline = now + self.connection.config.handler_grace

    def wait_over(self, deadline: Deadline) -> None:
        """The server's wait ended: unhook it, and say why when the deadline stopped it."""
        connection = self.connection
        self._deadline = None
        connection.on_ended = None
        if connection.supports_answer_hook:
            connection.on_answered = None
        if not deadline.cancelled_caught:
            return
        if self.input_over:
            # The application may go on (its ``send`` then raises, its ``receive`` says
            # ``websocket.disconnect``); the server closes the transport meanwhile.
            self.ended = True
        elif not self.answered and not self.app_done:
            # It may have been authenticating: it is never accepted for it, but cancelled.
            timeout = connection.config.accept_timeout
            logger.warning(
                "the ASGI application did not answer the WebSocket handshake for %s within "
                "accept_timeout (%.3g s); answered 500",
                connection.request.raw_path,
                timeout,
            )
            self.timed_out = True
            cancel = self.cancel
            if cancel is not None:
                cancel()


async def serve_websocket(
    host: CallHost, request: Request, websocket: WebSocketConnection
) -> Response | None:
    """Serve the WebSocket ``websocket`` with the host's application.

    The application runs in a task of the host's group; this (the server's handler) waits
    until it is done, or the connection ended ``handler_grace`` ago, or the handshake went
    unanswered for ``accept_timeout`` (then the application is cancelled and the client
    gets 500, with one WARNING).
    """
    host.running()  # raises outside the adapter's lifespan, before anything is answered
    if host.over_limit():
        await websocket.reject(503, "Service Unavailable")
        return None
    scope = websocket_scope(
        request, websocket.subprotocols, host.server_address(), host.root_path, host.running_state
    )
    session = WebSocketSession(websocket, scope)
    if host.shutting_down:
        session.shutdown_code = host.shutdown_close_code
    host.track(session, True)
    try:
        deadline = session.wait_bounded()
        start_call(host, session, _run_websocket)
        try:
            with deadline:
                await session.done.wait()
        finally:
            session.wait_over(deadline)
        return await session.finish()
    except BaseException:
        cancel = session.cancel
        if cancel is not None:
            cancel()
        raise
    finally:
        host.track(session, False)


async def _run_websocket(host: CallHost, session: WebSocketSession) -> None:
    """Run the application; whatever it raises ends here (logged unless it was ours)."""
    host.call_started()
    try:
        await host.app(session.scope, session.receive, session.send)
    except ClientDisconnectedError:
        session.failed = True
    except Exception as exc:
        session.failed = True
        if exc is not session.protocol_error:
            logger.error(
                "exception in the ASGI application (WebSocket %s)",
                session.connection.request.raw_path,
                exc_info=exc,
            )
    finally:
        host.call_done()
        session.app_done = True
        session.done.set()
