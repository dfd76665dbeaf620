"""Telling a plain ASGI 3 callable from other objects (for the CLI)."""

from __future__ import annotations

import inspect

__all__ = ["is_asgi_app"]


def is_asgi_app(app: object) -> bool:
    """True for an async callable taking ``(scope, receive, send)`` (an ASGI 3 app).

    A coroutine function, or an object whose ``__call__`` is one (Starlette, FastAPI), with
    three positional parameters (or ``*args``). A class is never an app (ASGI 2 style).
    """
    if isinstance(app, type) or not callable(app):
        return False
    plain = inspect.isfunction(app) or inspect.ismethod(app)
    call: object = app if plain else type(app).__call__
    if not inspect.iscoroutinefunction(call):
        return False
    try:
        parameters = list(inspect.signature(app).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    return len(positional) == 3 or (variadic and len(positional) < 3)
