"""Captured tensors (`POST/GET /api/tensors`; the payload is described in docs/tensors.md): a summary, its
histogram, the arrays the dashboard draws, and the listing."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from ..spec import storable
from .base import INT64_MAX, Count, Finite, Name, ShortText, json_safe


class ArrayData(BaseModel):
    """A float32 array: little-endian bytes, row-major, in base64 (NaN and ±inf survive)."""

    dtype: Literal["float32"] = "float32"
    shape: list[Annotated[int, Field(ge=0, le=INT64_MAX)]] = Field(max_length=64)
    data: str


class HistogramData(BaseModel):
    edges: list[Finite | None] = Field(max_length=10_001)
    counts: list[Count] = Field(max_length=10_000)
    sample_size: Count
    sampled: bool


class TensorSummary(BaseModel):
    """Mirrors `tensors.Summary`; non-finite floats travel as null."""

    kind: Name
    shape: list[Count] = Field(max_length=64)
    dtype: Name
    device: Name
    numel: Count
    bytes: Count
    requires_grad: bool = False
    min: Finite | None = None
    max: Finite | None = None
    mean: Finite | None = None
    std: Finite | None = None
    nan: Count | None = None
    posinf: Count | None = None
    neginf: Count | None = None
    zeros: Count | None = None
    histogram: HistogramData | None = None
    note: ShortText | None = None
    text: ShortText


class TensorCapture(BaseModel):
    """The body of POST /api/tensors (what `debug.build_payload` makes)."""

    name: Annotated[str, Field(min_length=1, max_length=300), AfterValidator(storable)]
    kind: Literal["tensor", "attention"]
    summary: TensorSummary
    view: Annotated[dict[str, Any], AfterValidator(storable), AfterValidator(json_safe)] = Field(
        default_factory=dict, description="how the dashboard shows it (docs/tensors.md); non-finite numbers "
                                          "are stored as null")
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
    tensors: list[TensorInfo] = Field(description="newest first")
    next: int | None = Field(None, description="the cursor of the next page (ask with ?before=next); null on "
                             "the last")


class TensorDetail(TensorInfo):
    view: dict[str, Any]
    arrays: dict[str, ArrayData]
