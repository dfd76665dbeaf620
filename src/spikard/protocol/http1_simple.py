"""The simplest HTTP/1.1 exchanges, read and written without h11, and proven equal to it.

Most requests a server sees are a head with no body (``GET /items/1``), answered by a
whole response. For those, h11's general state machine costs more than everything else a
request does, so :class:`~spikard.connection.http.HTTPConnection` serves them with this
module and gives every other exchange to h11.

This module never rejects anything: it *declines*. :func:`parse_simple_head` returns None
for any head that is not plainly valid and bodiless (a body's framing headers, ``Expect``,
``Upgrade``, folded or unusual fields, a version other than 1.0/1.1, a missing or
repeated ``Host``, any character h11 or spikard's own checks would question), and
:func:`simple_response` returns None for any response it does not write exactly as h11
would. A declined exchange is served by h11 from its first byte, so every error answer
(400, 431, 505, 500) comes from one implementation.

Invariants (checked by ``tests/protocol/test_http1_simple.py``, against h11, for random
heads, responses and chunkings):

- When :func:`parse_simple_head` accepts a head, h11 fed the same bytes yields a ``Request``
  with the same method, target, version and fields, then ``EndOfMessage``; and spikard's
  checks on top of h11 (:mod:`.http1`) pass.
- When :func:`simple_response` returns bytes, they are the bytes h11 writes for that response
  (head, and body unless the request was ``HEAD``), and :attr:`SimpleHead.keep_alive` is what
  h11 decides about the connection after it.
- When :func:`streamed_response_head` returns a head, it is the head h11 writes for that
  streamed response, and its :class:`BodyFraming` writes each chunk and the end as h11 does
  (chunked, ``content-length``, or until the connection closes for HTTP/1.0), refusing a
  body that disagrees with its ``content-length`` where h11 refuses it.
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

__all__ = [
    "FOR_H11",
    "NEED_DATA",
    "BodyFraming",
    "BodyLengthError",
    "Framing",
    "SimpleHead",
    "find_head_end",
    "parse_simple_head",
    "simple_response",
    "streamed_response_head",
]

NEED_DATA = -1
"""From :func:`find_head_end`: no blank line yet."""
FOR_H11 = -2
"""From :func:`find_head_end`: the head ends otherwise than with ``CRLF CRLF``: h11's."""
_BLANK_LINE = re.compile(rb"\n\r?\n")  # where h11 sees a head end

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/(1\.[01])")
# A field's value: visible ASCII or obs-text, single inner spaces or tabs, no controls.
# Stricter than h11 (which admits control characters that spikard then answers with 400).
_VALUE_CHARS = rb"[\x21-\x7e\x80-\xff]"
_FIELD = re.compile(
    rb"(" + _TOKEN + rb"):[ \t]*(" + _VALUE_CHARS + rb"+(?:[ \t]+" + _VALUE_CHARS + rb"+)*)?[ \t]*"
)
_FIELD_NAME = re.compile(_TOKEN)
_FIELD_VALUE = re.compile(rb"(?:" + _VALUE_CHARS + rb"+(?:[ \t]+" + _VALUE_CHARS + rb"+)*)?")

_DECLINED_FIELDS = frozenset(
    {b"content-length", b"transfer-encoding", b"expect", b"upgrade", b"te", b"trailer"}
)
"""A request with any of these is h11's: a body, ``100-continue``, a protocol switch (except
a ``GET`` with ``Upgrade``: a WebSocket handshake has no body, and its 101 is the server's)."""
_FRAMING_FIELDS = frozenset({b"content-length", b"transfer-encoding", b"connection"})


class SimpleHead(NamedTuple):
    """A request head without a body, as h11 would report it."""

    method: bytes
    target: bytes
    http_version: bytes
    """``b"1.1"`` or ``b"1.0"``."""
    headers: list[tuple[bytes, bytes]]
    """``(lower-case name, value)`` pairs, in order, values without surrounding blanks."""
    keep_alive: bool
    """Whether the connection may go on after the response (h11's rule: HTTP/1.1 without
    ``Connection: close``)."""
    raw: bytes
    """The head's bytes, terminator included (replayed into h11 when it takes over)."""


