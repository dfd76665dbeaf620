"""Form bodies: ``application/x-www-form-urlencoded`` and ``multipart/form-data``.

:func:`parse_form` feeds the body, chunk by chunk as it streams in, to python-multipart's
push parsers (``QuerystringParser``, ``MultipartParser``); their callbacks only record what
they saw, and the records are acted on (a field grows, a file is written) between chunks, so
no part of the body is ever held whole. Field values are bounded by ``max_part_size``; files
go to :class:`UploadFile` objects, in memory up to :data:`SPOOL_SIZE` and in a temporary file
beyond it. The caller owns the files of the returned :class:`FormData` and closes them
(:meth:`FormData.close`; the server does it after the response).
"""

from __future__ import annotations

import email.message
import email.utils
import tempfile
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from typing import IO, TypeVar, overload
from urllib.parse import unquote_to_bytes

import anyio
from python_multipart import MultipartParser, QuerystringParser
from python_multipart.exceptions import FormParserError

from .datastructures import Headers
from .errors import ContentTooLarge, HTTPException, InvalidBody

__all__ = ["SPOOL_SIZE", "FormData", "UploadFile", "parse_form"]

SPOOL_SIZE = 1024 * 1024
"""Bytes of an uploaded file kept in memory; a larger file is moved to a temporary file."""

_D = TypeVar("_D")


class UploadFile:
    """A file uploaded in a ``multipart/form-data`` body.

    The bytes live in :attr:`file`, a :class:`tempfile.SpooledTemporaryFile` that moves to
    disk past :data:`SPOOL_SIZE`; the async methods run file I/O in a worker thread once the
    file is on disk (in memory, they do not block).

    Attributes:
        filename: the ``filename`` the client sent (may be ``""``: an empty file input).
        content_type: the part's ``Content-Type``, None when it sent none.
        headers: every header of the part.
        size: the file's size in bytes.
        file: the underlying file object (for use in a worker thread).
    """

    __slots__ = ("content_type", "file", "filename", "headers", "size")

    def __init__(
        self,
        filename: str,
        *,
        content_type: str | None = None,
        headers: Headers | None = None,
        file: IO[bytes] | None = None,
    ) -> None:
        self.filename = filename
        self.content_type = content_type
        self.headers = headers if headers is not None else Headers()
        self.file: IO[bytes] = file if file is not None else _spooled_file()
        self.size = 0

    @property
    def in_memory(self) -> bool:
        """True while the bytes are held in memory (no temporary file on disk)."""
        return getattr(self.file, "name", None) is None

    async def write(self, data: bytes) -> None:
        """Append ``data`` (the parser's side; :attr:`size` grows)."""
        if self.size + len(data) <= SPOOL_SIZE and self.in_memory:
            self.file.write(data)
        else:  # this write may move the file to disk, or it is there already
            await anyio.to_thread.run_sync(self.file.write, data)
        self.size += len(data)

    async def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left by default) from the position."""
        if self.in_memory:
            return self.file.read(size)
        return await anyio.to_thread.run_sync(self.file.read, size)

    async def seek(self, offset: int, whence: int = 0) -> int:
        """Move the position (as :meth:`io.IOBase.seek`); return the new one."""
        if self.in_memory:
            return self.file.seek(offset, whence)
        return await anyio.to_thread.run_sync(self.file.seek, offset, whence)

    async def close(self) -> None:
        """Close the file (a temporary file on disk is deleted). Idempotent."""
        if self.file.closed:
            return
        if self.in_memory:
            self.file.close()
        else:
            await anyio.to_thread.run_sync(self.file.close)

    def __repr__(self) -> str:
        return (
            f"UploadFile(filename={self.filename!r}, size={self.size}, "
            f"content_type={self.content_type!r})"
        )


def _spooled_file() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_SIZE, mode="w+b")


FormValue = str | UploadFile
"""A form field's value: text, or an uploaded file."""


