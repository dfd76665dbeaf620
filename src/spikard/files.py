"""Files as responses: :class:`FileResponse` and :class:`StaticFiles`.

Theory of operation. A :class:`FileResponse` is built by a route without touching the disk.
The application then calls :meth:`FileResponse.prepare` with the request: it stats the file
in a worker thread and turns the response into what the request asked for, following RFC
9110: the preconditions of section 13 in the RFC's order (``If-Match``,
``If-Unmodified-Since``, ``If-None-Match``, ``If-Modified-Since``), then ``If-Range`` and
``Range`` (section 14). The answer is the response itself (200 with an exact
``content-length``), a 304 or 412 without the file, a 206 for one range or a
``multipart/byteranges`` 206 for several, or a 416. Nothing is opened yet: the body is a
:class:`_FileBody`, which opens the file when the connection starts sending it (never for
HEAD, a 304 or an error) and reads it in chunks in a worker thread, one chunk per drained
write, so memory stays flat whatever the file's size.

The head promises a length; the body keeps that promise or fails loudly. The file opened must
be the one stat'ed (same device and inode) and must still hold every byte announced; when it
was replaced or shrank, the body iterator raises and the connection aborts the response (the
client sees a cut body, never a silently short or mixed one). A file that grew is sent up to
the announced length.

:class:`StaticFiles` maps a route's ``{path:path}`` parameter to a file under a directory.
Anything that could name a file outside it is answered 404 before the disk is touched (see
:func:`_safe_parts`), and the resolved path (symlinks followed) must still lie inside the
directory unless ``follow_symlinks=True``.
"""

from __future__ import annotations

import errno
import itertools
import logging
import mimetypes
import os
import re
import secrets
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timezone
from email.utils import formatdate, parsedate_to_datetime
from typing import IO, NamedTuple
from urllib.parse import quote

import anyio

from .datastructures import HeadersInit
from .errors import RoutingError
from .requests import Request
from .responses import PlainTextResponse, Response, StreamingResponse

__all__ = ["CHUNK_SIZE", "MAX_RANGES", "FileResponse", "StaticFiles"]

logger = logging.getLogger("spikard.files")

CHUNK_SIZE = 64 * 1024
"""Bytes read from a file per worker-thread call (and per write to the socket)."""
MAX_RANGES = 16
"""A ``Range`` header with more ranges than this is ignored: the whole file is sent (200)."""

_ENCODED_TYPES = {"gzip": "application/gzip", "bzip2": "application/x-bzip2"}
"""``mimetypes`` says ``a.txt.gz`` is gzip-encoded text: it is sent as the archive it is."""
_NOT_IN_304 = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "content-language",
        "content-disposition",
        "content-range",
        "transfer-encoding",
    }
)
"""Representation metadata a 304 leaves out (RFC 9110 15.4.5); validators and the rest stay."""
_NOT_IN_ERRORS = _NOT_IN_304 | {
    "etag",
    "last-modified",
    "accept-ranges",
    "cache-control",
    "expires",
}
"""What an error answer (412, 416, 404, 500) drops: it describes no file and is not cached.
The rest (``vary``, ``set-cookie``, CORS fields a middleware added, ...) is kept."""
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ATTR_CHARS = "!#$&+^`|"  # RFC 5987 attr-char beyond quote()'s ALPHA DIGIT "-._~"
_ENTITY_TAG = re.compile(r'(W/)?("[^"]*")')
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
_DRIVE = re.compile(r"[A-Za-z]:")
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO swapped in after the stat must not hang
_O_BINARY = getattr(os, "O_BINARY", 0)


class _FileChangedError(RuntimeError):
    """The file is not the one the head described (replaced, or shorter than announced)."""


class _Segment(NamedTuple):
    """Bytes to send before a slice of the file, and that slice (half-open)."""

    prefix: bytes
    start: int
    stop: int


SendFile = Callable[[IO[bytes], int, int], Awaitable[int | None]]
"""The connection's ``sendfile`` for a body (see :meth:`_FileBody.attach_sendfile`)."""


