"""Who the client really is behind trusted proxies: ``Forwarded`` and ``X-Forwarded-*``.

A reverse proxy (nginx, a load balancer) connects to the server itself, so the socket's peer
is the proxy. Proxies say who they forwarded for in headers that any client can also forge,
so they are believed only from peers listed in ``HTTPConfig.forwarded_allow_ips``
(:class:`TrustedProxies`), and only as far as the chain of trusted hops goes:

- RFC 7239 ``Forwarded`` when present (``for=``, ``proto=``, ``host=`` per hop), else
  ``X-Forwarded-For``, ``X-Forwarded-Proto`` and ``X-Forwarded-Host``;
- the client is the rightmost address that is not a trusted proxy (every proxy appends the
  peer it got the request from, so entries left of an untrusted one may be forged); when
  every entry is trusted, the leftmost;
- the scheme and host are the ones that client used, as the first trusted proxy recorded
  them (the same hop of ``Forwarded``; for ``X-Forwarded-Proto``/``-Host``, the entry at the
  client's position when the lists line up, else the last one).

Everything here is sans-I/O: :func:`resolve` takes the headers and the peer and returns what
the request should report.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from ..datastructures import Address, Headers

__all__ = ["Forwarded", "TrustedProxies", "resolve"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class TrustedProxies:
    """The peers whose forwarding headers are believed.

    Entries are addresses (``"127.0.0.1"``, ``"::1"``), networks (``"10.0.0.0/8"``) or ``"*"``
    (every peer: only behind a proxy that strips these headers from clients).

    Raises:
        ValueError: an entry is neither an address nor a network.
    """

    __slots__ = ("_known", "_networks", "trusts_all")

    def __init__(self, entries: Iterable[str]) -> None:
        if isinstance(entries, str):
            raise TypeError("forwarded_allow_ips must be a tuple of addresses, not a string")
        networks: list[_Network] = []
        self.trusts_all = False
        """True when ``"*"`` was listed."""
        for entry in entries:
            entry = entry.strip()
            if entry == "*":
                self.trusts_all = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(
                    f"forwarded_allow_ips entry {entry!r} is not an IP address or network "
                    "(such as '127.0.0.1', '::1' or '10.0.0.0/8'), nor '*'"
                ) from None
        self._networks = tuple(networks)
        self._known: dict[str, bool] = {}
        """Answers already given, by address text (peers repeat; bounded by _KNOWN_MAX)."""

    def __bool__(self) -> bool:
        return self.trusts_all or bool(self._networks)

    def __call__(self, host: str | None) -> bool:
        """True when ``host`` (an address as text) is a trusted proxy."""
        if self.trusts_all:
            return True
        if host is None:
            return False
        known = self._known.get(host)
        if known is None:
            ip = _ip(host)
            known = ip is not None and any(ip in network for network in self._networks)
            if len(self._known) >= _KNOWN_MAX:
                self._known.clear()
            self._known[host] = known
        return known


_KNOWN_MAX = 4096
"""Most addresses whose answer :class:`TrustedProxies` remembers (then it starts afresh)."""

_NAMES = frozenset({"forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})


def _ip(host: str | None) -> _IP | None:
    if not host:
        return None
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What a request reports about its client after the forwarding headers were read."""

    client: Address | None
    scheme: str
    """``http`` or ``https``: what the client spoke to the first proxy."""
    host: str | None
    """The ``Host`` the client asked for (None: the request's own ``Host`` header)."""


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _node(value: str) -> tuple[str, int]:
    """``for=`` node (RFC 7239 6): ``"[2001:db8::1]:4711"``, ``192.0.2.1:80``, ``unknown``."""
    value = _unquote(value)
    if value.startswith("["):
        end = value.find("]")
        host, rest = (value[1:end], value[end + 1 :]) if end != -1 else (value, "")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, ""
    return host, int(port) if port.isdigit() else 0


def _forwarded_hops(headers: Headers) -> list[dict[str, str]]:
    hops: list[dict[str, str]] = []
    for field in headers.getlist("forwarded"):
        for element in _split(field, ","):
            pairs: dict[str, str] = {}
            for pair in _split(element, ";"):
                name, equals, value = pair.partition("=")
                if equals:
                    pairs[name.strip().lower()] = value.strip()
            hops.append(pairs)
    return hops


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and quoted:
            current.append(char)
            escaped = True
        elif char == '"':
            quoted = not quoted
            current.append(char)
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in (p.strip() for p in parts) if part]


def _list(headers: Headers, name: str) -> list[str]:
    return [
        item.strip() for field in headers.getlist(name) for item in field.split(",") if item.strip()
    ]


def _pick(trusted: TrustedProxies, nodes: list[str]) -> int:
    """The index of the client: the rightmost untrusted node, else the leftmost."""
    for index in range(len(nodes) - 1, -1, -1):
        if not trusted(nodes[index]):
            return index
    return 0


def _scheme(value: str | None, default: str) -> str:
    if value is None:
        return default
    value = _unquote(value).lower()
    return value if value in ("http", "https") else default


def resolve(
    headers: Headers, peer: Address | None, scheme: str, trusted: TrustedProxies
) -> Forwarded | None:
    """The client, scheme and host a request should report; None: the peer's own.

    ``scheme`` is the connection's (``http``/``https``). Headers are read only when ``peer``
    is a trusted proxy.
    """
    if peer is None or not headers.has_any(_NAMES) or not trusted(peer.host):
        return None
    hops = _forwarded_hops(headers) if "forwarded" in headers else []
    if hops:
        nodes = [_node(hop.get("for", "")) for hop in hops]
        index = _pick(trusted, [host for host, _ in nodes])
        hop = hops[index]
        host, port = nodes[index]
        client = Address(host, port) if _ip(host) is not None else peer
        forwarded_host = _unquote(hop["host"]) if "host" in hop else None
        return Forwarded(client, _scheme(hop.get("proto"), scheme), forwarded_host or None)
    addresses = _list(headers, "x-forwarded-for")
    protos = _list(headers, "x-forwarded-proto")
    hosts = _list(headers, "x-forwarded-host")
    if not (addresses or protos or hosts):
        return None
    client = peer
    index = len(addresses) - 1
    if addresses:
        index = _pick(trusted, [_node(a)[0] for a in addresses])
        host, port = _node(addresses[index])
        if _ip(host) is not None:
            client = Address(host, port)

    def aligned(values: list[str]) -> str | None:
        if not values:
            return None
        return values[index] if len(values) == len(addresses) else values[-1]

    return Forwarded(client, _scheme(aligned(protos), scheme), aligned(hosts))
