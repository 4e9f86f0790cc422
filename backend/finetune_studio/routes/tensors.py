"""`POST /api/tensors`, `GET /api/tensors`, `GET /api/tensors/{id}`: captures from the debugger.

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
from ..wire import TensorCapture, TensorDetail, TensorInfo, TensorList
from .deps import CapturesDep

router = APIRouter()


def _info(capture: Capture) -> dict[str, Any]:
    return {"id": capture.id, "name": capture.name, "kind": capture.kind, "created_at": capture.created_at,
            "bytes": capture.bytes, "summary": capture.summary}


@router.post("/tensors", status_code=201)
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
def list_tensors(captures: CapturesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> TensorList:
    return TensorList(tensors=[TensorInfo.model_validate(_info(c)) for c in captures.list(limit)])


@router.get("/tensors/{tensor_id}")
def get_tensor(tensor_id: str, captures: CapturesDep) -> TensorDetail:
    capture, arrays = captures.get(tensor_id)
    return TensorDetail.model_validate(
        {**_info(capture), "view": capture.view, "arrays": {name: encode_array(a) for name, a in arrays.items()}})