class _FileBody:
    """A file's bytes as an async iterable; the file is opened when iteration starts.

    Args:
        path: the file.
        chunk_size: bytes per read (one worker-thread call each).
        expected: the stat the head was built from; None reads to EOF, unchecked.
        segments: what to send, in order (None: the whole file).
        trailer: bytes sent after the last segment (a multipart body's close delimiter).

    The iterator owns the file: it closes it in its ``finally``, which runs when the body
    ends, fails, or the connection closes the iterator (the client left or stalled). A HEAD
    request never iterates, so the file is never opened.
    """

    __slots__ = ("_sendfile", "chunk_size", "expected", "path", "segments", "trailer")

    def __init__(
        self,
        path: str,
        chunk_size: int,
        expected: os.stat_result | None = None,
        segments: Sequence[_Segment] | None = None,
        trailer: bytes = b"",
    ) -> None:
        self.path = path
        self.chunk_size = chunk_size
        self.expected = expected
        self.segments = segments
        self.trailer = trailer
        self._sendfile: SendFile | None = None

    def attach_sendfile(self, sendfile: SendFile | None) -> None:
        """Let the connection send slices of the file itself (None: stop).

        ``await sendfile(file, offset, count)`` sends up to ``count`` bytes from ``offset``
        and returns how many went (fewer only at the end of the file), or None when the
        body must read and yield them instead.
        """
        self._sendfile = sendfile

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    def _open(self) -> IO[bytes]:
        """Open the file (in a worker thread) and check it is the one announced."""
        fd = os.open(self.path, os.O_RDONLY | _O_NONBLOCK | _O_BINARY)
        file = open(fd, "rb", buffering=0)  # noqa: SIM115 (the iterator closes it)
        try:
            expected = self.expected
            if expected is not None:
                found = os.fstat(fd)
                if (found.st_dev, found.st_ino) != (expected.st_dev, expected.st_ino):
                    raise _FileChangedError(f"{self.path} was replaced after its head was sent")
        except BaseException:
            file.close()
            raise
        return file

    async def _chunks(self) -> AsyncIterator[bytes]:
        file: IO[bytes] | None = None
        try:
            file = await anyio.to_thread.run_sync(self._open)
            if self.segments is None:
                while data := await anyio.to_thread.run_sync(file.read, self.chunk_size):
                    yield data
                return
            for segment in self.segments:
                if segment.prefix:
                    yield segment.prefix
                position = segment.start
                while position < segment.stop:
                    size = min(self.chunk_size, segment.stop - position)
                    sendfile = self._sendfile
                    sent = None if sendfile is None else await sendfile(file, position, size)
                    if sent is None:  # the connection did not send it: read and yield it
                        data = await anyio.to_thread.run_sync(_read_at, file, position, size)
                        sent = len(data)
                    else:
                        data = b""
                    if not sent:
                        raise _FileChangedError(
                            f"{self.path} shrank while being sent: it ends at byte {position}, "
                            f"the response announced {segment.stop}"
                        )
                    position += sent
                    if data:
                        yield data
            if self.trailer:
                yield self.trailer
        finally:
            if file is not None:
                file.close()  # a regular file's close does not block


def _read_at(file: IO[bytes], offset: int, size: int) -> bytes:
    file.seek(offset)
    return file.read(size)


# ---- header values ---------------------------------------------------------------------------


def guess_media_type(name: str) -> str:
    """The ``content-type`` for a file name, ``application/octet-stream`` when unknown."""
    # The "_" keeps guess_type from reading a name such as "data:..." as a data: URL.
    kind, encoding = mimetypes.guess_type("_" + os.path.basename(name))
    if encoding is not None:
        return _ENCODED_TYPES.get(encoding, "application/octet-stream")
    return kind or "application/octet-stream"


def content_disposition(filename: str, disposition_type: str = "attachment") -> str:
    """A ``content-disposition`` value naming ``filename`` (RFC 6266).

    A plain ASCII name is sent as ``filename="..."``; any other name also gets the exact
    UTF-8 form ``filename*=UTF-8''...`` (RFC 8187), after an ASCII fallback for old clients.
    Control characters are dropped.

    Raises:
        ValueError: ``disposition_type`` is not a token (``attachment``, ``inline``).
    """
    if not _TOKEN.fullmatch(disposition_type):
        raise ValueError(f"content_disposition_type must be a token, not {disposition_type!r}")
    name = "".join(c for c in filename if c >= " " and c != "\x7f")
    if name.isascii() and '"' not in name and "\\" not in name:
        return f'{disposition_type}; filename="{name}"'
    fallback = "".join(c if c.isascii() and c not in '"\\' else "_" for c in name)
    encoded = quote(name, safe=_ATTR_CHARS, encoding="utf-8")
    return f"{disposition_type}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _http_date(timestamp: float) -> str:
    """An IMF-fixdate (RFC 9110 5.6.7)."""
    return formatdate(timestamp, usegmt=True)


