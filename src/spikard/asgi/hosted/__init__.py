"""A spikard app served by an ASGI server (uvicorn, hypercorn, granian) or mounted in another app.

``Spikard.__call__`` is :func:`serve_asgi`: an app is an ASGI 3 application. See
``docs/asgi.md`` for what each server offers and which settings apply.
"""

from .entry import serve_asgi
from .websocket import ASGIWebSocket

__all__ = ["ASGIWebSocket", "serve_asgi"]
