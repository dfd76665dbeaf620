"""Accepting connections: which driver serves a listener.

On asyncio without TLS the listening sockets go to the event loop itself
(:func:`~spikard.connection.asyncio_driver.serve_sockets`): every connection is an
``asyncio.Protocol`` of spikard's, with no anyio stream in between. Everything else (trio,
TLS on any backend) is served by anyio's listener, each stream wrapped in the portable
driver (:func:`~spikard.connection.stream_driver.open_stream_transport`). This is the one
place that asks which event loop runs (and so whether a trio stream's socket may be written
to directly: see :class:`~spikard.connection.stream_driver.StreamTransport`).

The TLS handshake is done here too, within ``handshake_timeout``: a client that fails it (a
plain HTTP request on the TLS port, a protocol or certificate mismatch, a missing or
untrusted client certificate, a timeout) is disconnected without an answer and logged in one
INFO line; one that leaves during it, at DEBUG. Each handshake takes the context current
when the connection arrives, so a :class:`~.tls.ReloadingContext` reloaded (SIGHUP) serves
new connections with the new certificate while open ones keep theirs.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSStream

from ..connection.asyncio_driver import AsyncioTransport, serve_sockets
from ..connection.stream_driver import open_stream_transport
from ..connection.transport import Transport
from .tls import ReloadingContext, describe_handshake_failure

__all__ = ["serve_listener", "tls_handshake"]

logger = logging.getLogger("spikard.server")

TransportHandler = Callable[[Transport], Coroutine[Any, Any, None]]

ContextSource = ssl.SSLContext | ReloadingContext
"""A TLS context as the server takes it: fixed, or reloadable."""


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _listening_sockets(listener: anyio.abc.Listener[Any]) -> list[socket.socket] | None:
    """The raw sockets of a TCP listener (or a group of them), via anyio's public attributes."""
    sockets = []
    for sub in getattr(listener, "listeners", [listener]):
        try:
            raw = sub.extra(SocketAttribute.raw_socket)
        except anyio.TypedAttributeLookupError:
            return None
        if not isinstance(raw, socket.socket):
            return None
        sockets.append(raw)
    return sockets


def _direct_socket(stream: anyio.abc.ByteStream) -> socket.socket | None:
    """The socket of a plain TCP stream on trio, which the driver may write to directly.

    trio's socket streams keep no write buffer (anyio's asyncio ones do: never on asyncio).
    """
    if not isinstance(stream, anyio.abc.SocketStream):
        return None
    try:
        raw = stream.extra(SocketAttribute.raw_socket)
    except anyio.TypedAttributeLookupError:
        return None
    return raw if isinstance(raw, socket.socket) else None


def _peer(stream: anyio.abc.ByteStream) -> str:
    try:
        address = stream.extra(SocketAttribute.remote_address)
    except Exception:  # not a socket, or reset already: a log line must not fail
        return "-"
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return str(address)


async def tls_handshake(
    stream: anyio.abc.ByteStream, context: ssl.SSLContext, timeout: float
) -> TLSStream | None:
    """Do the server side of the TLS handshake on ``stream`` within ``timeout`` seconds.

    Returns:
        The TLS stream; None when the handshake failed, after closing ``stream`` and logging
        why in one line (INFO; DEBUG for a client that just left).
    """
    peer = _peer(stream)  # now: a closed socket has no peer address any more
    try:
        with anyio.fail_after(timeout):
            return await TLSStream.wrap(
                stream, server_side=True, ssl_context=context, standard_compatible=False
            )
    except Exception as exc:
        await anyio.aclose_forcefully(stream)
        if isinstance(exc, ssl.SSLError):
            if exc.reason == "HTTP_REQUEST":
                logger.info("plain HTTP request from %s on the TLS port: closed", peer)
            else:
                reason = describe_handshake_failure(exc, context)
                logger.info("TLS handshake with %s failed: %s", peer, reason)
        elif isinstance(exc, TimeoutError):
            logger.info("TLS handshake with %s timed out after %.1f s", peer, timeout)
        elif isinstance(exc, (anyio.EndOfStream, anyio.BrokenResourceError, OSError)):
            logger.debug("%s left during the TLS handshake", peer)
        else:
            logger.error("TLS handshake with %s failed", peer, exc_info=exc)
        return None
    except BaseException:
        await anyio.aclose_forcefully(stream)  # cancelled: the server is stopping
        raise


async def serve_listener(
    listener: anyio.abc.Listener[Any],
    handler: TransportHandler,
    task_group: Any,
    ssl_context: ContextSource | None = None,
    read_size: int = 65536,
    backlog: int = 4096,
    handshake_timeout: float = 10.0,
) -> None:
    """Accept connections until cancelled; run ``handler(transport)`` for each in ``task_group``.

    ``backlog``: the listen backlog the event loop sets again on the sockets it takes over
    (the listener was made with the same). ``ssl_context``: serve TLS; a
    :class:`~.tls.ReloadingContext` is asked for its current context at each connection.
    ``handshake_timeout``: the bound of a TLS handshake (see :func:`tls_handshake`).

    ``task_group`` needs a ``start_soon(func, *args)`` method (an anyio task group, or a
    :class:`~spikard.connection.tasks.LightTaskGroup`).
    """
    sockets = _listening_sockets(listener) if ssl_context is None and _on_asyncio() else None
    if sockets is not None:

        def connected(transport: AsyncioTransport) -> None:
            task_group.start_soon(handler, transport)

        await serve_sockets(sockets, connected, backlog)
        return

    direct = ssl_context is None and not _on_asyncio()

    async def serve_stream(stream: anyio.abc.ByteStream) -> None:
        async with open_stream_transport(
            stream, read_size, _direct_socket(stream) if direct else None
        ) as transport:
            await handler(transport)

    if ssl_context is None:
        await listener.serve(serve_stream, task_group)
        return
    source = ssl_context

    async def serve_tls(stream: anyio.abc.ByteStream) -> None:
        context = source.context if isinstance(source, ReloadingContext) else source
        secured = await tls_handshake(stream, context, handshake_timeout)
        if secured is not None:
            await serve_stream(secured)

    await listener.serve(serve_tls, task_group)
