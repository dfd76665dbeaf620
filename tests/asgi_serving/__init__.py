"""spikard's server serving plain ASGI apps (Starlette, FastAPI, raw callables)."""
