"""Which ``Host`` header values a server answers: a guard against DNS rebinding.

A page on ``evil.example`` whose DNS name is re-pointed at ``127.0.0.1`` makes the browser
send requests to a local server with ``Host: evil.example``; same-origin rules then treat
the answers as evil.example's. Listing the names the server is really reached by
(``HTTPConfig.allowed_hosts``) refuses those requests with 400. Entries:

- a host name or address, ``"example.com"``, ``"127.0.0.1"``, ``"[::1]"`` (any port);
- ``"*.example.com"``: any name strictly below ``example.com``;
- ``"*"``: any host.

Comparison ignores case, the port and a trailing dot.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["HostMatcher", "host_name"]


def host_name(host: str) -> str:
    """The name of a ``Host`` value: lower-case, without its port and trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    name, _, _ = host.partition(":")
    return name.rstrip(".")


class HostMatcher:
    """Answers whether a ``Host`` header value is one the server answers.

    Raises:
        ValueError: an entry is empty, has a port, a scheme or a misplaced ``*``.
    """

    __slots__ = ("_exact", "_suffixes", "allows_any")

    def __init__(self, allowed: Iterable[str]) -> None:
        if isinstance(allowed, str):
            raise TypeError("allowed_hosts must be a tuple of host names, not a string")
        exact: set[str] = set()
        suffixes: list[str] = []
        for entry in allowed:
            name = entry.strip().lower().rstrip(".")
            if not name or "/" in name or (":" in name and not name.startswith("[")):
                raise ValueError(
                    f"allowed_hosts entry {entry!r}: give a host name such as 'example.com' "
                    "or '*.example.com' (no scheme, no port)"
                )
            if name.startswith("*.") and "*" not in name[2:]:
                suffixes.append(name[1:])
            elif "*" in name and name != "*":
                raise ValueError(f"allowed_hosts entry {entry!r}: '*' stands for subdomains only")
            else:
                exact.add(name)
        self.allows_any = "*" in exact
        """True when ``"*"`` was listed."""
        self._exact = frozenset(exact)
        self._suffixes = tuple(suffixes)

    def __call__(self, host: str) -> bool:
        """True when the ``Host`` header value ``host`` is allowed."""
        if self.allows_any:
            return True
        name = host_name(host)
        if name in self._exact:
            return True
        return any(name.endswith(suffix) and len(name) > len(suffix) for suffix in self._suffixes)

    def __repr__(self) -> str:
        return f"HostMatcher({sorted(self._exact) + ['*' + s for s in self._suffixes]!r})"
