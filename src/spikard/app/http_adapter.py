"""Turn an HTTP route function into the endpoint the app calls, deciding everything once.

How a route function's parameters are filled (checked at registration, see
:mod:`spikard.app.registration` for how mistakes are reported):

- a parameter annotated :class:`~spikard.Request` (or a subclass), or an *unannotated first
  positional* parameter that no path placeholder names, receives the request;
- a parameter named like a path placeholder receives that path parameter (converted by the
  placeholder's type, ``{id:int}``, or by the parameter's annotation, ``id: int``);
  ``**kwargs`` receives the path parameters no other parameter names;
- one parameter annotated with a model (msgspec Struct, pydantic model, dataclass,
  TypedDict, or a union of them) receives the JSON body, validated;
- every other parameter is a query parameter of the same name, converted by its annotation
  (see :mod:`spikard.app.query_values`), with its default when the query lacks it.

Malformed JSON answers 400; values that fail their types answer 422 listing every failing
field (:class:`~spikard.errors.RequestValidationError`). Functions may be sync or async, and
an async generator function streams its items (:class:`~spikard.StreamingResponse`).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..errors import RequestValidationError, RoutingError
from ..requests import Request
from ..responses import Response, to_response
from .json_body import BodyDecoder, body_decoder_for, is_model_type
from .query_values import MISSING, FieldError, QueryValue, query_value_for
from .registration import describe_function, registration_error

__all__ = ["HTTPEndpoint", "adapt_http_handler"]

HTTPEndpoint = Callable[[Request], Awaitable[Response]]

_Kind = inspect.Parameter


@dataclass(frozen=True, slots=True)
class _PathValue:
    name: str
    convert: QueryValue | None
    """Converts the matched text by the parameter's annotation (None: keep the value)."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """Where each parameter's value comes from, decided at registration."""

    request: tuple[str, ...]
    positional_request: bool
    """The request goes in as the first positional argument (a positional-only parameter)."""
    path: tuple[_PathValue, ...]
    query: tuple[QueryValue, ...]
    body: tuple[str, BodyDecoder] | None
    rest_of_path: tuple[str, ...]
    """Placeholders no parameter names, passed to ``**kwargs``."""


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    """The function's annotations, evaluated; one that cannot be resolved stays a string."""
    target = inspect.unwrap(function)
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        target = type(target).__call__  # a callable object: its method's annotations
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:
        pass
    namespace = dict(getattr(target, "__globals__", {}))
    resolved: dict[str, Any] = {}
    for name, annotation in getattr(target, "__annotations__", {}).items():
        try:
            resolved[name] = typing.get_type_hints(
                _Annotated(name, annotation), globalns=namespace, include_extras=True
            )[name]
        except Exception:
            resolved[name] = annotation
    return resolved


class _Annotated:
    """One annotation alone, for :func:`typing.get_type_hints`."""

    def __init__(self, name: str, annotation: Any) -> None:
        self.__annotations__ = {name: annotation}


