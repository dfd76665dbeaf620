"""Which browser origins an application trusts: one matcher for CORS and WebSocket handshakes.

An origin is ``scheme://host[:port]`` (RFC 6454), as browsers send it in the ``Origin`` header.
A matcher is built from a list of allowed origins, each one of:

- an exact origin, ``"https://app.example.com"`` (case and a default port do not matter);
- a subdomain pattern, ``"https://*.example.com"``: any host strictly below ``example.com``
  with that scheme and port (``example.com`` itself must be listed on its own);
- ``"*"``: any origin;
- ``"same-origin"``: the origin of the request itself (pages this server served): the
  caller passes that origin to the check, see :meth:`OriginMatcher.__call__`;
- ``"null"``: the opaque origin of sandboxed frames and ``file:`` pages (only when listed).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["SAME_ORIGIN", "OriginMatcher", "normalize_origin"]

SAME_ORIGIN = "same-origin"
"""The entry that allows the request's own origin."""

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_origin(origin: str) -> str:
    """Lower-case an origin, drop a trailing slash and a default port, for comparison."""
    origin = origin.strip().lower().rstrip("/")
    scheme, sep, rest = origin.partition("://")
    if not sep:
        return origin
    host, colon, port = rest.rpartition(":")
    default_port = str(_DEFAULT_PORTS.get(scheme))
    if colon and port == default_port and (host.endswith("]") or ":" not in host):
        return f"{scheme}://{host}"
    return origin


def _check_allowed(entry: str) -> str:
    """Validate one configured origin and return it normalized.

    Raises:
        ValueError: ``entry`` is not ``scheme://host[:port]`` (a path, a query, no scheme).
    """
    normalized = normalize_origin(entry)
    if normalized in ("*", "null", SAME_ORIGIN):
        return normalized
    parts = urlsplit(normalized.replace("*.", "wildcard.", 1))
    if (
        not parts.scheme
        or not parts.netloc
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise ValueError(
            f"{entry!r} is not an origin: write scheme://host[:port], such as "
            "'https://example.com' or 'https://*.example.com'"
        )
    if "*" in normalized.replace("://*.", "://", 1):
        raise ValueError(
            f"{entry!r}: '*' may only stand for subdomains, as in https://*.example.com"
        )
    return normalized


class OriginMatcher:
    """Answers whether an ``Origin`` header value is allowed.

    Args:
        allowed: the trusted origins (see the module docs).

    Raises:
        ValueError: an entry is not an origin or a valid pattern.
    """

    __slots__ = ("_exact", "_suffixes", "allows_any", "same_origin")

    def __init__(self, allowed: Iterable[str]) -> None:
        if isinstance(allowed, str):
            raise TypeError("allowed origins must be a list of origins, not a string")
        self._exact: frozenset[str] = frozenset()
        self._suffixes: tuple[tuple[str, str], ...] = ()
        exact: set[str] = set()
        suffixes: list[tuple[str, str]] = []
        for entry in allowed:
            normalized = _check_allowed(entry)
            scheme, _, rest = normalized.partition("://")
            if rest.startswith("*."):
                suffixes.append((scheme + "://", rest[1:]))  # ("https://", ".example.com")
            else:
                exact.add(normalized)
        self.allows_any = "*" in exact
        """True when every origin is allowed (``"*"`` was listed)."""
        self.same_origin = SAME_ORIGIN in exact
        """True when the request's own origin is allowed (``"same-origin"`` was listed)."""
        exact.discard(SAME_ORIGIN)
        self._exact = frozenset(exact)
        self._suffixes = tuple(suffixes)

    def __call__(self, origin: str, own: str | None = None) -> bool:
        """True when ``origin`` (an ``Origin`` header value) is allowed.

        ``own`` is the request's own origin (``scheme://host[:port]`` as the client addressed
        the server); ``"same-origin"`` allows exactly that one.
        """
        if self.allows_any:
            return True
        origin = normalize_origin(origin)
        if origin in self._exact:
            return True
        if self.same_origin and own is not None and origin == normalize_origin(own):
            return True
        for scheme, suffix in self._suffixes:
            if origin.startswith(scheme):
                host = origin[len(scheme) :]
                label = host[: -len(suffix)]
                if host.endswith(suffix) and label and not any(c in label for c in ":/@["):
                    return True
        return False

    def __repr__(self) -> str:
        patterns = sorted(self._exact) + [f"{s}*{h}" for s, h in self._suffixes]
        return f"OriginMatcher({patterns!r})"
