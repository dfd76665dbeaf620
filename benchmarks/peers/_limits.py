"""Per-client limits off for benchmark servers: the load generator connects from one address.

The keywords exist only in spikard versions that have the limits, so ``--before`` runs of
older revisions (which import these peers) keep working.
"""

from __future__ import annotations

from dataclasses import fields

from spikard import WebSocketConfig

_NAMES = ("max_connections_per_client", "handshake_rate")

NO_CLIENT_LIMITS: dict[str, None] = {
    field.name: None for field in fields(WebSocketConfig) if field.name in _NAMES
}
