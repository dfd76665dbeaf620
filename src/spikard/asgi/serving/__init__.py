"""spikard's server running a plain ASGI 3 application.

``python -m spikard module:app`` detects an ASGI callable and wraps it in an
:class:`ASGIApplication`; from code, ``Server(ASGIApplication(app))``. See
``docs/asgi-server.md``.
"""

from ._application import ASGIApplication, default_http_config, default_websocket_config
from ._detect import is_asgi_app
from ._lifespan import LifespanFailure, LifespanMode
from ._types import (
    ASGIApp,
    ASGIProtocolError,
    ClientDisconnectedError,
    Message,
    Receive,
    Scope,
    Send,
)

__all__ = [
    "ASGIApp",
    "ASGIApplication",
    "ASGIProtocolError",
    "ClientDisconnectedError",
    "LifespanFailure",
    "LifespanMode",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "default_http_config",
    "default_websocket_config",
    "is_asgi_app",
]
