"""spikard's server running a plain ASGI 3 application."""