class FormData(Mapping[str, FormValue]):
    """A parsed form: an immutable mapping where a name may repeat, in the body's order.

    ``form[name]`` is the first value, :meth:`getlist` every value and :meth:`multi_items`
    every (name, value) pair. Values are ``str`` or :class:`UploadFile`.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, FormValue]] = ()) -> None:
        self._items = tuple(items)

    def __getitem__(self, name: str) -> FormValue:
        for key, value in self._items:
            if key == name:
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(key for key, _ in self._items))

    def __len__(self) -> int:
        return len({key for key, _ in self._items})

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self._items)

    @overload
    def get(self, name: str, /) -> FormValue | None: ...
    @overload
    def get(self, name: str, /, default: FormValue | _D) -> FormValue | _D: ...
    def get(self, name: str, /, default: object = None) -> object:
        """Return the first value of ``name``, or ``default``."""
        for key, value in self._items:
            if key == name:
                return value
        return default

    def getlist(self, name: str) -> list[FormValue]:
        """Return every value of ``name`` in order (empty when absent)."""
        return [value for key, value in self._items if key == name]

    def multi_items(self) -> list[tuple[str, FormValue]]:
        """Return every (name, value) pair, repeats included, in order."""
        return list(self._items)

    async def close(self) -> None:
        """Close every uploaded file (shielded from cancellation). Idempotent."""
        with anyio.CancelScope(shield=True):
            for _, value in self._items:
                if isinstance(value, UploadFile):
                    await value.close()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FormData):
            return self._items == other._items
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FormData({list(self._items)!r})"


async def parse_form(
    content_type: str,
    chunks: AsyncIterable[bytes],
    *,
    max_files: int = 1000,
    max_fields: int = 1000,
    max_part_size: int = 1024 * 1024,
) -> FormData:
    """Parse a form body from its ``Content-Type`` and its chunks, as they come.

    ``chunks`` is closed before this returns or raises; so are the files made, on error.

    Raises:
        HTTPException: 415, ``content_type`` is not one of the two form types.
        InvalidBody: malformed multipart, no boundary, more than ``max_fields`` fields or
            ``max_files`` files (400).
        ContentTooLarge: a field's name or value is over ``max_part_size`` bytes (413).
    """
    media_type, params = _header_value(content_type)
    builder: _FormBuilder
    if media_type == "application/x-www-form-urlencoded":
        builder = _UrlencodedForm(max_fields, max_part_size)
    elif media_type == "multipart/form-data":
        boundary = params.get("boundary")
        if not boundary:
            raise InvalidBody("Bad Request: a multipart/form-data body needs a boundary")
        builder = _MultipartForm(boundary.encode("latin-1"), max_files, max_fields, max_part_size)
    else:
        raise HTTPException(
            415,
            "Unsupported Media Type: a form is application/x-www-form-urlencoded or "
            f"multipart/form-data, not {media_type or 'a body without a content type'}",
        )
    try:
        try:
            async for chunk in chunks:
                await builder.feed(chunk)
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        return await builder.finish()
    except BaseException:
        await FormData(builder.items).close()
        raise


def _header_value(value: str) -> tuple[str, dict[str, str]]:
    """A header's value (lower case) and its parameters (quoted strings unquoted)."""
    message = email.message.Message()
    message["x"] = value
    params = message.get_params(header="x", failobj=[])
    if not params:
        return "", {}
    (main, _), *rest = params
    return main.strip().lower(), {name.lower(): _text(raw) for name, raw in rest}


def _text(value: object) -> str:
    """A parameter value as email gives it (an RFC 2231 tuple is decoded)."""
    if isinstance(value, tuple):
        return email.utils.collapse_rfc2231_value(value)
    return str(value)


class _FormBuilder:
    """Turns a parser's callbacks into form items, acting on them between chunks."""

    items: list[tuple[str, FormValue]]

    async def feed(self, chunk: bytes) -> None:
        raise NotImplementedError

    async def finish(self) -> FormData:
        raise NotImplementedError


class _UrlencodedForm(_FormBuilder):
    """``name=value&...`` with ``+`` for space and percent-escapes, UTF-8 text."""

    def __init__(self, max_fields: int, max_part_size: int) -> None:
        self.items = []
        self._max_fields = max_fields
        self._max_part_size = max_part_size
        self._name = bytearray()
        self._value = bytearray()
        self._parser = QuerystringParser(
            {
                "on_field_name": self._on_name,
                "on_field_data": self._on_data,
                "on_field_end": self._on_end,
            }
        )

    def _on_name(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]
        self._check(self._name)

    def _on_data(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]
        self._check(self._value)

    def _check(self, part: bytearray) -> None:
        if len(part) > self._max_part_size:
            raise ContentTooLarge(
                self._max_part_size,
                f"Content Too Large: a form field is over {self._max_part_size} bytes",
            )

    def _on_end(self) -> None:
        if len(self.items) >= self._max_fields:
            raise InvalidBody(f"Bad Request: more than {self._max_fields} form fields")
        self.items.append((_unquote(self._name), _unquote(self._value)))
        self._name = bytearray()
        self._value = bytearray()

    async def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise InvalidBody(f"Bad Request: malformed form body: {exc}") from None

    async def finish(self) -> FormData:
        self._parser.finalize()
        return FormData(self.items)


