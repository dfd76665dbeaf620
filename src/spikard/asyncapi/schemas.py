"""JSON schemas of message types, collected as the ``components.schemas`` of one document.

A type is described by the library that validates it at run time: msgspec for everything it
supports (Structs, dataclasses, TypedDicts, builtins and containers of them), pydantic for
pydantic models and dataclasses and for types that contain one, in the mode of the
direction (``validation`` for what the server receives, ``serialization`` for what it
sends). Both are optional
extras, imported only when a document has a typed route.

AsyncAPI 3.0's Schema Object is JSON Schema draft 07 with a *string* ``discriminator``;
both libraries write draft 2020-12 with OpenAPI's discriminator *object*. Every schema is
therefore normalized, without changing what it accepts:

- ``prefixItems`` (a tuple) becomes a draft-07 ``items`` array, and the ``items`` beside it
  (``false``: nothing more) becomes ``additionalItems``;
- a discriminator object becomes its ``propertyName``; the ``anyOf`` beside it becomes
  ``oneOf`` (the tag makes the members exclusive);
- component names keep to ``[A-Za-z0-9_.-]`` (the pattern of component keys; ASCII, so a
  ``$ref`` stays a plain URI reference), and a name already taken by a different schema gets
  a ``_2`` suffix (``_3``, ...), its references rewritten. The same schema under the same
  name is stored once, however many routes use it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, Literal

__all__ = ["REF_PREFIX", "Mode", "SchemaRegistry", "component_name"]

REF_PREFIX = "#/components/schemas/"
"""Where every ``$ref`` of a generated schema points."""

Mode = Literal["validation", "serialization"]
"""``validation`` describes what is accepted (received), ``serialization`` what is sent."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")

# Keywords whose values are data, never schemas: kept as the library wrote them.
_DATA = frozenset({"default", "const", "enum", "examples", "example"})
# Keywords whose values map names (property names, ...) to schemas.
_SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "definitions", "$defs", "dependentSchemas"}
)


def component_name(name: str) -> str:
    """``name`` as a component key: runs of other characters than ``[A-Za-z0-9_.-]`` are ``_``."""
    return _UNSAFE.sub("_", name) or "Schema"


