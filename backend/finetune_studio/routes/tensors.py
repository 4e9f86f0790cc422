"""`POST /api/tensors`, `GET /api/tensors` (paged), `GET` and `DELETE /api/tensors/{id}`: captures from the
debugger, kept within a total budget (`captures.py`).

The guard caps the body (`Settings.max_capture_bytes`, 32 MiB by default) before any parsing. The
payload is described in docs/tensors.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ..arrays import decode_array, encode_array
from ..captures import Capture
from ..wire import INT64_MAX, TensorCapture, TensorDetail, TensorInfo, TensorList, error_responses
from .deps import CapturesDep

router = APIRouter()


def _info(capture: Capture) -> dict[str, Any]:
    return {"id": capture.id, "name": capture.name, "kind": capture.kind, "created_at": capture.created_at,
            "bytes": capture.bytes, "summary": capture.summary}


@router.post("/tensors", status_code=201, responses=error_responses(400),
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"$ref": "#/components/schemas/TensorCapture"}}}}})
async def create(request: Request, captures: CapturesDep) -> TensorInfo:
    body = await request.body()  # capped by the guard (settings.max_capture_bytes)
    try:
        capture = TensorCapture.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False)) from None
    arrays = {name: decode_array(name, a.shape, a.data) for name, a in capture.arrays.items()}
    stored = await run_in_threadpool(
        captures.add, capture.name, capture.kind, capture.summary.model_dump(), capture.view, arrays, len(body))
    return TensorInfo.model_validate(_info(stored))


@router.get("/tensors")
def list_tensors(captures: CapturesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                 before: Annotated[int | None, Query(ge=1, le=INT64_MAX, description="`next` of the page before")]
                 = None) -> TensorList:
    """Newest first, a page at a time: ask again with `before=<next>` until `next` is null."""
    page, next_before = captures.list(limit, before)
    return TensorList(tensors=[TensorInfo.model_validate(_info(c)) for c in page], next=next_before)


@router.delete("/tensors/{tensor_id}", status_code=204)
def delete_tensor(tensor_id: str, captures: CapturesDep) -> None:
    captures.delete(tensor_id)


@router.get("/tensors/{tensor_id}")
def get_tensor(tensor_id: str, captures: CapturesDep) -> TensorDetail:
    capture, arrays = captures.get(tensor_id)
    return TensorDetail.model_validate(
        {**_info(capture), "view": capture.view, "arrays": {name: encode_array(a) for name, a in arrays.items()}})
