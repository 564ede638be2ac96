from __future__ import annotations

import httpx


def test_health_answers_ok(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