def find_head_end(buffer: bytes | bytearray) -> int:
    r"""Where the ``\r\n\r\n`` that ends the first head in ``buffer`` starts.

    Or :data:`NEED_DATA` (no blank line yet: h11 would wait too), or :data:`FOR_H11` (the first
    blank line, as h11 finds it, is a bare ``\n`` one, or the first byte already tells h11
    the request line is invalid).
    """
    if buffer and buffer[0] < 0x21:
        return FOR_H11  # h11 refuses such a request line at once, whole or not
    blank = _BLANK_LINE.search(buffer)
    if blank is None:
        return NEED_DATA
    start = blank.start() - 1
    if blank.end() - start != 4 or start < 0 or buffer[start] != 0x0D:
        return FOR_H11
    return start


def parse_simple_head(
    buffer: bytes | bytearray, end: int, *, max_bytes: int, max_fields: int
) -> SimpleHead | None:
    """The head in ``buffer[:end + 4]`` (``end`` from :func:`find_head_end`), or None.

    None declines: h11 must read these bytes. ``max_bytes`` and ``max_fields`` are the
    connection's head limits; a head over either is declined (h11's path answers 431).
    """
    raw = bytes(buffer[: end + 4])
    lines = raw[:end].split(b"\r\n")
    request_line = _REQUEST_LINE.fullmatch(lines[0])
    if request_line is None or len(lines) - 1 > max_fields:
        return None
    method, target, http_version = request_line.groups()
    if method == b"CONNECT":
        return None  # a 2xx answer switches protocols in h11
    headers: list[tuple[bytes, bytes]] = []
    size = len(method) + len(target) + 12
    hosts = 0
    keep_alive = http_version == b"1.1"
    for line in lines[1:]:
        field = _FIELD.fullmatch(line)
        if field is None:
            return None
        name = field[1].lower()
        value = field[2] or b""
        if name in _DECLINED_FIELDS and (name != b"upgrade" or method != b"GET"):
            return None
        if name == b"host":
            hosts += 1
        elif name == b"connection" and b"close" in _comma_tokens(value):
            keep_alive = False
        size += len(name) + len(value) + 4
        headers.append((name, value))
    if hosts > 1 or (hosts == 0 and http_version == b"1.1") or size > max_bytes:
        return None
    return SimpleHead(method, target, http_version, headers, keep_alive, raw)


def _comma_tokens(value: bytes) -> list[bytes]:
    return [token for part in value.lower().split(b",") if (token := part.strip())]


def simple_response(
    status_code: int,
    reason: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    *,
    head_request: bool,
    keep_alive: bool,
) -> tuple[bytes, bool] | None:
    """The bytes of a whole response and whether the connection goes on; None: h11's job.

    Args:
        status_code: 200-999.
        reason: the status line's reason phrase.
        headers: every field to send, ``content-length`` included (absent for 204 and 304);
            ``connection: close`` at most once.
        body: the whole body.
        head_request: the request was ``HEAD``: the head is sent alone.
        keep_alive: the request's :attr:`SimpleHead.keep_alive`; when False, the fields end
            with h11's ``Connection: close``.

    Returns:
        The bytes to write, and True when another request may follow on this connection
        (the request allowed it and no ``connection: close`` is among ``headers``).
    """
    if not 200 <= status_code <= 999:
        return None
    no_body = status_code in (204, 304)
    if no_body and body:
        return None
    parts = [b"HTTP/1.1 %d %s\r\n" % (status_code, reason)]
    length_seen = False
    closes = False
    for name, value in headers:
        lowered = name.lower()
        if lowered in _FRAMING_FIELDS:
            if lowered == b"content-length":
                if length_seen or no_body or value != b"%d" % len(body):
                    return None
                length_seen = True
            elif lowered == b"connection" and value == b"close" and not closes:
                closes = True
                if not keep_alive:
                    continue  # h11 writes its own, below
            else:
                return None
        if _FIELD_NAME.fullmatch(name) is None or _FIELD_VALUE.fullmatch(value) is None:
            return None
        parts.append(b"%s: %s\r\n" % (name, value))
    if not (length_seen or no_body):
        return None
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    if not head_request:
        parts.append(body)
    return b"".join(parts), keep_alive and not closes


class BodyLengthError(Exception):
    """A streamed body is longer or shorter than the ``content-length`` its head announced."""