def _is_request(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.rsplit(".", 1)[-1] == "Request"
    return isinstance(annotation, type) and issubclass(annotation, Request)


def _plan(function: Callable[..., Any], route: str, placeholders: tuple[str, ...]) -> _Plan:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        raise registration_error(
            function, route, "has no signature spikard can read", "register a plain function"
        ) from None
    hints = _hints(function)
    request: list[str] = []
    positional_request = False
    path: list[_PathValue] = []
    query: list[QueryValue] = []
    body: tuple[str, BodyDecoder] | None = None
    has_var_keyword = False
    parameters = list(signature.parameters.values())
    for index, parameter in enumerate(parameters):
        annotation = hints.get(parameter.name, parameter.annotation)
        if parameter.kind is _Kind.VAR_POSITIONAL:
            continue
        if parameter.kind is _Kind.VAR_KEYWORD:
            has_var_keyword = True
            continue
        unannotated = annotation is _Kind.empty
        first_free = (
            index == 0
            and unannotated
            and parameter.name not in placeholders
            and parameter.kind is not _Kind.KEYWORD_ONLY
        )
        if _is_request(annotation) or first_free:
            if parameter.kind is _Kind.POSITIONAL_ONLY:
                if index != 0:
                    raise registration_error(
                        function,
                        route,
                        f"takes the request in positional-only parameter {parameter.name!r}",
                        "make it the first parameter, or not positional-only",
                    )
                positional_request = True
            else:
                request.append(parameter.name)
            continue
        if parameter.kind is _Kind.POSITIONAL_ONLY:
            raise registration_error(
                function,
                route,
                f"has positional-only parameter {parameter.name!r}, which nothing can fill",
                "drop the '/' from its signature so it can be passed by name",
            )
        if parameter.name in placeholders:
            convert = None
            if not unannotated and annotation not in (str, Any):
                convert = query_value_for(parameter.name, annotation, MISSING)
                if convert is None:
                    raise registration_error(
                        function,
                        route,
                        f"annotates path parameter {parameter.name!r} as {annotation!r}",
                        "use str, int, float, bool, an Enum, a Literal or uuid.UUID",
                    )
            path.append(_PathValue(parameter.name, convert))
            continue
        if not unannotated and is_model_type(annotation):
            if body is not None:
                raise registration_error(
                    function,
                    route,
                    f"has two body parameters ({body[0]!r} and {parameter.name!r})",
                    "take one model for the JSON body (nest the other in it)",
                )
            try:
                body = (parameter.name, body_decoder_for(annotation))
            except (LookupError, TypeError) as unusable:
                raise registration_error(
                    function, route, f"declares body parameter {parameter.name!r}", str(unusable)
                ) from None
            continue
        if isinstance(annotation, str):
            raise registration_error(
                function,
                route,
                f"has parameter {parameter.name!r}: cannot resolve the annotation {annotation!r}",
                "define that type at module level (string annotations are looked up in the "
                "function's module)",
            )
        reader = query_value_for(parameter.name, annotation, parameter.default)
        if reader is None:
            raise registration_error(
                function,
                route,
                f"has parameter {parameter.name!r}: {_name(annotation)}, which nothing can fill",
                "annotate it Request, a model (the JSON body), or str/int/float/bool/list[...] "
                "for a query parameter",
            )
        query.append(reader)
    taken = {p.name for p in path}
    rest = tuple(name for name in placeholders if name not in taken)
    if rest and not has_var_keyword and not request and not positional_request:
        raise registration_error(
            function,
            route,
            f"takes no parameter for the path placeholder {rest[0]!r}",
            f"add a parameter named {rest[0]!r} (or take the Request and read request.path_params)",
        )
    return _Plan(
        tuple(request),
        positional_request,
        tuple(path),
        tuple(query),
        body,
        rest if has_var_keyword else (),
    )


def _name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)


def adapt_http_handler(
    function: Callable[..., Any], param_names: tuple[str, ...], route: str = ""
) -> HTTPEndpoint:
    """Return a coroutine that calls an HTTP route function and converts its result.

    Raises:
        RoutingError: the function cannot serve the route (see the module docs).
    """
    route = route or "HTTP route"
    if not callable(function):
        raise RoutingError(f"{route}: {function!r} is not callable")
    plan = _plan(function, route, param_names)
    is_coroutine = inspect.iscoroutinefunction(function)
    simple = not (plan.query or plan.body or any(p.convert for p in plan.path))
    where = describe_function(function)

    def converted(result: Any) -> Response:
        try:
            return to_response(result)
        except TypeError:
            raise TypeError(
                f"{route}: {where} returned {type(result).__name__!r}; return str, bytes, "
                "dict, list, a model instance, a Response or an async generator"
            ) from None

    if not (plan.path or plan.query or plan.body or plan.rest_of_path):
        # Only the request, if anything: the common route, called without building kwargs.
        positional = plan.positional_request
        names = plan.request

        async def request_only(request: Request) -> Response:
            if positional:
                result = function(request, **dict.fromkeys(names, request))
            elif names:
                result = function(**dict.fromkeys(names, request))
            else:
                result = function()
            if is_coroutine or inspect.isawaitable(result):
                result = await result
            return converted(result)

        return request_only

    async def endpoint(request: Request) -> Response:
        path_params = request.path_params
        kwargs: dict[str, Any] = dict.fromkeys(plan.request, request)
        if simple:
            for value in plan.path:
                kwargs[value.name] = path_params[value.name]
        else:
            errors: list[FieldError] = []
            for value in plan.path:
                raw = path_params[value.name]
                if value.convert is not None and isinstance(raw, str):
                    raw = value.convert.read([raw], errors)
                    if errors and errors[-1]["loc"][:2] == ["query", value.name]:
                        errors[-1]["loc"][0] = "path"
                kwargs[value.name] = raw
            if plan.query:
                query = request.query_params
                for reader in plan.query:
                    kwargs[reader.name] = reader.read(query.getlist(reader.name), errors)
            if plan.body is not None:
                name, decode = plan.body
                body = await request.body()
                if not body:
                    errors.append({"loc": ["body"], "msg": "Field required", "type": "missing"})
                else:
                    try:
                        kwargs[name] = decode(body)
                    except RequestValidationError as invalid:
                        errors.extend(invalid.errors)
            if errors:
                raise RequestValidationError(errors)
        for name in plan.rest_of_path:
            kwargs[name] = path_params[name]
        result = function(request, **kwargs) if plan.positional_request else function(**kwargs)
        if is_coroutine or inspect.isawaitable(result):
            result = await result
        return converted(result)

    return endpoint