def _parse_http_date(value: str) -> int | None:
    """Seconds since the epoch of an HTTP-date (any of the three forms), else None."""
    try:
        parsed = parsedate_to_datetime(value.strip())
        if parsed.tzinfo is None:  # asctime form: GMT by definition
            parsed = parsed.replace(tzinfo=timezone.utc)
        return int(parsed.timestamp())
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


def _single_date(values: list[str]) -> int | None:
    """The date of a date-valued precondition; None (ignored) when absent or not one date."""
    return _parse_http_date(values[0]) if len(values) == 1 else None


def _etag_for(result: os.stat_result) -> str:
    """A strong entity tag from the modification time (ns) and the size."""
    return f'"{result.st_mtime_ns:x}-{result.st_size:x}"'


def _tags(values: list[str]) -> list[tuple[bool, str]] | None:
    """The (weak, opaque-tag) pairs of an entity-tag list; None stands for ``*``."""
    joined = ",".join(values)
    if joined.strip() == "*":
        return None
    return [(bool(weak), opaque) for weak, opaque in _ENTITY_TAG.findall(joined)]


def _matches(values: list[str], etag: str | None, *, strong: bool) -> bool:
    """Whether an ``If-Match``/``If-None-Match`` list matches the current ``etag``.

    ``*`` matches any current representation; otherwise tags are compared strongly (both
    strong and equal) or weakly (equal opaque tags), RFC 9110 8.8.3.2.
    """
    listed = _tags(values)
    if listed is None:
        return True
    if etag is None:
        return False
    current = _ENTITY_TAG.fullmatch(etag.strip())
    if current is None:
        return False
    current_weak = current.group(1) is not None
    for weak, opaque in listed:
        if opaque == current.group(2) and not (strong and (weak or current_weak)):
            return True
    return False


def _precondition_status(request: Request, etag: str | None, modified: int | None) -> int | None:
    """304 or 412 when a precondition fails, in RFC 9110 13.2.2's order; else None."""
    headers = request.headers
    safe = request.method in ("GET", "HEAD")
    if_match = headers.getlist("if-match")
    if if_match:
        if not _matches(if_match, etag, strong=True):
            return 412
    else:
        since = _single_date(headers.getlist("if-unmodified-since"))
        if since is not None and modified is not None and modified > since:
            return 412
    if_none_match = headers.getlist("if-none-match")
    if if_none_match:
        if _matches(if_none_match, etag, strong=False):
            return 304 if safe else 412
    elif safe:
        since = _single_date(headers.getlist("if-modified-since"))
        if since is not None and modified is not None and modified <= since:
            return 304
    return None


def _position(digits: str) -> int:
    """A byte position; absurdly long numbers are capped (Python limits int() on strings)."""
    return int(digits) if len(digits) <= 18 else 10**18


def parse_ranges(value: str, size: int) -> list[tuple[int, int]] | None:
    """The byte ranges of a ``Range`` header for a ``size``-byte file (RFC 9110 14.1.2).

    Returns:
        None when the header is to be ignored (the whole file is sent): not a ``bytes``
        range, malformed (a ``last-pos`` before its ``first-pos`` included), or more than
        :data:`MAX_RANGES` ranges. An empty list when no range is satisfiable (416).
        Otherwise the satisfiable ranges as half-open ``(start, stop)`` pairs, clamped to the
        file; when any two overlap or touch, all are sorted and merged (coalesced), else
        they keep the order they were asked in.
    """
    unit, equals, specs = value.partition("=")
    if not equals or unit.lower() != "bytes":
        return None
    listed = [spec.strip() for spec in specs.split(",")]
    listed = [spec for spec in listed if spec]  # empty list elements are allowed (5.6.1)
    if not listed or len(listed) > MAX_RANGES:
        return None
    ranges: list[tuple[int, int]] = []
    for spec in listed:
        found = _RANGE_SPEC.fullmatch(spec)
        if found is None:
            return None
        first, last = found.groups()
        if first:
            start = _position(first)
            stop = size
            if last:
                end = _position(last)
                if end < start:
                    return None
                stop = min(end + 1, size)
            if start < size:
                ranges.append((start, stop))
        elif last:
            suffix = _position(last)
            if suffix > 0:
                ranges.append((max(size - suffix, 0), size))
        else:
            return None  # a bare "-"
    return _coalesce(ranges)


