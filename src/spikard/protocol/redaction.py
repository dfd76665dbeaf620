"""Secrets kept out of log lines: sensitive query values and credential headers.

The original design recommends tokens in query parameters for browser WebSockets (a browser
cannot set headers on a handshake), so request targets are logged with the values of
sensitive parameters replaced by ``***``. Header values are never logged; the names below are
the ones whose values must never appear anywhere (tests plant secrets in them).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from urllib.parse import unquote_plus

__all__ = ["DEFAULT_REDACTED_PARAMS", "SECRET_HEADERS", "redact_query"]

DEFAULT_REDACTED_PARAMS: tuple[str, ...] = (
    "token",
    "access_token",
    "api_key",
    "password",
    "secret",
    "auth",
)
"""Query parameters whose values the logs replace with ``***`` (compared case-insensitively)."""

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "sec-websocket-protocol"}
)
"""Headers whose values never appear in a log line."""

_MASK = "***"


@functools.lru_cache(maxsize=16)
def _names(sensitive: tuple[str, ...]) -> frozenset[str]:
    return frozenset(name.lower() for name in sensitive)


def redact_query(query: str, sensitive: Iterable[str] = DEFAULT_REDACTED_PARAMS) -> str:
    """``query`` (a raw query string) with the values of ``sensitive`` parameters masked.

    Names are compared decoded and case-insensitively (``?Token=``, ``?%74oken=``); the rest
    of the string is kept as sent.
    """
    if not query:
        return query
    names = _names(tuple(sensitive))
    parts = query.split("&")
    changed = False
    for index, part in enumerate(parts):
        name, equals, value = part.partition("=")
        if value and unquote_plus(name).strip().lower() in names:
            parts[index] = f"{name}{equals}{_MASK}"
            changed = True
    return "&".join(parts) if changed else query
