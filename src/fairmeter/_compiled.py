"""The modules `make install` compiles with mypyc (ADR 12), and how the sources stay in
charge: `FAIRMETER_PURE_PYTHON=1` imports them from source even where compiled ones
exist (the test suite runs the hot path both ways), `FAIRMETER_PURE_PYTHON=<names>` only
the modules named, and in a source checkout a compiled module older than its source is
passed over, with a warning, for the source.

Compiled modules call each other's compiled code directly: the compiled middleware uses
the compiled `_refusals` whatever `sys.modules` holds. Name `fairmeter.sdk.middleware`
and `fairmeter.sdk._refusals` together (the middleware's part), or `fairmeter.embedded`
and `fairmeter.storage.counters_local` (the engine's)."""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec
from pathlib import Path
from types import ModuleType

# The request path of `MeteringMiddleware` with the in-process engine.
COMPILED = (
    "fairmeter.storage.counters_local",
    "fairmeter.embedded",
    "fairmeter.sdk._refusals",
    "fairmeter.sdk.middleware",
)
_PACKAGE = Path(__file__).resolve().parent


class _FromSource:
    """A meta path finder: these modules from their `.py` files."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in self.names:
            return None
        source = _source_of(name)
        return importlib.util.spec_from_file_location(name, source) if source.exists() else None


def _source_of(name: str) -> Path:
    return _PACKAGE.joinpath(*name.split(".")[1:]).with_suffix(".py")


def built_for(name: str) -> Path | None:
    """The module's compiled file for this interpreter, if one was built."""
    source = _source_of(name)
    built = source.with_suffix(EXTENSION_SUFFIXES[0])
    return built if built.exists() else None


def stale() -> list[str]:
    """The compiled modules older than their source, in a source checkout (an installed
    wheel's files carry no meaningful times)."""
    if not (_PACKAGE.parent.name == "src" and (_PACKAGE.parents[1] / "pyproject.toml").exists()):
        return []
    found = []
    for name in COMPILED:
        source = _source_of(name)
        built = built_for(name)
        if built is not None and source.exists() and built.stat().st_mtime < source.stat().st_mtime:
            found.append(name)
    return found


def from_sources(setting: str) -> list[str]:
    """The modules `FAIRMETER_PURE_PYTHON` asks to run from their sources: "1" all of
    them; a comma-separated list of names (`fairmeter.sdk.middleware,...`) those only,
    which measures each module's part (whether compiling it pays depends on the machine:
    ADR 12). A name that is not one of them is refused with a warning, not ignored."""
    setting = setting.strip()
    if setting in ("", "0"):
        return []
    if setting == "1":
        return list(COMPILED)
    names = [name.strip() for name in setting.split(",") if name.strip()]
    unknown = [name for name in names if name not in COMPILED]
    if unknown:
        warnings.warn(
            f"FAIRMETER_PURE_PYTHON names {', '.join(unknown)}, which is not compiled; "
            f'give "1" or some of: {", ".join(COMPILED)}',
            RuntimeWarning,
            stacklevel=4,
        )
    return [name for name in COMPILED if name in names]


def choose() -> None:
    """Called once, from `fairmeter/__init__.py`, before any of them is imported."""
    chosen = from_sources(os.environ.get("FAIRMETER_PURE_PYTHON", ""))
    late = [name for name in stale() if name not in chosen]
    if late:
        warnings.warn(
            f"compiled {', '.join(late)} older than the source: the source is used "
            "(run `make compile` to build them again)",
            RuntimeWarning,
            stacklevel=3,
        )
    names: Sequence[str] = [*chosen, *late]
    if names:
        sys.meta_path.insert(0, _FromSource(names))


def compiled() -> dict[str, bool]:
    """Which of them run compiled in this process (the bench prints it)."""
    return {name: not str(getattr(sys.modules.get(name), "__file__", "")).endswith(".py")
            for name in COMPILED}  # fmt: skip
