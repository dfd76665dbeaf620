"""HTTP/1.1 rules h11 leaves to its user: versions, header-value characters, framing, heads.

Sans-I/O helpers for :mod:`spikard.connection.http`:

- :func:`unsupported_version`: only HTTP/1.0 and HTTP/1.1 are served (h11 parses any
  ``HTTP/d.d``); anything else answers 505.
- :func:`bad_header_value`: a header value with a control character other than HTAB
  (RFC 9110 5.5; h11 lets bytes 0x01-0x1F and 0x7F through) answers 400.
- :func:`ambiguous_framing`: a request with both ``Content-Length`` and
  ``Transfer-Encoding`` is framed by the latter, and the connection is closed after the
  response (RFC 9112 6.1), so nothing after it is read as another request.
- :func:`reason_phrase` and :class:`DateHeader`: the status line's reason phrase and the
  ``Date`` header (RFC 9110 6.6.1), formatted once per second.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from http import HTTPStatus

__all__ = [
    "DateHeader",
    "ambiguous_framing",
    "bad_header_value",
    "reason_phrase",
    "unsupported_version",
]

_SUPPORTED_VERSIONS = frozenset({b"1.0", b"1.1"})
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}
_REASONS.update(  # RFC 9110's names, where older Pythons still have RFC 7231's
    {
        413: b"Content Too Large",
        414: b"URI Too Long",
        416: b"Range Not Satisfiable",
        422: b"Unprocessable Content",
    }
)


def unsupported_version(http_version: bytes) -> bool:
    """True unless ``http_version`` (as h11 reports it: ``b"1.1"``) is 1.0 or 1.1."""
    return http_version not in _SUPPORTED_VERSIONS


def bad_header_value(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """Return the name of the first header whose value has a control character, else None."""
    for name, value in headers:
        if _CONTROL.search(value):
            return name
    return None


def ambiguous_framing(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """True when both ``Content-Length`` and ``Transfer-Encoding`` are present.

    ``headers`` as h11 gives them (lower-case names).
    """
    seen_length = seen_encoding = False
    for name, _ in headers:
        if name == b"content-length":
            seen_length = True
        elif name == b"transfer-encoding":
            seen_encoding = True
    return seen_length and seen_encoding


def reason_phrase(status_code: int) -> bytes:
    """The standard reason phrase of ``status_code`` (``b""`` for an unregistered code)."""
    return _REASONS.get(status_code, b"")


class DateHeader:
    """The current ``Date`` header value, formatted at most once per second.

    Args:
        clock: seconds since the epoch (``time.time``; injectable for tests).
    """

    __slots__ = ("_clock", "_second", "_value")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._second = -1
        self._value = b""

    def value(self) -> bytes:
        """``b"Thu, 03 Dec 2026 17:48:18 GMT"`` for now."""
        second = int(self._clock())
        if second != self._second:
            self._second = second
            self._value = formatdate(second, usegmt=True).encode("ascii")
        return self._value
