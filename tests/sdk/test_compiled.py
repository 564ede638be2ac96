"""The middleware's request path runs compiled where `make install` built it (ADR 12), and
from source under FAIRMETER_PURE_PYTHON=1 (how `make test` runs it a second time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import fairmeter.embedded
import fairmeter.sdk._refusals
import fairmeter.sdk.middleware
import fairmeter.storage.counters_local  # noqa: F401 - imported to be looked at
from fairmeter import _compiled


def test_each_module_runs_compiled_exactly_when_built_and_not_refused() -> None:
    refused = _compiled.from_sources(os.environ.get("FAIRMETER_PURE_PYTHON", ""))
    running = _compiled.compiled()
    assert set(running) == set(_compiled.COMPILED)
    for name, compiled in running.items():
        assert compiled == (_compiled.built_for(name) is not None and name not in refused), name
    assert not _compiled.stale()  # a stale one would have been passed over, with a warning


def test_the_setting_names_all_none_or_some_of_the_modules() -> None:
    assert _compiled.from_sources("1") == list(_compiled.COMPILED)
    assert _compiled.from_sources("") == _compiled.from_sources("0") == []
    some = " fairmeter.sdk._refusals, fairmeter.sdk.middleware "
    # in COMPILED's order, whatever the setting's
    assert _compiled.from_sources(some) == ["fairmeter.sdk._refusals", "fairmeter.sdk.middleware"]


def test_a_name_that_is_not_compiled_is_refused_with_a_warning() -> None:
    with pytest.warns(RuntimeWarning, match="fairmeter.sdk.midleware, which is not compiled"):
        chosen = _compiled.from_sources("fairmeter.sdk.midleware,fairmeter.embedded")
    assert chosen == ["fairmeter.embedded"]


def test_some_modules_from_their_sources_the_others_as_built() -> None:
    named = "fairmeter.sdk.middleware,fairmeter.sdk._refusals"
    script = (
        "import json, fairmeter.embedded, fairmeter.sdk.middleware, "
        "fairmeter.storage.counters_local\n"
        "from fairmeter import _compiled\n"
        "print(json.dumps(_compiled.compiled()))"
    )
    env = {**os.environ, "FAIRMETER_PURE_PYTHON": named}
    out = subprocess.run([sys.executable, "-W", "error", "-c", script], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    running = json.loads(out.stdout)
    for name in _compiled.COMPILED:
        built = _compiled.built_for(name) is not None
        assert running[name] == (built and name not in named.split(",")), name


def test_the_source_finder_answers_the_listed_modules_from_their_py_files() -> None:
    finder = _compiled._FromSource(["fairmeter.sdk._refusals"])
    spec = finder.find_spec("fairmeter.sdk._refusals", None)
    assert spec is not None and spec.origin is not None
    assert spec.origin.endswith("/fairmeter/sdk/_refusals.py")
    assert finder.find_spec("fairmeter.sdk.client", None) is None
