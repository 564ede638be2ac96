"""A cheaper `Request(scope, receive)` for `MeteringMiddleware`'s customer function.

Kept out of `middleware` on purpose: that module may be compiled (mypyc, see ADR 12), and
a compiled module cannot define a subclass of Starlette's (interpreted) `Request`.
"""

from __future__ import annotations

from starlette.requests import Request, empty_receive, empty_send
from starlette.types import Scope

__all__ = ["plain_class"]


def _plain() -> type[Request] | None:
    """A cheaper `Request(scope, receive)` for the customer function on every request: a
    subclass that holds the other attributes' starting values on the class, so a caller
    makes one with `object.__new__` and sets `scope` and `_receive` itself, with no Python
    frame for `__init__`. None when a real Request holds other attributes than those
    (checked here, against the installed Starlette): then build a `Request`."""

    class _Request(Request):
        _send = staticmethod(empty_send)
        _stream_consumed = False
        _is_disconnected = False
        _form = None

    probe: Scope = {"type": "http"}
    expected = {"scope", "_receive", "_send", "_stream_consumed", "_is_disconnected", "_form"}
    real = vars(Request(probe, empty_receive))
    if set(real) != expected or real["_form"] is not None or real["_stream_consumed"]:
        return None
    return _Request


plain_class = _plain()
