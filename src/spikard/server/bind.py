"""Binding the listening port, and saying in one line why it failed.

A port that is taken, an address no interface has, a host name that does not resolve and a
port out of range all end the same way: :class:`BindError`, whose text names the address
and the reason, and which the runner prints as one line (no traceback) before it exits
with status 1. :func:`probe_bind` lets the worker supervisor find out before it starts any
worker.
"""

from __future__ import annotations

import errno
import os
import socket

__all__ = ["BindError", "bind_error", "check_port", "format_address", "probe_bind"]

_REASONS = {
    errno.EADDRINUSE: "the address is already in use (is another server running on it?)",
    errno.EADDRNOTAVAIL: "no network interface has this address",
}


class BindError(OSError):
    """The server could not listen on its address; ``str(error)`` is one line saying why.

    Attributes:
        host: the host (or interface address) that was asked for.
        port: the port that was asked for.
        reason: why it failed, in words.
    """

    def __init__(self, host: str, port: int, reason: str, code: int | None = None) -> None:
        super().__init__(f"cannot listen on {format_address(host, port)}: {reason}")
        self.errno = code
        self.host = host
        self.port = port
        self.reason = reason


def format_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets (``[::1]:8000``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_port(host: str, port: int) -> None:
    """Raise :class:`BindError` unless ``port`` is a TCP port number (0 picks a free one)."""
    if not 0 <= port <= 65535:
        raise BindError(host, port, "the port must be between 0 and 65535")


def bind_error(host: str, port: int, exc: BaseException) -> BindError:
    """The :class:`BindError` that explains ``exc``, raised while binding ``host``:``port``."""
    if isinstance(exc, BindError):
        return exc
    if isinstance(exc, OverflowError):
        return BindError(host, port, "the port must be between 0 and 65535")
    if isinstance(exc, socket.gaierror):
        return BindError(host, port, f"cannot resolve the host name {host!r}", exc.errno)
    code = exc.errno if isinstance(exc, OSError) else None
    if code in _REASONS:
        reason = _REASONS[code]
    elif code == errno.EACCES:
        reason = "permission denied" + (
            " (ports below 1024 need privileges)" if port < 1024 else ""
        )
    elif code is not None:
        reason = os.strerror(code).lower()
    else:
        reason = str(exc) or type(exc).__name__
    return BindError(host, port, reason, code)


def probe_bind(host: str, port: int, *, reuse_port: bool = False) -> None:
    """Bind (without listening) every address ``host`` resolves to, then let go.

    The same options as the server's own listener (``SO_REUSEADDR``, and ``SO_REUSEPORT``
    with ``reuse_port``), so a port that would refuse the server refuses the probe.

    Raises:
        BindError: one of the addresses cannot be bound; the message says why.
    """
    check_port(host, port)
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        seen: set[tuple[int, object]] = set()
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
    except (OSError, OverflowError) as exc:
        raise bind_error(host, port, exc) from None
