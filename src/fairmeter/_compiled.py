"""The modules `make install` compiles with mypyc (ADR 12), and how the sources stay in
charge: `FAIRMETER_PURE_PYTHON=1` imports them from source even where compiled ones
exist (the test suite runs the hot path both ways), and in a source checkout a compiled
module older than its source is passed over, with a warning, for the source."""

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


def choose() -> None:
    """Called once, from `fairmeter/__init__.py`, before any of them is imported."""
    if os.environ.get("FAIRMETER_PURE_PYTHON") == "1":
        names: Sequence[str] = COMPILED
    else:
        names = stale()
        if names:
            warnings.warn(
                f"compiled {', '.join(names)} older than the source: the source is used "
                "(run `make compile` to build them again)",
                RuntimeWarning,
                stacklevel=3,
            )
    if names:
        sys.meta_path.insert(0, _FromSource(names))


def compiled() -> dict[str, bool]:
    """Which of them run compiled in this process (the bench prints it)."""
    return {name: not str(getattr(sys.modules.get(name), "__file__", "")).endswith(".py")
            for name in COMPILED}  # fmt: skip
