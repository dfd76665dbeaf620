"""Connection layer: drives the sans-I/O protocols over anyio byte streams."""
