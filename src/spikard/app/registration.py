"""The one format of a registration mistake: which function, where it is, which route, the fix.

Every check made when a route is registered (handler shape, parameters, return annotations)
raises through :func:`registration_error`, so a user reads the same kind of message whatever
they got wrong. The same text is used when the mistake only shows at the first call.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from ..errors import RoutingError

__all__ = ["describe_function", "registration_error"]


def describe_function(function: Callable[..., Any]) -> str:
    """``name() (file.py:12)``: the function as a user finds it in their editor."""
    target = inspect.unwrap(function)
    name = getattr(target, "__qualname__", None) or repr(target)
    try:
        filename = inspect.getsourcefile(target) or inspect.getfile(target)
        _, line = inspect.getsourcelines(target)
    except (TypeError, OSError):
        return f"{name}()"
    try:
        filename = os.path.relpath(filename)
    except ValueError:  # another drive on Windows
        pass
    return f"{name}() ({filename}:{line})"


def registration_error(
    function: Callable[..., Any], route: str, problem: str, fix: str
) -> RoutingError:
    """The error for a handler that cannot serve ``route``.

    Args:
        function: the user's handler.
        route: how the route was declared, e.g. ``"@app.websocket('/chat')"``.
        problem: what is wrong, as a clause ("takes 2 parameters").
        fix: what to do instead, as an imperative ("take only the socket").
    """
    return RoutingError(f"{route}: {describe_function(function)} {problem}; {fix}")