def _optional(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _plain(value: Any) -> Any:
    """Data as JSON holds it: msgspec writes a tuple default as a tuple, JSON has lists."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _normalize(node: Any, names: Mapping[str, str]) -> Any:
    """A draft-07 copy of a schema, its component references renamed by ``names``."""
    if isinstance(node, list):
        return [_normalize(item, names) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DATA:
            out[key] = _plain(value)
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _normalize(sub, names) for name, sub in value.items()}
        elif key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
            target = value[len(REF_PREFIX) :]
            out[key] = REF_PREFIX + names.get(target, component_name(target))
        else:
            out[key] = _normalize(value, names)
    discriminator = out.get("discriminator")
    if isinstance(discriminator, dict):
        property_name = discriminator.get("propertyName")
        if isinstance(property_name, str):
            out["discriminator"] = property_name
        else:
            del out["discriminator"]
        if "anyOf" in out and "oneOf" not in out:
            out["oneOf"] = out.pop("anyOf")
    if isinstance(out.get("prefixItems"), list):
        rest = out.pop("items", None)
        out["items"] = out.pop("prefixItems")
        if rest is not None:
            out["additionalItems"] = rest
    return out


class SchemaRegistry:
    """The ``components.schemas`` of one document, filled one batch of types at a time."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}
        """Component name to (normalized) schema, in the order they were added."""

    def describe(self, requests: Sequence[tuple[Any, Mode, str]]) -> list[Any]:
        """Return the schema of each requested type, adding the components they refer to.

        A named type (a Struct, model, dataclass, TypedDict, enum) comes back as
        ``{"$ref": "#/components/schemas/Name"}``; others (``list[int]``) inline.

        Args:
            requests: ``(type, mode, where)``; ``where`` names the use in error messages
                (``"@app.websocket('/chat'): the send type of chat() (app.py:12)"``).

        Raises:
            TypeError: neither msgspec nor pydantic can describe a type (the message names
                its ``where``), or the library a type needs is not installed.
        """
        msgspec = _optional("msgspec")
        by_msgspec: list[int] = []
        by_pydantic: list[int] = []
        for index, (declared, _, _) in enumerate(requests):
            if (
                msgspec is not None
                and not _is_pydantic(declared)
                and _msgspec_describes(msgspec, declared)
            ):
                by_msgspec.append(index)
            else:
                by_pydantic.append(index)
        results: list[Any] = [None] * len(requests)
        if by_msgspec:
            assert msgspec is not None
            roots, components = msgspec.json.schema_components(
                [requests[i][0] for i in by_msgspec], ref_template=REF_PREFIX + "{name}"
            )
            for index, schema in zip(by_msgspec, self._merge(roots, components), strict=True):
                results[index] = schema
        if by_pydantic:
            chosen = [requests[i] for i in by_pydantic]
            roots, components = _pydantic_schemas(chosen, msgspec is not None)
            for index, schema in zip(by_pydantic, self._merge(roots, components), strict=True):
                results[index] = schema
        return results

    def _merge(self, roots: Sequence[Any], batch: Mapping[str, Any]) -> list[Any]:
        """Add a library's components under free names; return ``roots`` pointing at them."""
        names: dict[str, str] = {}
        for name in batch:
            names[name] = self._free(component_name(name), names, allow_existing=True)
        # A component whose name holds a different schema moves to a fresh name, and so does
        # every component that refers to a moved one (its text changed): repeat until stable.
        # Each name moves at most once (fresh names are new), so this ends.
        for _ in range(len(batch) + 1):
            moved = False
            for name, schema in batch.items():
                existing = self.components.get(names[name])
                if existing is not None and existing != _normalize(schema, names):
                    names[name] = self._free(component_name(name), names, allow_existing=False)
                    moved = True
            if not moved:
                break
        for name, schema in batch.items():
            self.components.setdefault(names[name], _normalize(schema, names))
        return [_normalize(root, names) for root in roots]

    def _free(self, base: str, claimed: Mapping[str, str], *, allow_existing: bool) -> str:
        """``base``, or ``base_2``, ``base_3``... not claimed by this batch (nor stored)."""
        taken = set(claimed.values())
        candidate, suffix = base, 1
        while candidate in taken or (not allow_existing and candidate in self.components):
            suffix += 1
            candidate = f"{base}_{suffix}"
        return candidate


def _is_pydantic(declared: Any) -> bool:
    """A pydantic model or pydantic dataclass (pydantic validates it, whatever msgspec says)."""
    if not isinstance(declared, type):
        return False
    if getattr(declared, "__pydantic_fields__", None) is not None:
        return True
    return any(
        base.__module__.startswith("pydantic") and base.__name__ == "BaseModel"
        for base in declared.__mro__
    )


def _msgspec_describes(msgspec: ModuleType, declared: Any) -> bool:
    try:
        msgspec.json.schema_components((declared,))
    except (TypeError, ValueError):
        return False
    return True


def _pydantic_schemas(
    requests: Sequence[tuple[Any, Mode, str]], have_msgspec: bool
) -> tuple[list[Any], dict[str, Any]]:
    """Root schemas and ``$defs`` of ``requests`` from pydantic, in one batch."""
    pydantic = _optional("pydantic")
    if pydantic is None:
        declared, _, where = requests[0]
        extra = "pydantic" if have_msgspec else "msgspec"
        raise TypeError(
            f"{where} is {_type_name(declared)}, which needs {extra} for its JSON Schema: "
            f"pip install 'spikard-stream[{extra}]' (or pip install -e '.[{extra}]')"
        )
    adapters = []
    for index, (declared, mode, where) in enumerate(requests):
        try:
            adapter = pydantic.TypeAdapter(declared)
            adapter.json_schema(mode=mode)  # fails here for a type without a JSON Schema
        except Exception as error:
            reason = str(error).strip().partition("\n")[0]  # pydantic adds paragraphs of help
            raise TypeError(
                f"{where} is {_type_name(declared)}, which has no JSON Schema in msgspec or "
                f"pydantic ({reason}); declare a msgspec Struct, a pydantic model, a "
                "dataclass or a TypedDict"
            ) from None
        adapters.append((index, mode, adapter))
    keyed, definitions = pydantic.TypeAdapter.json_schemas(
        adapters, ref_template=REF_PREFIX + "{model}"
    )
    roots = [keyed[(index, mode)] for index, mode, _ in adapters]
    return roots, dict(definitions.get("$defs", {}))


def _type_name(declared: Any) -> str:
    name = getattr(declared, "__qualname__", None)
    return name if isinstance(name, str) else repr(declared)
