"""The server side of the RFC 6455 opening handshake, as pure functions over headers."""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wsproto.utilities import generate_accept_token

from ..datastructures import Headers
from ..errors import HandshakeRejected
from .forwarded import TrustedProxies
from .hosts import HostMatcher
from .origins import OriginMatcher

__all__ = ["HandshakeOffer", "accept_response", "is_websocket_upgrade", "read_offer"]

SUPPORTED_VERSION = "13"


def _tokens(value: str) -> list[str]:
    return [token.strip().lower() for token in value.split(",") if token.strip()]


def _header_tokens(headers: Headers, name: str) -> list[str]:
    return [token for value in headers.getlist(name) for token in _tokens(value)]


def is_websocket_upgrade(headers: Headers) -> bool:
    """Return True when the request asks to upgrade to WebSocket (``Upgrade: websocket``)."""
    return "websocket" in _header_tokens(headers, "upgrade")


@dataclass(frozen=True, slots=True)
class HandshakeOffer:
    """What a valid upgrade request offers."""

    key: bytes
    """The ``Sec-WebSocket-Key``, as sent."""
    subprotocols: tuple[str, ...]
    """Subprotocols the client offers, in its order of preference."""
    extensions: tuple[str, ...]
    """Extension offers, raw (``permessage-deflate; client_max_window_bits``)."""


def read_offer(method: str, http_version: str, headers: Headers) -> HandshakeOffer:
    """Validate an upgrade request (RFC 6455, section 4.2.1) and return its offer.

    Raises:
        HandshakeRejected: 400 for a malformed request, 426 with ``Sec-WebSocket-Version: 13``
            when the client speaks another protocol version.
    """
    if method != "GET":
        raise HandshakeRejected(400, "WebSocket handshake must use GET")
    if http_version != "1.1":
        raise HandshakeRejected(400, "WebSocket handshake needs HTTP/1.1")
    if "upgrade" not in _header_tokens(headers, "connection"):
        raise HandshakeRejected(400, "WebSocket handshake needs 'Connection: Upgrade'")
    versions = headers.getlist("sec-websocket-version")
    if [v.strip() for v in versions] != [SUPPORTED_VERSION]:
        raise HandshakeRejected(
            426,
            "Unsupported Sec-WebSocket-Version; this server speaks version 13",
            {"sec-websocket-version": SUPPORTED_VERSION, "upgrade": "websocket"},
        )
    keys = headers.getlist("sec-websocket-key")
    if len(keys) != 1 or not _valid_key(keys[0]):
        raise HandshakeRejected(400, "Missing or invalid Sec-WebSocket-Key")
    return HandshakeOffer(
        key=keys[0].strip().encode("ascii"),
        subprotocols=tuple(_raw_tokens(headers.getlist("sec-websocket-protocol"))),
        extensions=tuple(_raw_tokens(headers.getlist("sec-websocket-extensions"))),
    )


def _raw_tokens(values: Sequence[str]) -> list[str]:
    return [token.strip() for value in values for token in value.split(",") if token.strip()]


def _valid_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key.strip().encode("ascii"), validate=True)) == 16
    except (binascii.Error, UnicodeEncodeError):
        return False


# RFC 9110, section 5.6.2: a token is one or more "tchar".
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _field_value(value: str) -> bytes:
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError("header values must not contain CR or LF (or NUL)")
    return value.encode("latin-1")


def check_origin(
    headers: Headers, allowed: OriginMatcher | None, own_origin: str | None = None
) -> None:
    """Refuse a browser whose ``Origin`` is not ``allowed`` (None: every origin is).

    ``own_origin`` is the request's own origin (``http://host:port`` for a ``ws`` request),
    which ``"same-origin"`` allows. Requests without ``Origin`` (non-browser clients) pass.

    Raises:
        HandshakeRejected: 403 for an origin that is not allowed.
    """
    if allowed is None or allowed.allows_any:
        return
    origin = headers.get("origin")
    if origin is not None and not allowed(origin, own_origin):
        raise HandshakeRejected(403, "Origin not allowed")


@functools.lru_cache(maxsize=64)
def trusted_proxies(entries: tuple[str, ...]) -> TrustedProxies:
    """The (shared) matcher for ``HTTPConfig.forwarded_allow_ips``."""
    return TrustedProxies(entries)


@functools.lru_cache(maxsize=64)
def host_matcher(allowed: tuple[str, ...] | None) -> HostMatcher | None:
    """The (shared) matcher for ``HTTPConfig.allowed_hosts``; None answers any host."""
    if allowed is None:
        return None
    matcher = HostMatcher(allowed)
    return None if matcher.allows_any else matcher


@functools.lru_cache(maxsize=64)
def origin_matcher(allowed: str | tuple[str, ...] | None) -> OriginMatcher | None:
    """The (shared) matcher for ``WebSocketConfig.allowed_origins``."""
    if allowed is None:
        return None
    return OriginMatcher((allowed,) if isinstance(allowed, str) else allowed)


def accept_response(
    offer: HandshakeOffer,
    *,
    subprotocol: str | None = None,
    extensions: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """Serialize the ``101 Switching Protocols`` response that accepts ``offer``.

    Raises:
        ValueError: ``subprotocol`` was not offered by the client.
    """
    if subprotocol is not None and subprotocol not in offer.subprotocols:
        raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client")
    lines = [
        b"HTTP/1.1 101 Switching Protocols",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Accept: " + generate_accept_token(offer.key),
    ]
    if subprotocol is not None:
        lines.append(b"Sec-WebSocket-Protocol: " + subprotocol.encode("ascii"))
    if extensions:
        lines.append(b"Sec-WebSocket-Extensions: " + _field_value(extensions))
    for name, value in (headers or {}).items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid header name (a token: no CR or LF)")
        lines.append(name.encode("ascii") + b": " + _field_value(value))
    return b"\r\n".join(lines) + b"\r\n\r\n"
