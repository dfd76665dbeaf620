"""What happens to a message that fails its declared type: the ``on_invalid`` outcomes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeAlias

from .errors import InvalidMessage

__all__ = ["OnInvalid", "check_on_invalid"]

OnInvalid: TypeAlias = Literal["close", "reply", "raise"] | Callable[[InvalidMessage], Any]
"""The outcome of an invalid message (not JSON, or not the declared type):

- ``"close"`` (the default): close with 1007 and a reason naming the first error;
- ``"reply"``: send ``{"type": "error", "errors": [{"loc", "msg", "type"}, ...]}`` and go on;
- ``"raise"``: the read raises :class:`~spikard.typed.InvalidMessage` in the handler;
- a function ``f(error)`` (sync or async): what it returns, when not None, is sent back,
  and reading goes on; it may raise (``raise error`` closes with 1007).
"""

_NAMES = ("close", "reply", "raise")


def check_on_invalid(on_invalid: object) -> OnInvalid:
    """Return ``on_invalid`` when it is a valid outcome.

    Raises:
        ValueError: it is neither one of the names nor a callable.
    """
    if callable(on_invalid) or (isinstance(on_invalid, str) and on_invalid in _NAMES):
        return on_invalid  # type: ignore[return-value]
    raise ValueError(
        f"on_invalid={on_invalid!r}: use 'close', 'reply', 'raise' or a function of the error"
    )
