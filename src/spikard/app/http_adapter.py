"""Turn an HTTP route function into the endpoint the app calls, decided once.

HTTP handlers receive the request when they take a parameter, and path parameters as keyword
arguments when they name them; they may be sync or async.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import RoutingError
from ..requests import Request
from ..responses import Response, to_response

__all__ = ["HTTPEndpoint", "adapt_http_handler"]

HTTPEndpoint = Callable[[Request], Awaitable[Response]]


def adapt_http_handler(function: Callable[..., Any], param_names: tuple[str, ...]) -> HTTPEndpoint:
    """Return a coroutine that calls an HTTP route function and converts its result."""
    if not callable(function):
        raise RoutingError(f"{function!r} is not callable")
    signature = inspect.signature(function)
    accepts_any_keyword = any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()
    )
    keywords = [n for n in param_names if n in signature.parameters or accepts_any_keyword]
    positional = [
        p
        for p in signature.parameters.values()
        if p.name not in keywords
        and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    pass_request = bool(positional)
    is_coroutine = inspect.iscoroutinefunction(function)

    async def endpoint(request: Request) -> Response:
        kwargs = {name: request.path_params[name] for name in keywords}
        result = function(request, **kwargs) if pass_request else function(**kwargs)
        if is_coroutine or inspect.isawaitable(result):
            result = await result
        return to_response(result)

    return endpoint
