"""Sans-I/O protocol layer: HTTP/1.1 (h11) and WebSocket (wsproto). No I/O, no anyio here."""
