"""The state of a WebSocket connection, and every transition it may take.

Rule: a connection's state changes only through :func:`next_state`, which looks the change
up in :data:`TRANSITIONS`; anything not in the table is a bug and raises. The states:

``CONNECTING``
    The handshake request arrived and is not answered yet. The driver keeps reading (a
    bounded amount) so that a client which leaves is noticed.
``OPEN``
    Accepted: messages flow both ways.
``CLOSING``
    Our close frame is out; the peer has ``close_timeout`` seconds to answer with its own,
    then the transport is aborted. Incoming messages are still read (and discarded by
    callers that no longer want them).
``FAILING``
    The peer broke the protocol (1002, 1007, 1009): nothing more is read, but the
    application may still send the replies to the messages before the bad frame; its next
    :meth:`close` sends the error's close frame instead of its own.
``CLOSED``
    Nothing more is read: the close handshake is complete, the peer left, the handshake was
    rejected, or the connection was aborted. What the application did not read yet stays
    readable; then it reads the end.

Events, and the states they lead to::

    CONNECTING --ACCEPT--> OPEN          CONNECTING --REJECT / PEER_LEFT / ABORT--> CLOSED
    OPEN --CLOSE_SENT--> CLOSING         OPEN --PEER_FAILED--> FAILING
    OPEN --PEER_CLOSED / PEER_LEFT / ABORT--> CLOSED
    CLOSING --PEER_CLOSED / PEER_FAILED / PEER_LEFT / ABORT--> CLOSED
    FAILING --CLOSE_SENT / PEER_LEFT / ABORT--> CLOSED

``CLOSED`` is final. The transport underneath is a separate matter: whoever owns it (the HTTP
connection) closes it once the application is done, within ``close_timeout``.
"""

from __future__ import annotations

import enum

__all__ = ["TRANSITIONS", "ConnectionState", "StateEvent", "next_state"]


class ConnectionState(enum.Enum):
    """Where a WebSocket connection is in its life (see the module docs)."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    FAILING = "failing"
    CLOSED = "closed"


class StateEvent(enum.Enum):
    """What moves a connection from one state to the next."""

    ACCEPT = "accept"
    """We sent 101 Switching Protocols."""
    REJECT = "reject"
    """We answered the handshake with an HTTP error."""
    CLOSE_SENT = "close sent"
    """We sent a close frame (our own, or the error close after the peer failed)."""
    PEER_CLOSED = "peer closed"
    """The peer's close frame arrived (as a reply to ours, or first: we echoed it)."""
    PEER_FAILED = "peer failed"
    """The peer broke the protocol."""
    PEER_LEFT = "peer left"
    """The input ended without a close frame (EOF, reset)."""
    ABORT = "abort"
    """We dropped the connection (timeout, stalled writes, server stopping)."""


_S = ConnectionState
_E = StateEvent

TRANSITIONS: dict[ConnectionState, dict[StateEvent, ConnectionState]] = {
    _S.CONNECTING: {
        _E.ACCEPT: _S.OPEN,
        _E.REJECT: _S.CLOSED,
        _E.PEER_LEFT: _S.CLOSED,
        _E.ABORT: _S.CLOSED,
    },
    _S.OPEN: {
        _E.CLOSE_SENT: _S.CLOSING,
        _E.PEER_FAILED: _S.FAILING,
        _E.PEER_CLOSED: _S.CLOSED,
        _E.PEER_LEFT: _S.CLOSED,
        _E.ABORT: _S.CLOSED,
    },
    _S.CLOSING: {
        _E.PEER_CLOSED: _S.CLOSED,
        _E.PEER_FAILED: _S.CLOSED,
        _E.PEER_LEFT: _S.CLOSED,
        _E.ABORT: _S.CLOSED,
    },
    _S.FAILING: {
        _E.CLOSE_SENT: _S.CLOSED,
        _E.PEER_LEFT: _S.CLOSED,
        _E.ABORT: _S.CLOSED,
    },
    _S.CLOSED: {},
}
"""For each state, the events it accepts and the state each leads to."""


def next_state(state: ConnectionState, event: StateEvent) -> ConnectionState:
    """The state ``event`` leads to from ``state``.

    Raises:
        RuntimeError: ``event`` cannot happen in ``state`` (a bug in the caller).
    """
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise RuntimeError(f"{event.value!r} cannot happen in state {state.value!r}") from None
