"""The middleware's request path runs compiled where `make install` built it (ADR 12), and
from source under FAIRMETER_PURE_PYTHON=1 (how `make test` runs it a second time)."""

from __future__ import annotations

import os

import fairmeter.embedded
import fairmeter.sdk._refusals
import fairmeter.sdk.middleware
import fairmeter.storage.counters_local  # noqa: F401 - imported to be looked at
from fairmeter import _compiled


def test_each_module_runs_compiled_exactly_when_built_and_not_refused() -> None:
    pure = os.environ.get("FAIRMETER_PURE_PYTHON") == "1"
    running = _compiled.compiled()
    assert set(running) == set(_compiled.COMPILED)
    for name, compiled in running.items():
        assert compiled == (_compiled.built_for(name) is not None and not pure), name
    assert not _compiled.stale()  # a stale one would have been passed over, with a warning


def test_the_source_finder_answers_the_listed_modules_from_their_py_files() -> None:
    finder = _compiled._FromSource(["fairmeter.sdk._refusals"])
    spec = finder.find_spec("fairmeter.sdk._refusals", None)
    assert spec is not None and spec.origin is not None
    assert spec.origin.endswith("/fairmeter/sdk/_refusals.py")
    assert finder.find_spec("fairmeter.sdk.client", None) is None