class Framing(enum.Enum):
    """How a streamed response body is delimited on the wire."""

    CHUNKED = "chunked"
    """``transfer-encoding: chunked`` (HTTP/1.1 without ``content-length``)."""
    LENGTH = "content-length"
    """Exactly ``content-length`` bytes (and no body at all for ``HEAD``)."""
    UNTIL_CLOSE = "until close"
    """The body ends when the connection does (HTTP/1.0 without ``content-length``)."""


class BodyFraming:
    """Writes one streamed response body in its :class:`Framing` (sans-I/O).

    :meth:`data` turns each chunk into the bytes to send and :meth:`end` gives the bytes that
    end the body; with :attr:`Framing.LENGTH` both raise :class:`BodyLengthError` when the
    body disagrees with the announced length (nothing of a chunk that overruns is sent).
    """

    __slots__ = ("_left", "framing")

    def __init__(self, framing: Framing, length: int = 0) -> None:
        self.framing = framing
        self._left = length

    def data(self, chunk: bytes) -> bytes:
        """The bytes that carry ``chunk`` (empty for an empty chunk)."""
        if not chunk:
            return b""
        if self.framing is Framing.CHUNKED:
            return b"%x\r\n%s\r\n" % (len(chunk), chunk)
        if self.framing is Framing.LENGTH:
            self._left -= len(chunk)
            if self._left < 0:
                raise BodyLengthError("the body is longer than its content-length")
        return chunk

    def takes_as_is(self, count: int) -> bool:
        """Whether ``count`` bytes may go out unframed, around :meth:`data` (``sendfile``).

        True for a body that is not chunked and has room for them; account for them with
        :meth:`sent_as_is`.
        """
        if self.framing is Framing.LENGTH:
            return count <= self._left
        return self.framing is Framing.UNTIL_CLOSE

    def sent_as_is(self, count: int) -> None:
        """``count`` bytes of the body went out unframed (see :meth:`takes_as_is`)."""
        if self.framing is Framing.LENGTH:
            self._left -= count

    def end(self) -> bytes:
        """The bytes that end the body."""
        if self.framing is Framing.CHUNKED:
            return b"0\r\n\r\n"
        if self.framing is Framing.LENGTH and self._left:
            raise BodyLengthError("the body ended before its content-length")
        return b""


def streamed_response_head(
    status_code: int,
    reason: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    head_request: bool,
    keep_alive: bool,
    http_version: bytes,
) -> tuple[bytes, BodyFraming, bool] | None:
    """The head of a streamed response, its body's framing, and whether the connection goes on.

    None: h11's job (a status without a body, a ``transfer-encoding`` or unusual framing
    field, any name or value :func:`simple_response` would not write).

    Args:
        status_code: 200-999, not 204 or 304.
        reason: the status line's reason phrase.
        headers: every field to send; ``content-length`` when the application gave one.
        head_request: the request was ``HEAD``: the body is never written.
        keep_alive: the request's :attr:`SimpleHead.keep_alive`.
        http_version: the request's :attr:`SimpleHead.http_version`.
    """
    if not 200 <= status_code <= 999 or status_code in (204, 304):
        return None
    length: int | None = None
    connection_at: int | None = None  # where the application's "connection: close" stands
    fields: list[bytes] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in _FRAMING_FIELDS:
            if lowered == b"content-length":
                if length is not None or not value.isdigit():
                    return None
                length = int(value)
            elif lowered == b"connection" and value == b"close" and connection_at is None:
                connection_at = len(fields)
            else:
                return None
        if _FIELD_NAME.fullmatch(name) is None or _FIELD_VALUE.fullmatch(value) is None:
            return None
        fields.append(b"%s: %s\r\n" % (name, value))
    if length is not None or head_request:
        framing = BodyFraming(Framing.LENGTH, 0 if head_request else length or 0)
    elif http_version == b"1.1":
        framing = BodyFraming(Framing.CHUNKED)
    else:
        framing = BodyFraming(Framing.UNTIL_CLOSE)
    if length is None and http_version == b"1.1":
        fields.append(b"Transfer-Encoding: chunked\r\n")
    # When h11 closes on its own account, it rewrites the connection field, last.
    close = not keep_alive or framing.framing is Framing.UNTIL_CLOSE
    if close:
        if connection_at is not None:
            del fields[connection_at]
        fields.append(b"Connection: close\r\n")
    head = b"HTTP/1.1 %d %s\r\n%s\r\n" % (status_code, reason, b"".join(fields))
    return head, framing, not close and connection_at is None
