"""The curl and Python examples in the README and docs/ run, as written, against a server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```(bash|python)\n(.*?)```", re.DOTALL)
# Blocks that set up a machine or only show placeholders are not examples to run.
SKIP = re.compile(r"^(make |export |pip install)", re.MULTILINE)


def _blocks(path: Path) -> list[tuple[str, str]]:
    return [(lang, code) for lang, code in BLOCK.findall(path.read_text()) if not SKIP.search(code)]


@pytest.fixture
def server(tmp_path: Path) -> object:
    """A fresh server and database per page: pages must not depend on each other."""
    url = f"sqlite:///{tmp_path / 'docs.db'}"
    live = LiveServer(url).start()
    key = _admin_key(url)
    headers = {"Authorization": f"Bearer {key}"}
    httpx.post(f"{live.url}/v1/customers", json={"key": "acme", "name": "Acme"}, headers=headers)
    httpx.post(
        f"{live.url}/v1/meters",
        json={
            "key": "api_calls",
            "event_type": "api.request",
            "aggregation": "count",
            "group_by": {"endpoint": "$.endpoint"},
        },
        headers=headers,
    )
    yield {"url": live.url, "key": key, "database_url": url}
    live.stop()


def _admin_key(database_url: str) -> str:
    from fairmeter.domain.keys import Scope
    from fairmeter.services.keys import create_key
    from fairmeter.services.runtime import Runtime
    from fairmeter.storage.database import Database, make_engine

    rt = Runtime(Database(make_engine(database_url)))
    try:
        return create_key(rt.db, rt.clock, Scope.ADMIN, "docs")
    finally:
        rt.close()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_doc_examples_run_as_written(doc: Path, server: dict[str, str]) -> None:
    env = {
        **os.environ,
        "FAIRMETER_URL": server["url"],
        "FAIRMETER_API_KEY": server["key"],
        "FAIRMETER_DATABASE_URL": server["database_url"],
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    for lang, code in _blocks(doc):
        command = (
            ["bash", "-euo", "pipefail", "-c", code]
            if lang == "bash"
            else [sys.executable, "-c", code]
        )
        done = subprocess.run(
            command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, (
            f"{doc.name} example failed:\n{code}\n{done.stdout}\n{done.stderr}"
        )
