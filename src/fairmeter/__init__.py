"""fairmeter: meter every unit of use exactly once, warn, enforce, bill and settle."""

from fairmeter import _compiled

__version__ = "0.1.0"

_compiled.choose()
