"""Path templates (``/rooms/{room}``, ``/items/{id:int}``) compiled to matchers."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from ..errors import RoutingError

__all__ = ["CONVERTORS", "PathPattern", "Route", "RouteKind"]

RouteKind = Literal["websocket", "http", "sse", "static"]
"""What a route serves: WebSocket sessions, HTTP responses, event streams or files."""

_PLACEHOLDER = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-zA-Z_]+))?}")

_H = TypeVar("_H")


@dataclass(frozen=True, slots=True)
class _Convertor:
    regex: str
    convert: Callable[[str], Any]


CONVERTORS: dict[str, _Convertor] = {
    "str": _Convertor(r"[^/]+", str),
    "int": _Convertor(r"-?[0-9]+", int),
    "float": _Convertor(r"-?[0-9]+(?:\.[0-9]+)?", float),
    "path": _Convertor(r".*", str),
}
"""Placeholder types: ``{name}`` is ``str`` (one segment), ``{rest:path}`` spans segments."""


def _literal(text: str, template: str) -> str:
    if "{" in text or "}" in text:
        raise RoutingError(f"malformed placeholder in {template!r}")
    return re.escape(text)


class PathPattern:
    """A compiled path template.

    Raises:
        RoutingError: the template does not start with ``/``, uses an unknown type, or repeats
            a parameter name.
    """

    __slots__ = ("_convert", "_regex", "template")

    def __init__(self, template: str) -> None:
        if not template.startswith("/"):
            raise RoutingError(f"route path {template!r} must start with '/'")
        self.template = template
        self._convert: dict[str, Callable[[str], Any]] = {}
        parts: list[str] = []
        position = 0
        for match in _PLACEHOLDER.finditer(template):
            name, kind = match.group(1), match.group(2) or "str"
            if kind not in CONVERTORS:
                raise RoutingError(f"unknown parameter type {kind!r} in {template!r}")
            if name in self._convert:
                raise RoutingError(f"parameter {name!r} appears twice in {template!r}")
            parts.append(_literal(template[position : match.start()], template))
            parts.append(f"(?P<{name}>{CONVERTORS[kind].regex})")
            self._convert[name] = CONVERTORS[kind].convert
            position = match.end()
        parts.append(_literal(template[position:], template))
        self._regex = re.compile("".join(parts) + r"\Z")

    @property
    def param_names(self) -> tuple[str, ...]:
        """The names of the template's placeholders, in order."""
        return tuple(self._convert)

    def match(self, path: str) -> dict[str, Any] | None:
        """Return the converted parameters when ``path`` matches, else None."""
        found = self._regex.match(path)
        if found is None:
            return None
        try:
            return {name: self._convert[name](value) for name, value in found.groupdict().items()}
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Route(Generic[_H]):
    """A path pattern, the methods it answers, and what handles it."""

    pattern: PathPattern
    methods: frozenset[str]
    handler: _H
    max_body_size: int | None = None
    """The route's own request body limit (None: ``HTTPConfig.max_body_size``)."""
    function: Callable[..., Any] | None = None
    """The user's function as registered (its annotations feed :meth:`Spikard.asyncapi`)."""
    kind: RouteKind = "http"
    receive_type: Any = None
    """The declared type of incoming messages (WebSocket routes; None: untyped)."""
    send_type: Any = None
    """The declared type of outgoing messages or events (WebSocket and SSE; None: untyped)."""
    subprotocols: tuple[str, ...] = ()
    """The WebSocket subprotocols the route offers, in its order of preference."""