def _unquote(raw: bytearray) -> str:
    return unquote_to_bytes(bytes(raw).replace(b"+", b" ")).decode("utf-8", "replace")


# What the multipart callbacks record, acted on between chunks.
_HEADERS, _DATA, _PART_END, _END = 0, 1, 2, 3


class _MultipartForm(_FormBuilder):
    """``multipart/form-data`` (RFC 7578): fields become text, parts with a filename files."""

    def __init__(
        self, boundary: bytes, max_files: int, max_fields: int, max_part_size: int
    ) -> None:
        self.items = []
        self._max_files = max_files
        self._max_fields = max_fields
        self._max_part_size = max_part_size
        self._files = 0
        self._fields = 0
        self._events: list[tuple[int, object]] = []
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: list[tuple[str, str]] = []
        self._ended = False
        # The part being parsed: its name, and a growing value or the file it goes to.
        self._name = ""
        self._value = bytearray()
        self._file: UploadFile | None = None
        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                    "on_end": self._on_end,
                },
            )
        except FormParserError as exc:  # a boundary too long
            raise InvalidBody(f"Bad Request: {exc}") from None

    # The callbacks run inside MultipartParser.write: they record, and never await.

    def _on_part_begin(self) -> None:
        self._headers = []

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers.append(
            (
                self._header_name.decode("latin-1").strip(),
                self._header_value.decode("utf-8", "replace").strip(),
            )
        )
        self._header_name = bytearray()
        self._header_value = bytearray()

    def _on_headers_finished(self) -> None:
        self._events.append((_HEADERS, Headers(self._headers)))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._events.append((_DATA, data[start:end]))

    def _on_part_end(self) -> None:
        self._events.append((_PART_END, None))

    def _on_end(self) -> None:
        self._events.append((_END, None))

    # Between chunks: act on what was recorded.

    async def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise InvalidBody(f"Bad Request: malformed multipart body: {exc}") from None
        events, self._events = self._events, []
        for kind, payload in events:
            if kind == _HEADERS:
                assert isinstance(payload, Headers)
                self._start_part(payload)
            elif kind == _DATA:
                assert isinstance(payload, bytes)
                await self._part_data(payload)
            elif kind == _PART_END:
                await self._end_part()
            else:
                self._ended = True

    def _start_part(self, headers: Headers) -> None:
        disposition, params = _header_value(headers.get("content-disposition", ""))
        name = params.get("name")
        if disposition != "form-data" or name is None:
            raise InvalidBody(
                "Bad Request: a multipart part needs Content-Disposition: form-data; name=..."
            )
        self._name = name
        if "filename" in params:
            self._files += 1
            if self._files > self._max_files:
                raise InvalidBody(f"Bad Request: more than {self._max_files} files in the form")
            self._file = UploadFile(
                params["filename"], content_type=headers.get("content-type"), headers=headers
            )
            self.items.append((name, self._file))  # owned (closed on error) from now on
        else:
            self._fields += 1
            if self._fields > self._max_fields:
                raise InvalidBody(f"Bad Request: more than {self._max_fields} form fields")
            self._file = None
            self._value = bytearray()
        if len(name.encode()) > self._max_part_size:
            raise self._too_large()

    async def _part_data(self, data: bytes) -> None:
        if self._file is not None:
            await self._file.write(data)
            return
        self._value += data
        if len(self._value) > self._max_part_size:
            raise self._too_large()

    def _too_large(self) -> ContentTooLarge:
        return ContentTooLarge(
            self._max_part_size,
            f"Content Too Large: a form field is over {self._max_part_size} bytes",
        )

    async def _end_part(self) -> None:
        if self._file is not None:
            await self._file.seek(0)
            self._file = None
        else:
            self.items.append((self._name, self._value.decode("utf-8", "replace")))

    async def finish(self) -> FormData:
        if not self._ended:
            raise InvalidBody("Bad Request: the multipart body ends before its closing boundary")
        return FormData(self.items)
