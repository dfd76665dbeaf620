"""Cross-origin resource sharing (the Fetch standard's CORS protocol) as a middleware.

::

    app.middleware(CORSMiddleware(allow_origins=["https://app.example.com"]))

A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered here and never
reaches a route. Any other request from an allowed origin runs as usual and its response
gets ``Access-Control-Allow-Origin`` (and the other headers configured). Responses that
depend on the origin carry ``Vary: Origin``, so caches keep them apart. WebSocket handshakes
pass through untouched: browsers do not apply CORS to them, and
``WebSocketConfig.allowed_origins`` (the same origin syntax) decides who may connect.
"""

from __future__ import annotations

from collections.abc import Iterable

from .app.middleware import CallNext
from .protocol.origins import OriginMatcher
from .requests import Request
from .responses import PlainTextResponse, Response

__all__ = ["CORSMiddleware"]

_SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})
"""Request headers a browser sends without asking (CORS-safelisted)."""
_ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _names(values: Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        raise TypeError(f"{what} must be a list, not a string: [{values!r}]")
    return tuple(values)


class CORSMiddleware:
    """Answer CORS preflights and mark responses to allowed origins.

    Args:
        allow_origins: the origins that may read responses: exact origins
            (``"https://app.example.com"``), subdomain patterns (``"https://*.example.com"``)
            or ``"*"`` (any). Nothing is allowed by default.
        allow_methods: the methods a preflight may ask for (``"*"``: any).
        allow_headers: the request headers a preflight may ask for, beyond the safelisted
            ``Accept``, ``Accept-Language``, ``Content-Language`` and ``Content-Type``
            (``"*"``: any).
        allow_credentials: let the browser send cookies and read the response; the
            request's origin is then echoed, never ``*``.
        expose_headers: response headers the page's script may read.
        max_age: seconds a browser may cache a preflight's answer.

    Raises:
        ValueError: an entry of ``allow_origins`` is not an origin; ``max_age`` is negative.
    """

    def __init__(
        self,
        allow_origins: Iterable[str] = (),
        allow_methods: Iterable[str] = ("GET", "HEAD", "POST"),
        allow_headers: Iterable[str] = (),
        allow_credentials: bool = False,
        expose_headers: Iterable[str] = (),
        max_age: int = 600,
    ) -> None:
        self._origins = OriginMatcher(_names(allow_origins, "allow_origins"))
        methods = {method.upper() for method in _names(allow_methods, "allow_methods")}
        self._any_method = "*" in methods
        self._methods = frozenset(_ALL_METHODS if self._any_method else methods)
        headers = {name.lower() for name in _names(allow_headers, "allow_headers")}
        self._any_header = "*" in headers
        self._headers = frozenset(headers - {"*"}) | _SAFELISTED_HEADERS
        self._credentials = allow_credentials
        self._expose = ", ".join(_names(expose_headers, "expose_headers"))
        if max_age < 0:
            raise ValueError("max_age must be at least 0")
        self._max_age = str(max_age)
        # "*" may answer every origin only when nothing depends on the origin: no credentials.
        self._star = self._origins.allows_any and not allow_credentials

    async def __call__(self, request: Request, call_next: CallNext) -> Response:
        """Answer a preflight, or run the request and add the CORS headers to its response."""
        origin = request.headers.get("origin")
        if request.scheme in ("ws", "wss"):
            return await call_next(request)  # a handshake: allowed_origins decides
        if origin is None:
            response = await call_next(request)
            if not self._star:
                _vary(response, "Origin")
            return response
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            return self._preflight(request, origin)
        response = await call_next(request)
        if self._origins(origin):
            headers = response.headers
            headers["access-control-allow-origin"] = "*" if self._star else origin
            if self._credentials:
                headers["access-control-allow-credentials"] = "true"
            if self._expose:
                headers["access-control-expose-headers"] = self._expose
        if not self._star:
            _vary(response, "Origin")
        return response

    def _preflight(self, request: Request, origin: str) -> Response:
        """The answer to ``OPTIONS`` with ``Access-Control-Request-Method``."""
        method = request.headers.get("access-control-request-method", "").strip()
        asked = [
            name.strip().lower()
            for value in request.headers.getlist("access-control-request-headers")
            for name in value.split(",")
            if name.strip()
        ]
        refused = []
        if not self._origins(origin):
            refused.append("origin")
        if not (self._any_method or method.upper() in self._methods):
            refused.append("method")
        if not self._any_header and not set(asked) <= self._headers:
            refused.append("headers")
        vary = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        if refused:
            return PlainTextResponse(f"Disallowed CORS {', '.join(refused)}", 400, {"vary": vary})
        headers = {
            "access-control-allow-origin": "*" if self._star else origin,
            "access-control-allow-methods": (
                method if self._any_method else ", ".join(sorted(self._methods))
            ),
            "access-control-max-age": self._max_age,
            "vary": vary,
        }
        if asked:
            # A literal "*" is no wildcard for credentialed requests: name what was asked.
            headers["access-control-allow-headers"] = ", ".join(asked)
        if self._credentials:
            headers["access-control-allow-credentials"] = "true"
        return Response(status_code=204, headers=headers)

    def __repr__(self) -> str:
        return f"CORSMiddleware(origins={self._origins!r}, credentials={self._credentials})"


def _vary(response: Response, name: str) -> None:
    """Add ``name`` to the response's ``Vary`` unless it is there already (or ``*``)."""
    headers = response.headers
    values = headers.getlist("vary")
    present = {token.strip().lower() for value in values for token in value.split(",")}
    if name.lower() in present or "*" in present:
        return
    headers["vary"] = ", ".join([*values, name])
