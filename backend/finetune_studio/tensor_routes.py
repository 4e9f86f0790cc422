"""`POST /api/tensors`, `GET /api/tensors`, `GET /api/tensors/{id}`: captures from the debugger.

server.py includes this router inside its token-guarded `/api` router. The body cap is enforced while
reading, before any parsing: a capture over `MAX_BYTES` is answered 413 with what to do instead.
The payload is described in docs/tensors.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from .captures import MAX_BYTES, Capture, Captures, decode_array, encode_array
from .errors import TooLarge
from .store import Store


class ArrayData(BaseModel):
    """A float32 array: little-endian bytes, row-major, in base64 (NaN and ±inf survive)."""

    dtype: Literal["float32"] = "float32"
    shape: list[Annotated[int, Field(ge=0)]]
    data: str


class HistogramData(BaseModel):
    edges: list[float | None]
    counts: list[int]
    sample_size: int
    sampled: bool


class TensorSummary(BaseModel):
    """Mirrors `tensors.Summary`; non-finite floats travel as null."""

    kind: str
    shape: list[int]
    dtype: str
    device: str
    numel: int
    bytes: int
    requires_grad: bool = False
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    nan: int | None = None
    posinf: int | None = None
    neginf: int | None = None
    zeros: int | None = None
    histogram: HistogramData | None = None
    note: str | None = None
    text: str


class TensorCapture(BaseModel):
    """The body of POST /api/tensors (what `debug.build_payload` makes)."""

    name: str = Field(min_length=1, max_length=300)
    kind: Literal["tensor", "attention"]
    summary: TensorSummary
    view: dict[str, Any] = Field(default_factory=dict)
    arrays: dict[Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")], ArrayData] = Field(
        default_factory=dict, max_length=16)


class TensorInfo(BaseModel):
    id: str
    name: str
    kind: Literal["tensor", "attention"]
    created_at: float
    bytes: int = Field(description="size of the capture as it was sent")
    summary: TensorSummary


class TensorList(BaseModel):
    tensors: list[TensorInfo]


class TensorDetail(TensorInfo):
    view: dict[str, Any]
    arrays: dict[str, ArrayData]


def _info(capture: Capture) -> dict[str, Any]:
    return {"id": capture.id, "name": capture.name, "kind": capture.kind, "created_at": capture.created_at,
            "bytes": capture.bytes, "summary": capture.summary}


async def _read_capped(request: Request) -> bytes:
    """The body, or TooLarge once it passes MAX_BYTES. The rest is drained, not kept, so that the client
    (which sends everything before reading) gets the 413 instead of a broken connection."""
    body = bytearray()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= MAX_BYTES:
            body += chunk
    if size > MAX_BYTES:
        raise TooLarge(
            f"the capture is {size / 2**20:.1f} MiB, over the {MAX_BYTES // 2**20} MiB cap per capture",
            hint="capture a slice (x[0], x[:, :512]) or fewer layers; debug.capture pools big tensors itself")
    return bytes(body)


def tensor_router(store: Store, data_dir: Path) -> APIRouter:
    captures = Captures(store, data_dir / "tensors")
    router = APIRouter()

    @router.post("/tensors", status_code=201)
    async def create(request: Request) -> TensorInfo:
        body = await _read_capped(request)
        try:
            capture = TensorCapture.model_validate_json(body)
        except ValidationError as error:
            raise RequestValidationError(error.errors(include_url=False)) from None
        arrays = {name: decode_array(name, a.shape, a.data) for name, a in capture.arrays.items()}
        stored = await run_in_threadpool(
            captures.add, capture.name, capture.kind, capture.summary.model_dump(), capture.view, arrays,
            len(body))
        return TensorInfo.model_validate(_info(stored))

    @router.get("/tensors")
    def list_tensors(limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> TensorList:
        return TensorList(tensors=[TensorInfo.model_validate(_info(c)) for c in captures.list(limit)])

    @router.get("/tensors/{tensor_id}")
    def get_tensor(tensor_id: str) -> TensorDetail:
        capture, arrays = captures.get(tensor_id)
        return TensorDetail.model_validate(
            {**_info(capture), "view": capture.view,
             "arrays": {name: encode_array(a) for name, a in arrays.items()}})

    return router
