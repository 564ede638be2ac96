"""POST /v1/events: CloudEvents in, per-item outcomes out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from fairmeter.api import codec
from fairmeter.api.deps import ingest, runtime
from fairmeter.api.problems import PROBLEM_JSON, TYPE_BASE
from fairmeter.domain.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType
from fairmeter.domain.events import IngestResult
from fairmeter.domain.keys import Scope
from fairmeter.domain.windows import to_us
from fairmeter.services.ingest import IngestRequest
from fairmeter.services.runtime import Runtime

router = APIRouter(tags=["events"])

SINGLE = ("application/cloudevents+json",)
BATCH = ("application/cloudevents-batch+json",)
EITHER = ("application/json", "")

_EXAMPLE = {
    "specversion": "1.0",
    "id": "req-7f3a",
    "source": "api-gateway",
    "type": "api.request",
    "subject": "acme",
    "time": "2026-11-26T10:00:00Z",
    "data": {"tokens": 1200, "model": "large"},
}


@router.post(
    "/v1/events",
    summary="Record usage events (CloudEvents 1.0: structured, batch or binary mode)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/cloudevents+json": {"example": _EXAMPLE},
                "application/cloudevents-batch+json": {"example": [_EXAMPLE]},
                "application/json": {"example": _EXAMPLE},
            },
        }
    },
    responses={
        200: {"description": "Per-item outcome: accepted, duplicates, rejected"},
        422: {"description": "Nothing was accepted", "content": {PROBLEM_JSON: {}}},
    },
)
async def post_events(
    request: Request, _: Scope = Depends(ingest), rt: Runtime = Depends(runtime)
) -> Response:
    body = await _read_limited(request, rt.policy.max_body_bytes)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    now = rt.clock.now()

    def work() -> IngestResult:
        if "ce-specversion" in request.headers and media not in SINGLE + BATCH:
            items, rejected = codec.parse_binary(request.headers, body, now, rt.policy)
            return rt.ingest.record(IngestRequest(items, rejected, to_us(now), batch=False))
        is_batch = _is_batch(media, body)
        parse = codec.parse_batch if is_batch else codec.parse_single
        items, rejected = parse(body, now, rt.policy)
        return rt.ingest.record(IngestRequest(items, rejected, to_us(now), batch=is_batch))

    result = await run_in_threadpool(work)
    return _render(result, request.url.path)


def _is_batch(media: str, body: bytes) -> bool:
    first = body.lstrip()[:1]
    if media in BATCH:
        if first != b"[":
            raise MalformedBody("a cloudevents-batch+json body must be a JSON array")
        return True
    if media in SINGLE:
        if first != b"{":
            raise MalformedBody("a cloudevents+json body must be one JSON object")
        return False
    if media in EITHER:
        if first not in (b"[", b"{"):
            raise MalformedBody("the body must be a JSON object (one event) or array (a batch)")
        return first == b"["
    raise UnsupportedMediaType(
        f"{media!r} is not accepted; send application/cloudevents+json, "
        "application/cloudevents-batch+json or application/json"
    )


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes; split it into batches")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes; split it into batches")
        chunks.append(chunk)
    return b"".join(chunks)


def _render(result: IngestResult, path: str) -> Response:
    body = result.as_dict()
    if result.accepted == 0 and result.duplicates == 0 and result.rejected:
        count = len(result.rejected)
        body.update(
            type=TYPE_BASE + "invalid_events",
            title="No event was accepted",
            status=422,
            code="invalid_events",
            detail=f"{count} event{'s' if count != 1 else ''} rejected; see 'rejected'",
            instance=path,
        )
        return JSONResponse(body, status_code=422, media_type=PROBLEM_JSON)
    return JSONResponse(body)
