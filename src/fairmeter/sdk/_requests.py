"""A cheaper `Request(scope, receive)` for `MeteringMiddleware`'s customer function.

Kept out of `middleware` on purpose: that module may be compiled (mypyc, see ADR 12), and
a compiled module cannot define a subclass of Starlette's (interpreted) `Request`.
"""

from __future__ import annotations

from starlette.requests import Request, empty_receive, empty_send
from starlette.types import Receive, Scope

__all__ = ["plain_request"]


def _plain() -> type[Request]:
    """A cheaper `Request(scope, receive)` for the customer function on every request: a
    subclass whose constructor sets what Starlette's does, in one step, with the other
    attributes' starting values on the class. Used only when a real Request holds exactly
    those attributes (checked here, against the installed Starlette); else `Request`."""

    class _Request(Request):
        _send = staticmethod(empty_send)
        _stream_consumed = False
        _is_disconnected = False
        _form = None

        def __init__(self, scope: Scope, receive: Receive = empty_receive) -> None:
            self.scope = scope
            self._receive = receive

    probe: Scope = {"type": "http"}
    expected = {"scope", "_receive", "_send", "_stream_consumed", "_is_disconnected", "_form"}
    real = vars(Request(probe, empty_receive))
    if set(real) != expected or real["_form"] is not None or real["_stream_consumed"]:
        return Request
    return _Request


plain_request = _plain()
# The subclass, when it is used: a compiled caller makes one with `object.__new__` and sets
# its two attributes itself, with no Python frame for `__init__`. None: use `Request`.
plain_class: type[Request] | None = None if plain_request is Request else plain_request
