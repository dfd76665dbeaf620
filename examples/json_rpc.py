"""A JSON-RPC 2.0 calculator, written with the callback shim (``WebSocketResponse``).

::

    python examples/json_rpc.py
    python -m spikard examples.json_rpc:app

Connect to ``ws://127.0.0.1:8000/rpc`` and send requests such as
``{"jsonrpc": "2.0", "method": "add", "params": [2, 3], "id": 1}`` (params may also be named:
``{"a": 2, "b": 3}``). Methods: ``add``, ``subtract``, ``multiply``, ``divide``.
Batches (a JSON array of requests) and notifications (requests without ``id``, which get no
reply) work as the specification says. The same dispatcher answers ``POST /rpc`` over plain
HTTP, which shows that the protocol logic does not care about the transport.

Errors are JSON-RPC error objects:

=======  ================  ===================================================
code     message           when
=======  ================  ===================================================
-32700   Parse error       the message is not JSON
-32600   Invalid Request   not a request object (or an empty batch)
-32601   Method not found  an unknown method
-32602   Invalid params    not two numbers, positional or named ``a``/``b``
-32603   Internal error    the result cannot be encoded (an infinite float)
1        Division by zero  ``divide`` with a zero divisor (an application error)
=======  ================  ===================================================
"""

from __future__ import annotations

import argparse
import json
import math
import operator
from collections.abc import Callable
from typing import Any

from spikard import Request, Response, Spikard, WebSocketMessage, WebSocketResponse

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
DIVISION_BY_ZERO = 1

Number = int | float


class RPCError(Exception):
    """An error to report as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def _divide(a: Number, b: Number) -> Number:
    if b == 0:
        raise RPCError(DIVISION_BY_ZERO, "Division by zero")
    return a / b


METHODS: dict[str, Callable[[Number, Number], Number]] = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": _divide,
}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _operands(params: object) -> tuple[Number, Number]:
    if isinstance(params, list) and len(params) == 2:
        a, b = params
    elif isinstance(params, dict) and set(params) == {"a", "b"}:
        a, b = params["a"], params["b"]
    else:
        raise RPCError(INVALID_PARAMS, "Invalid params", "expected [a, b] or {a, b}")
    if not (_is_number(a) and _is_number(b)):
        raise RPCError(INVALID_PARAMS, "Invalid params", "a and b must be numbers")
    return a, b


def _error(request_id: Any, error: RPCError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": error.to_json(), "id": request_id}


def handle_call(call: object) -> dict[str, Any] | None:
    """Answer one request object; None for a notification (a request without ``id``)."""
    if not isinstance(call, dict):
        return _error(None, RPCError(INVALID_REQUEST, "Invalid Request"))
    request_id = call.get("id")
    if not _valid_id(request_id):
        return _error(None, RPCError(INVALID_REQUEST, "Invalid Request", "bad id"))
    if call.get("jsonrpc") != "2.0" or not isinstance(call.get("method"), str):
        return _error(request_id, RPCError(INVALID_REQUEST, "Invalid Request"))
    is_notification = "id" not in call
    try:
        method = METHODS.get(call["method"])
        if method is None:
            raise RPCError(METHOD_NOT_FOUND, "Method not found", call["method"])
        result = method(*_operands(call.get("params")))
        if isinstance(result, float) and not math.isfinite(result):
            raise RPCError(INTERNAL_ERROR, "Internal error", "result is not a finite number")
    except RPCError as error:
        return None if is_notification else _error(request_id, error)
    return None if is_notification else {"jsonrpc": "2.0", "result": result, "id": request_id}


def _valid_id(value: object) -> bool:
    return value is None or (isinstance(value, (str, int)) and not isinstance(value, bool))


def handle_payload(text: str) -> str | None:
    """Answer a whole message: one request or a batch. None when there is nothing to send."""
    try:
        payload = json.loads(text)
    except ValueError:
        return json.dumps(_error(None, RPCError(PARSE_ERROR, "Parse error")))
    if isinstance(payload, list):
        if not payload:
            return json.dumps(_error(None, RPCError(INVALID_REQUEST, "Invalid Request")))
        replies = [reply for reply in map(handle_call, payload) if reply is not None]
        return json.dumps(replies) if replies else None
    reply = handle_call(payload)
    return None if reply is None else json.dumps(reply)


app = Spikard()


@app.websocket("/rpc")
def rpc(request: Request) -> WebSocketResponse:
    # Annotating the first parameter as Request selects the callback style: the handler gets
    # the handshake request and returns the callbacks for this connection.
    def on_message(message: WebSocketMessage) -> WebSocketMessage | None:
        text = message.as_text()
        if text is None:
            data = message.as_binary() or b""
            text = data.decode("utf-8", errors="replace")
        reply = handle_payload(text)
        return None if reply is None else WebSocketMessage.text(reply)

    return WebSocketResponse(on_message=on_message)


@app.post("/rpc")
async def rpc_over_http(request: Request) -> Response:
    reply = handle_payload(await request.text())
    if reply is None:
        return Response(status_code=204)  # only notifications: nothing to answer
    return Response(reply, media_type="application/json")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="spikard JSON-RPC 2.0 calculator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    app.run(args.host, args.port, backend=args.backend)
