"""A spikard app served by an ASGI server (uvicorn, hypercorn, granian) or mounted in one."""
