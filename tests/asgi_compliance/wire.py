"""Raw HTTP/1.x on a socket: send bytes, read responses exactly as they arrive."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field


@dataclass
class Response:
    """One response read off the wire."""

    version: bytes
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    chunked: bool = False
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def all(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]


class Reader:
    """Buffered reads from a socket; EOF is ``b""`` from ``recv``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.eof = False

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
        self.buffer += data

    def until(self, marker: bytes, limit: int = 1 << 20) -> bytes:
        while marker not in self.buffer:
            if self.eof or len(self.buffer) > limit:
                raise EOFError(f"no {marker!r} before EOF: {self.buffer[:200]!r}")
            self._fill()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            if self.eof:
                raise EOFError(f"{count} bytes wanted, {len(self.buffer)} before EOF")
            self._fill()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def rest(self) -> bytes:
        """Everything until EOF."""
        while not self.eof:
            self._fill()
        data, self.buffer = self.buffer, b""
        return data

    def closed(self) -> bool:
        """True when the peer closed (EOF or reset) with nothing more buffered."""
        if self.buffer:
            return False
        try:
            self._fill()
        except (ConnectionError, OSError):
            return True
        return self.eof and not self.buffer

    def response(self, *, head_request: bool = False) -> Response:
        """Read one response (skipping ``1xx`` interim ones only if asked by the caller)."""
        head = self.until(b"\r\n\r\n")
        status_line, *lines = head.split(b"\r\n")
        version, status, *_ = status_line.split(b" ", 2)
        headers = []
        for line in lines:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        response = Response(version, int(status), headers, b"")
        code = response.status
        if head_request or code < 200 or code in (204, 304):
            return response
        if (response.header(b"transfer-encoding") or b"").lower() == b"chunked":
            response.chunked = True
            response.body, response.trailers = self._chunked()
        elif (length := response.header(b"content-length")) is not None:
            response.body = self.exactly(int(length))
        else:
            response.body = self.rest()
        return response

    def _chunked(self) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        body = b""
        while True:
            size = int(self.until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                break
            body += self.exactly(size)
            assert self.exactly(2) == b"\r\n"
        trailers = []
        while line := self.until(b"\r\n"):
            name, _, value = line.partition(b":")
            trailers.append((name.strip().lower(), value.strip()))
        return body, trailers


def request(
    method: str = "GET",
    path: str = "/",
    *,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    version: str = "HTTP/1.1",
    length: bool = True,
) -> bytes:
    """A raw request (``Host`` first; ``Content-Length`` for a body unless ``length=False``)."""
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    if body and length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(*parts: bytes) -> bytes:
    """``parts`` in chunked transfer coding, with the last chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts if part) + b"0\r\n\r\n"
