"""Turn a WebSocket handler into the session start the stream layer calls, decided once.

WebSocket handlers come in these shapes (all receive the :class:`~spikard.WebSocket`, or the
:class:`~spikard.Request` when their first parameter is annotated ``Request``):

- an async generator function: its items are sent (stream style);
- a function or coroutine function returning an async iterable, such as an aiostream pipe
  ``socket | pipe.map(f)``: its items are sent;
- a coroutine function that talks to the socket itself and returns None;
- a function returning :class:`~spikard.WebSocketResponse` (callback style).

Registration also reads the message types the handler declares (``WebSocket[ChatIn]``,
``AsyncIterator[ChatOut]``, or the route's ``receive=``/``send=``, which win), builds their
codecs, and checks the handler's shape: its parameters, its first parameter's annotation and
its return annotation. A mistake raises :class:`~spikard.errors.RoutingError` through
:func:`~spikard.app.registration.registration_error`; a return value that only shows at the
first call fails there with the same kind of message.
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import RoutingError
from ..messages import MessageType, WebSocketMessage, new_message
from ..requests import Request
from ..streams.callbacks import Callbacks
from ..streams.runner import HandlerResult, SessionStart
from ..streams.socket import WebSocket
from ..typed.codecs import Codec, MissingExtra, codec_for, describe_type
from ..typed.declared import (
    Unresolved,
    declared,
    iterated_type,
    message_parameter_type,
    resolved_hints,
)
from ..typed.families import strip_annotated, union_members
from ..typed.policy import OnInvalid, check_on_invalid
from .registration import registration_error

__all__ = ["WebSocketEndpoint", "adapt_websocket_handler", "build_websocket_endpoint"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_SENDS_ITSELF = (type(None), None, object, Any)
_AWAITABLES = (collections.abc.Awaitable, collections.abc.Coroutine)


@dataclass(frozen=True, slots=True)
class WebSocketEndpoint:
    """What registration made of a WebSocket handler.

    Attributes:
        start: calls the handler with the socket (the stream layer's session start).
        receive_type: the declared type of incoming messages; None: raw messages.
        send_type: the declared type of outgoing messages; None: raw or by their type.
        subprotocols: the route's subprotocols, in its order of preference.
    """

    start: SessionStart
    receive_type: Any
    send_type: Any
    subprotocols: tuple[str, ...]


class _Mistake(Exception):
    """A registration check failed: what is wrong and what to do."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem)


def _name(function: Callable[..., Any]) -> str:
    return getattr(function, "__name__", None) or "handler"


def _check_parameters(
    function: Callable[..., Any], signature: inspect.Signature, placeholders: Iterable[str]
) -> None:
    """One positional parameter for the socket; every other one has a default."""
    parameters = list(signature.parameters.values())
    positional = [p for p in parameters if p.kind in _POSITIONAL]
    takes_varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    if not positional and not takes_varargs:
        raise _Mistake(
            "takes no parameter",
            f"take the socket: async def {_name(function)}(socket: WebSocket)",
        )
    extra = [p.name for p in positional[1:] if p.default is inspect.Parameter.empty]
    keyword_only = [
        p.name
        for p in parameters
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    ]
    unfilled = extra + keyword_only
    if not unfilled:
        return
    named = ", ".join(repr(name) for name in unfilled)
    from_path = [name for name in unfilled if name in placeholders]
    if from_path:
        fix = (
            f"take only the socket and read socket.path_params[{from_path[0]!r}] "
            "(path parameters are not passed as arguments)"
        )
    else:
        fix = "take only the socket (or give the others defaults)"
    if extra:
        raise _Mistake(f"takes {len(extra) + 1} required parameters ({named} too)", fix)
    raise _Mistake(f"has a keyword-only parameter that nothing can fill ({named})", fix)


def _first_parameter(annotation: Any) -> tuple[bool, Any]:
    """(wants the request, the declared incoming type) from the first parameter's annotation."""
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is object:
        return False, None
    if isinstance(annotation, Unresolved):  # fall back to the name, as written
        text = annotation.text.replace(" ", "")
        if "[" in text and text.split("[", 1)[0].rsplit(".", 1)[-1] == "WebSocket":
            raise _Mistake(
                f"annotates its first parameter {annotation.text!r}, which cannot be "
                "resolved when the route is registered",
                "define the message types before the handler, or pass receive=...",
            )
        return text.rsplit(".", 1)[-1] == "Request", None
    plain = strip_annotated(annotation)
    if isinstance(plain, type):
        if issubclass(plain, Request):
            return True, None
        try:
            fits = issubclass(plain, WebSocket) or issubclass(WebSocket, plain)
        except TypeError:  # a Protocol that is not runtime-checkable: cannot tell
            fits = True
        if not fits:
            raise _Mistake(
                f"annotates its first parameter {describe_type(plain)!r}, which spikard "
                "cannot pass",
                "annotate it WebSocket (stream style) or Request (callback style)",
            )
        return False, None
    return False, message_parameter_type(annotation, WebSocket)


def _produces(annotation: Any) -> bool | None:
    """Whether a call returning ``annotation`` can produce messages; None: cannot tell."""
    annotation = strip_annotated(annotation)
    if isinstance(annotation, (Unresolved, typing.TypeVar)) or any(
        annotation is s for s in _SENDS_ITSELF
    ):
        return True
    members = union_members(annotation)
    if members is not None:
        answers = [_produces(member) for member in members]
        return False not in answers  # one member that cannot is a mistake
    origin = typing.get_origin(annotation)
    if origin is not None and any(origin is a for a in _AWAITABLES):
        arguments = typing.get_args(annotation)
        return _produces(arguments[-1]) if arguments else None
    cls = origin if isinstance(origin, type) else annotation
    if not isinstance(cls, type):
        return None
    return issubclass(cls, (AsyncIterable, Callbacks))


def _returned_type(function: Callable[..., Any], annotation: Any) -> Any:
    """The declared outgoing type from the return annotation (checking a call's result)."""
    if annotation is None:
        return None
    if inspect.isasyncgenfunction(function):
        return iterated_type(annotation)
    if _produces(annotation) is False:
        raise _Mistake(
            f"is annotated to return {describe_type(strip_annotated(annotation))!r}, which "
            "sends no messages",
            "yield the messages (async generator), return an async iterable or a "
            "WebSocketResponse, or send with socket.send() and return None",
        )
    origin = typing.get_origin(strip_annotated(annotation))
    if origin is not None and any(origin is a for a in _AWAITABLES):
        arguments = typing.get_args(strip_annotated(annotation))
        return iterated_type(arguments[-1]) if arguments else None
    return iterated_type(annotation)


def _codec(message_type: Any) -> Codec | None:
    if message_type is None:
        return None
    try:
        return codec_for(message_type)
    except MissingExtra as exc:
        raise _Mistake(
            f"declares messages of type {describe_type(message_type)}, which need "
            f"{exc.extra} (not installed)",
            f"pip install -e '.[{exc.extra}]' (spikard's {exc.extra} extra)",
        ) from None
    except TypeError as exc:
        raise _Mistake(
            f"declares messages of type {describe_type(message_type)}: {exc}",
            "declare a msgspec Struct, a pydantic model, a dataclass, a TypedDict or a "
            "tagged union of them",
        ) from None


def _check_subprotocols(subprotocols: Iterable[str]) -> tuple[str, ...]:
    names = (subprotocols,) if isinstance(subprotocols, str) else tuple(subprotocols)
    for name in names:
        if not isinstance(name, str) or not name or any(c in name for c in ' ,;"\t'):
            raise _Mistake(
                f"is registered with the subprotocol {name!r}",
                "name subprotocols with HTTP tokens, e.g. subprotocols=('chat.v1',)",
            )
    return names


def build_websocket_endpoint(
    function: Callable[..., Any],
    path: str = "/",
    *,
    receive: Any = None,
    send: Any = None,
    subprotocols: Iterable[str] = (),
    on_invalid: OnInvalid = "close",
    placeholders: Iterable[str] = (),
) -> WebSocketEndpoint:
    """Check a WebSocket handler, read its declared types and build its session start.

    Args:
        function: the user's handler.
        path: the route's path (for the error messages).
        receive: the incoming type; wins over the annotation ``WebSocket[X]``.
        send: the outgoing type; wins over the return annotation ``AsyncIterator[X]``.
        subprotocols: offered in preference order (the lazy accept picks the client's first
            offer among them).
        on_invalid: what an invalid message gets (:data:`~spikard.typed.OnInvalid`).
        placeholders: the path's parameter names (to suggest ``socket.path_params``).

    Raises:
        RoutingError: the handler cannot serve the route (see the module docs), or its
            types need a library that is not installed.
    """
    route = f"@app.websocket({path!r})"
    try:
        return _build(function, route, receive, send, subprotocols, on_invalid, placeholders)
    except _Mistake as mistake:
        raise registration_error(function, route, mistake.problem, mistake.fix) from None


def _build(
    function: Callable[..., Any],
    route: str,
    receive: Any,
    send: Any,
    subprotocols: Iterable[str],
    on_invalid: OnInvalid,
    placeholders: Iterable[str],
) -> WebSocketEndpoint:
    if not callable(function):
        raise _Mistake("is not callable", "register a function that takes the socket")
    try:
        on_invalid = check_on_invalid(on_invalid)
    except ValueError:
        raise _Mistake(
            f"is registered with on_invalid={on_invalid!r}",
            "use 'close', 'reply', 'raise' or a function of the error",
        ) from None
    preferred = _check_subprotocols(subprotocols)
    try:
        signature: inspect.Signature | None = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin or an extension: nothing to read
        signature = None
    hints = resolved_hints(function) if signature is not None else {}
    wants_request, annotated_receive = False, None
    send_annotation = None
    if signature is not None:
        _check_parameters(function, signature, placeholders)
        first = next(iter(signature.parameters.values()), None)
        if first is not None and first.kind in _POSITIONAL:
            annotation = hints.get(first.name, inspect.Parameter.empty)
            if receive is not None and isinstance(annotation, Unresolved):
                annotation = inspect.Parameter.empty  # receive= says what the text would
            wants_request, annotated_receive = _first_parameter(annotation)
        send_annotation = _returned_type(function, hints.get("return"))
    receive_type = declared(receive) if receive is not None else annotated_receive
    send_type = declared(send) if send is not None else send_annotation
    receive_codec = _codec(receive_type)
    send_codec = _codec(send_type)
    start = _session_start(
        function,
        route,
        wants_request,
        _route_settings(receive_codec, send_codec, on_invalid, preferred),
        send_codec is not None,
    )
    return WebSocketEndpoint(start, receive_type, send_type, preferred)


_Settings = tuple[Any, Any, OnInvalid, tuple[str, ...]]


def _route_settings(
    receive: Codec | None, send: Codec | None, on_invalid: OnInvalid, preferred: tuple[str, ...]
) -> _Settings | None:
    """What each connection's socket is told; None when the route declares nothing."""
    if receive is None and send is None and on_invalid == "close" and not preferred:
        return None  # untyped: the socket as it is, at no cost per connection
    return (
        None if receive is None else receive.decode,
        None if send is None else send.encode,
        on_invalid,
        preferred,
    )


def adapt_websocket_handler(function: Callable[..., Any], **declarations: Any) -> SessionStart:
    """Return the session start for a WebSocket handler, picking its shape now.

    ``declarations`` are :func:`build_websocket_endpoint`'s keywords.

    Raises:
        RoutingError: as :func:`build_websocket_endpoint`.
    """
    return build_websocket_endpoint(function, **declarations).start


def _check_result(result: object, function: Callable[..., Any], route: str) -> HandlerResult:
    """What the handler returned, when the session can use it.

    Raises:
        TypeError: anything else, with the message a registration mistake gets.
    """
    if result is None or isinstance(result, (Callbacks, AsyncIterable)):
        return result
    error: RoutingError = registration_error(
        function,
        route,
        f"returned {type(result).__name__!r}",
        "return an async iterable or a WebSocketResponse, yield the messages, or send "
        "with socket.send() and return None",
    )
    raise TypeError(str(error))


_PASS_THROUGH = (WebSocketMessage, str, bytes, bytearray, memoryview)


async def _encoded(
    source: AsyncIterable[Any], encode: Callable[[Any], str]
) -> AsyncIterator[object]:
    """``source``'s items, typed values as JSON text by the route's encoder.

    Messages, ``str`` and ``bytes`` pass through (the runner sends them as always).
    """
    text = MessageType.TEXT
    streamer = getattr(source, "stream", None)
    if callable(streamer):  # an aiostream Stream: iterate it inside its own context
        async with streamer() as streaming:
            async for item in streaming:
                yield item if isinstance(item, _PASS_THROUGH) else new_message(text, encode(item))
        return
    iterator = aiter(source)
    try:
        async for item in iterator:
            yield item if isinstance(item, _PASS_THROUGH) else new_message(text, encode(item))
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def _session_start(
    function: Callable[..., Any],
    route: str,
    wants_request: bool,
    settings: _Settings | None,
    encodes: bool,
) -> SessionStart:
    is_generator = inspect.isasyncgenfunction(function)
    is_coroutine = inspect.iscoroutinefunction(function)

    if settings is None:  # the untyped shapes, exactly as before
        if is_generator:
            if wants_request:

                async def start_generator_with_request(socket: WebSocket) -> HandlerResult:
                    return function(socket.request)  # type: ignore[no-any-return]

                return start_generator_with_request

            async def start_generator(socket: WebSocket) -> HandlerResult:
                return function(socket)  # type: ignore[no-any-return]

            return start_generator

        async def start_call(socket: WebSocket) -> HandlerResult:
            result = function(socket.request if wants_request else socket)
            # An aiostream Stream is awaitable too (it yields its last item): keep iterables.
            if is_coroutine or (
                inspect.isawaitable(result) and not isinstance(result, AsyncIterable)
            ):
                result = await result
            return _check_result(result, function, route)

        return start_call

    encode = settings[1] if encodes else None

    async def start_declared(socket: WebSocket) -> HandlerResult:
        socket._set_route(*settings)
        result = function(socket.request if wants_request else socket)
        if not is_generator and (
            is_coroutine or (inspect.isawaitable(result) and not isinstance(result, AsyncIterable))
        ):
            result = await result
        result = _check_result(result, function, route)
        if isinstance(result, Callbacks):
            result.use_route_declarations(*settings)
            return result
        if encode is not None and result is not None:
            return _encoded(result, encode)
        return result

    return start_declared
