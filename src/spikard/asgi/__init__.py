"""ASGI both ways: a spikard app on any ASGI server, and spikard's server for any ASGI app.

- :mod:`spikard.asgi.hosted`: a :class:`~spikard.Spikard` app is an ASGI 3 application
  (``uvicorn myapp:app``, ``Mount("/rt", app=spikard_app)``); its WebSocket routes run on an
  ASGI driver under the same connection contract as spikard's own drivers.
- :mod:`spikard.asgi.serving`: spikard's server runs any ASGI 3 application
  (``python -m spikard module:app`` detects one).
"""
