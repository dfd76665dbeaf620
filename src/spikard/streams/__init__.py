"""Stream layer: a WebSocket as an async iterator in and an async iterable out."""
