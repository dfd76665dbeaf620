"""AsyncAPI 3.0.0 documents of an application's WebSocket and Server-Sent Events routes.

``app.asyncapi()`` returns the document as a dict, ``app.add_asyncapi_route()`` serves it,
and ``python -m spikard asyncapi module:app`` prints it. :func:`build_document` works from
any sequence of routes and :func:`dumps` writes a document as JSON text.

::

    from spikard.asyncapi import dumps

    print(dumps(app.asyncapi(title="chat", version="2.1.0"), indent=2))
"""

from .document import ASYNCAPI_VERSION, build_document, dumps
from .endpoint import AsyncAPIEndpoint

__all__ = ["ASYNCAPI_VERSION", "AsyncAPIEndpoint", "build_document", "dumps"]