def _coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    ordered = sorted(ranges)
    if all(left[1] < right[0] for left, right in itertools.pairwise(ordered)):
        return ranges
    merged = [ordered[0]]
    for start, stop in ordered[1:]:
        last_start, last_stop = merged[-1]
        if start <= last_stop:
            merged[-1] = (last_start, max(stop, last_stop))
        else:
            merged.append((start, stop))
    return merged


def _readable(path: str) -> bool:
    if os.access in os.supports_effective_ids:
        return os.access(path, os.R_OK, effective_ids=True)
    return os.access(path, os.R_OK)


def _not_found() -> Response:
    return PlainTextResponse("Not Found", 404)


# ---- FileResponse ----------------------------------------------------------------------------


class FileResponse(StreamingResponse):
    """A file as the response body, streamed in chunks with an exact ``content-length``.

    ::

        @app.get("/report")
        async def report(request: Request) -> FileResponse:
            return FileResponse("reports/latest.pdf", filename="report.pdf")

    The application calls :meth:`prepare` with the request before sending it; that answers
    conditional requests (304, 412) and range requests (206, 416) from the file's validators:
    an ``etag`` from its modification time (ns) and size, a ``last-modified`` (IMF-fixdate),
    and ``accept-ranges: bytes``. A HEAD request gets the same head and the file is never
    opened. A file missing (or not a regular file) when the request comes is answered 404, an
    unreadable one 500; either is logged once.

    Args:
        path: the file to send.
        status_code: the status of the full response; conditional and range requests are
            answered only for 2xx (preconditions) and 200 (ranges), as RFC 9110 13.2.1 says.
        headers: extra header fields; an ``etag`` or ``last-modified`` given here is used
            instead of spikard's own (and for the conditional requests).
        media_type: the ``content-type``; guessed from ``filename`` or ``path`` by default
            (``application/octet-stream`` when unknown; text types get ``charset=utf-8``).
        filename: send a ``content-disposition`` naming this file (non-ASCII names get the
            RFC 8187 ``filename*=UTF-8''...`` form too).
        content_disposition_type: ``"attachment"`` (download) or ``"inline"``.
        stat_result: an ``os.stat`` of ``path`` the caller already made; :meth:`prepare`
            then trusts it (no stat, no readability check).
        chunk_size: bytes read per worker-thread call.

    Raises:
        ValueError: ``chunk_size`` is not positive, or ``content_disposition_type`` is not a
            token.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: HeadersInit = None,
        media_type: str | None = None,
        *,
        filename: str | None = None,
        content_disposition_type: str = "attachment",
        stat_result: os.stat_result | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, not {chunk_size}")
        if not _TOKEN.fullmatch(content_disposition_type):
            raise ValueError(
                f"content_disposition_type must be a token, not {content_disposition_type!r}"
            )
        self.path = os.fspath(path)
        self.filename = filename
        self.stat_result = stat_result
        self.chunk_size = chunk_size
        self.prepared = False
        """True once :meth:`prepare` ran (the app calls it once, right after the handler)."""
        if media_type is None:
            media_type = guess_media_type(filename or self.path)
        # Until prepare() stats the file, the body is the whole file, unchecked and unframed.
        super().__init__(_FileBody(self.path, chunk_size), status_code, headers, media_type)
        if filename is not None and "content-disposition" not in self.headers:
            self.headers["content-disposition"] = content_disposition(
                filename, content_disposition_type
            )

    async def prepare(self, request: Request) -> Response:
        """Return the response to send for ``request``: this one, or a 304/206/412/416/404.

        Never raises (cancellation aside): an unexpected error is logged and answered 500.
        """
        if self.prepared:
            return self
        self.prepared = True
        try:
            return await self._prepare(request)
        except Exception:
            logger.exception("serving %s for %s %s failed", self.path, request.method, request.path)
            return self._error(500, "Internal Server Error")

    def _stat(self) -> os.stat_result:
        """Stat the file and check it can be read (in a worker thread).

        Raises:
            OSError: the file cannot be stat'ed, or cannot be read (``PermissionError``).
        """
        result = os.stat(self.path)
        if stat.S_ISREG(result.st_mode) and not _readable(self.path):
            raise PermissionError(errno.EACCES, "not readable", self.path)
        return result

    async def _prepare(self, request: Request) -> Response:
        result = self.stat_result
        if result is None:
            try:
                result = await anyio.to_thread.run_sync(self._stat)
            except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
                return self._unavailable(request, exc)
        if not stat.S_ISREG(result.st_mode):
            logger.warning("%s is not a regular file: answering 404 to %s", self.path, request.path)
            return self._error(404, "Not Found")
        size = result.st_size
        headers = self.headers
        headers["content-length"] = str(size)
        self.content = _FileBody(self.path, self.chunk_size, result, [_Segment(b"", 0, size)])
        if not 200 <= self.status_code < 300:
            return self  # an error page (404.html): no validators, no conditions, no ranges
        if "last-modified" not in headers:
            # RFC 9110 8.8.2.1: never later than now (a clock skew, a file from the future).
            headers["last-modified"] = _http_date(min(result.st_mtime, time.time()))
        if "etag" not in headers:
            headers["etag"] = _etag_for(result)
        modified = _parse_http_date(headers["last-modified"])
        failed = _precondition_status(request, headers.get("etag"), modified)
        if failed == 304:
            kept = [field for field in headers.multi_items() if field[0] not in _NOT_IN_304]
            return Response(b"", 304, kept)
        if failed == 412:
            return self._error(412, "Precondition Failed")
        if self.status_code != 200:
            return self
        headers["accept-ranges"] = "bytes"
        if request.method != "GET" or size == 0:
            return self  # RFC 9110 14.2: ranges are defined for GET; an empty file has none
        ranges = self._requested_ranges(request, result, modified)
        if ranges is None:
            return self
        if not ranges:
            return self._error(416, "Range Not Satisfiable", f"bytes */{size}")
        return self._partial(ranges, result)

    def _unavailable(self, request: Request, exc: OSError | ValueError) -> Response:
        """404 for a file that is not there, 500 for one that cannot be read; logged once."""
        if isinstance(exc, (FileNotFoundError, NotADirectoryError, ValueError)) or exc.errno in (
            errno.ELOOP,
            errno.ENAMETOOLONG,
        ):
            logger.warning("%s is missing (%s): answering 404 to %s", self.path, exc, request.path)
            return self._error(404, "Not Found")
        logger.error("%s cannot be read (%s): answering 500 to %s", self.path, exc, request.path)
        return self._error(500, "Internal Server Error")

    def _error(self, status_code: int, text: str, content_range: str | None = None) -> Response:
        """A plain-text error that keeps the fields not about the file (see _NOT_IN_ERRORS)."""
        kept = [field for field in self.headers.multi_items() if field[0] not in _NOT_IN_ERRORS]
        error = PlainTextResponse(text, status_code, kept)
        if content_range is not None:
            error.headers["content-range"] = content_range
        return error

    def _requested_ranges(
        self, request: Request, result: os.stat_result, modified: int | None
    ) -> list[tuple[int, int]] | None:
        """The ranges to send, [] for a 416, None to send the whole file."""
        values = request.headers.getlist("range")
        if len(values) != 1:
            return None  # absent, or repeated (a single field by definition)
        if_range = request.headers.getlist("if-range")
        if if_range and not self._if_range_holds(if_range, result, modified):
            return None
        return parse_ranges(values[0], result.st_size)

    def _if_range_holds(
        self, values: list[str], result: os.stat_result, modified: int | None
    ) -> bool:
        """RFC 9110 13.1.5: a strong ETag match, or the exact date of a strong Last-Modified."""
        if len(values) != 1:
            return False
        value = values[0].strip()
        if value.startswith(('"', "W/")):
            return _matches([value], self.headers.get("etag"), strong=True)
        date = _parse_http_date(value)
        if date is None or modified is None or date != modified:
            return False
        # A date is a strong validator only once its second is over (8.8.2.2): until then the
        # file may change again and keep the same Last-Modified.
        return time.time() >= int(result.st_mtime) + 1

    def _partial(self, ranges: list[tuple[int, int]], result: os.stat_result) -> Response:
        """The 206: one range as is, several as ``multipart/byteranges``."""
        size = result.st_size
        fields = self.headers.multi_items()
        if len(ranges) == 1:
            start, stop = ranges[0]
            body = _FileBody(self.path, self.chunk_size, result, [_Segment(b"", start, stop)])
            partial = StreamingResponse(body, 206, fields)
            partial.headers["content-length"] = str(stop - start)
            partial.headers["content-range"] = f"bytes {start}-{stop - 1}/{size}"
            return partial
        boundary = secrets.token_hex(16)  # 128 random bits: never in the file by chance
        media_type = self.headers.get("content-type")
        type_line = f"content-type: {media_type}\r\n" if media_type else ""
        segments = []
        for index, (start, stop) in enumerate(ranges):
            head = (
                f"--{boundary}\r\n{type_line}content-range: bytes {start}-{stop - 1}/{size}\r\n\r\n"
            ).encode("latin-1")
            # After the first part, the CRLF that ends the previous part's bytes leads in.
            segments.append(_Segment(b"\r\n" + head if index else head, start, stop))
        trailer = f"\r\n--{boundary}--\r\n".encode("latin-1")
        length = sum(len(s.prefix) + s.stop - s.start for s in segments) + len(trailer)
        body = _FileBody(self.path, self.chunk_size, result, segments, trailer)
        partial = StreamingResponse(body, 206, fields)
        partial.headers["content-type"] = f"multipart/byteranges; boundary={boundary}"
        partial.headers["content-length"] = str(length)
        return partial

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status_code} {self.path!r}>"


# ---- StaticFiles -----------------------------------------------------------------------------


def _safe_parts(relative: object, raw_path: str) -> tuple[list[str], bool] | None:
    r"""The path segments of a static request, and whether it names a directory (``a/``).

    None when the path could escape the directory or names something hidden, so it is
    answered 404 without touching the disk: a ``.`` or ``..`` segment (however it was
    percent-encoded: ``request.path`` is decoded once and never again, so ``%252e`` stays
    the literal name ``%2e``), an empty segment (``a//b``, or a leading ``/`` that would make
    the path absolute), a percent-encoded ``/`` or ``\`` in the raw target, a backslash,
    a NUL or other control character, a drive letter (``C:``), or a segment starting with
    ``.`` (hidden files; ``.well-known`` excepted). On Windows a ``:`` anywhere, and a
    segment ending with ``.`` or a space (Windows drops those), are refused too.
    """
    if not isinstance(relative, str):
        return None
    lowered = raw_path.lower()
    if "%2f" in lowered or "%5c" in lowered:
        return None
    if "\\" in relative or any(c < " " or c == "\x7f" for c in relative):
        return None
    is_directory = relative == "" or relative.endswith("/")
    parts = relative.split("/")
    if is_directory:
        parts.pop()
    for part in parts:
        if part in ("", ".", "..") or _DRIVE.match(part):
            return None
        if part.startswith(".") and part != ".well-known":
            return None
        if os.name == "nt" and (":" in part or part.endswith((".", " "))):
            return None
    return parts, is_directory


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class _Found(NamedTuple):
    """What a static path resolved to: a file to send, a redirect, or nothing (404)."""

    path: str | None = None
    stat_result: os.stat_result | None = None
    status_code: int = 200
    redirect: bool = False


class StaticFiles:
    """An HTTP handler serving the files under ``directory``.

    Register it on a route with a ``{path:path}`` parameter::

        app.add_route("/static/{path:path}", StaticFiles("public"), ("GET",))

    ``/static/css/site.css`` is answered with ``public/css/site.css`` as a
    :class:`FileResponse` (so conditional and range requests work). Every path that could
    leave the directory is answered 404, the same as a missing file, so nothing outside is
    revealed: ``..`` segments in any encoding, absolute paths, percent-encoded slashes and
    backslashes, NUL bytes, drive letters, and symlinks that resolve outside ``directory``
    (unless ``follow_symlinks``). Hidden files and directories (a name starting with ``.``)
    are not served either, except under ``.well-known``. Directories are not listed.

    Args:
        directory: the directory to serve; it is resolved on every request, so it may be
            a symlink that is switched to a new release.
        html: serve ``index.html`` for ``/dir/``, redirect ``/dir`` to ``/dir/`` (307, the
            query string kept) when that index exists, and answer a missing file with
            ``404.html`` (status 404) when the directory has one.
        follow_symlinks: serve symlinks that point outside ``directory`` too.
        check_dir: check now that ``directory`` exists.

    Raises:
        RoutingError: ``check_dir`` is true and ``directory`` is not a directory.
    """

    __slots__ = ("directory", "follow_symlinks", "html")

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        html: bool = False,
        follow_symlinks: bool = False,
        check_dir: bool = True,
    ) -> None:
        self.directory = os.fspath(directory)
        self.html = html
        self.follow_symlinks = follow_symlinks
        if check_dir and not os.path.isdir(self.directory):
            raise RoutingError(
                f"StaticFiles directory {self.directory!r} does not exist or is not a directory"
            )

    async def __call__(self, request: Request) -> Response:
        """Answer ``request`` with the file its ``path`` parameter names, or 404/307."""
        checked = _safe_parts(request.path_params.get("path", ""), request.raw_path)
        if checked is None:
            logger.debug("refused static path %r", request.raw_path)
            if not self.html:
                return _not_found()
        # A refused path gets the same answer as a missing file: 404.html in html mode.
        found = await anyio.to_thread.run_sync(self._lookup, checked)
        if found.redirect:
            query = f"?{request.query_string}" if request.query_string else ""
            return Response(b"", 307, {"location": f"{request.raw_path}/{query}"})
        if found.path is None:
            return _not_found()
        return FileResponse(found.path, found.status_code, stat_result=found.stat_result)

    def _resolve(self, root: str, path: str) -> tuple[str, os.stat_result | None] | None:
        """The real path and stat of ``path``; None when it is outside or absent.

        The stat is None when the file cannot be stat'ed or read for want of permission:
        :meth:`FileResponse.prepare` then meets the same error, logs it and answers 500.
        """
        try:
            real = os.path.realpath(path)
        except (OSError, ValueError):  # ValueError: a NUL byte
            return None
        if not self.follow_symlinks and not _inside(real, root):
            return None
        try:
            result = os.stat(real)
        except PermissionError:
            return real, None
        except OSError:  # missing, not a directory on the way, a symlink loop, too long
            return None
        if stat.S_ISREG(result.st_mode) and not _readable(real):
            return real, None
        return real, result

    def _lookup(self, checked: tuple[list[str], bool] | None) -> _Found:
        """What a checked path names, or a refused one (None) gets; in a worker thread."""
        root = os.path.realpath(self.directory)
        if checked is not None:
            found = self._find(root, *checked)
            if found is not None:
                return found
        if self.html:
            page = self._resolve(root, os.path.join(root, "404.html"))
            if page is not None and (page[1] is None or stat.S_ISREG(page[1].st_mode)):
                return _Found(page[0], page[1], 404)
        return _Found()

    def _find(self, root: str, parts: list[str], is_directory: bool) -> _Found | None:
        """The file (or redirect) ``parts`` names under ``root``; None when there is none."""
        hit = self._resolve(root, os.path.join(root, *parts))
        if hit is None:
            return None
        real, result = hit
        if result is None:
            return _Found(real)  # not stat'able or not readable: prepare() answers 500
        if stat.S_ISREG(result.st_mode):
            return None if is_directory else _Found(real, result)
        if not (stat.S_ISDIR(result.st_mode) and self.html):
            return None  # a directory (never listed), a FIFO, a device, a socket
        index = self._resolve(root, os.path.join(real, "index.html"))
        if index is None or (index[1] is not None and not stat.S_ISREG(index[1].st_mode)):
            return None
        return _Found(*index) if is_directory else _Found(redirect=True)
