"""Summaries, histograms, slices and downsampled previews of tensors (no I/O).

Inspection is pure, gradient-free and frugal: statistics run on the tensor's device, only scalars move
to the CPU, and work happens in chunks of at most `CHUNK` elements so that the float upcast of a
multi-GB tensor never exists whole. The chunked statistics and exact non-finite counts live in
`tensorstats.py`, downsampling for pictures in `pooling.py`, attention views in `attention.py`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .tensorstats import Tally
from .wire import json_safe

CHUNK = 1 << 22  # elements per step: a float64 upcast of one chunk is 32 MB
# histogram sample size: under torch's parallel grain (32768 elements), so that the ops on the sample
# run on the calling thread (on busy cores, waiting for a thread pool costs more than the work)
SAMPLE = (1 << 15) - 1
BINS = 50


@dataclass(frozen=True)
class Histogram:
    edges: list[float]  # len(counts) + 1
    counts: list[int]
    sample_size: int  # finite values the counts come from
    sampled: bool  # False when every element was counted


@dataclass(frozen=True)
class Summary:
    kind: str  # "tensor", "ndarray", "list" or "tensors" (a sequence of same-shape tensors, stacked)
    shape: list[int]
    dtype: str
    device: str
    numel: int
    bytes: int
    requires_grad: bool
    min: float | None  # min/max/mean/std over the finite values; of |z| for complex
    max: float | None
    mean: float | None
    std: float | None  # population standard deviation (ddof=0, as numpy.std)
    nan: int | None  # None when there is no data (meta tensors)
    posinf: int | None
    neginf: int | None
    zeros: int | None
    histogram: Histogram | None
    note: str | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: non-finite floats become None."""
        return json_safe(asdict(self))  # type: ignore[no-any-return]


def as_tensors(obj: Any) -> tuple[list[torch.Tensor], list[int], str]:
    """The parts, logical shape and kind of `obj`: a tensor, an ndarray, a nested list of numbers, or a
    list/tuple of same-shape tensors (treated as stacked, without copying them together)."""
    if isinstance(obj, torch.Tensor):
        _check_layout(obj)
        return [obj], list(obj.shape), "tensor"
    if isinstance(obj, list | tuple) and obj and all(isinstance(t, torch.Tensor) for t in obj):
        first = obj[0]
        for t in obj:
            _check_layout(t)
            if t.shape != first.shape or t.dtype != first.dtype or t.device != first.device:
                raise TypeError(
                    f"a sequence of tensors of different shapes/dtypes/devices ({list(first.shape)} "
                    f"{first.dtype} {first.device} vs {list(t.shape)} {t.dtype} {t.device}): "
                    "capture one element at a time")
        return list(obj), [len(obj), *first.shape], "tensors"
    import numpy as np

    if isinstance(obj, np.ndarray):
        return [_from_numpy(obj)], list(obj.shape), "ndarray"
    if isinstance(obj, list | tuple | int | float | bool | complex):
        try:
            array = np.asarray(obj)
        except ValueError as error:  # ragged nesting
            raise TypeError(f"cannot make an array of this {type(obj).__name__}: {error}") from None
        if array.dtype == object:
            raise TypeError(f"cannot summarise a {type(obj).__name__} of non-numbers")
        return [_from_numpy(array)], list(array.shape), "list"
    raise TypeError(f"cannot summarise a {type(obj).__module__}.{type(obj).__name__}: give a torch tensor, "
                    "a NumPy array, a nested list of numbers or a list of same-shape tensors")


def _check_layout(t: torch.Tensor) -> None:
    if t.layout != torch.strided:
        raise TypeError(f"a {t.layout} tensor: summarise t.to_dense() for a small one, or t.values()")


def _from_numpy(array: Any) -> torch.Tensor:
    import numpy as np

    if array.dtype.kind == "f" and array.dtype.itemsize > 8:
        array = array.astype(np.float64)  # torch has no long double
    elif array.dtype.kind not in "biufc":
        raise TypeError(f"cannot summarise a NumPy array of dtype {array.dtype}")
    if any(s < 0 for s in array.strides):
        array = np.ascontiguousarray(array)  # torch refuses negative strides (a reversed view)
    return torch.from_numpy(array)


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def as_float(c: torch.Tensor, wide_ints: bool) -> torch.Tensor:
    """The float values statistics and pictures are made of: |z| for complex, 0/1 for bool, float32 for
    low-precision floats, float64 (exact below 2**53) or float32 for integers."""
    if c.is_complex():
        return (c.to(torch.complex64) if c.dtype == torch.complex32 else c).abs()
    if c.dtype in (torch.float32, torch.float64):
        return c
    if c.is_floating_point() or c.dtype == torch.bool:
        return c.to(torch.float32)
    return c.to(torch.float64 if wide_ints else torch.float32)


def flat_chunks(x: torch.Tensor, limit: int | None = None) -> Iterator[torch.Tensor]:
    """1-D pieces of `x` of at most `limit` (default CHUNK) elements: views of a contiguous tensor,
    bounded copies of a strided one (walking the first dimension), never a copy of the whole."""
    limit = limit or CHUNK
    if x.numel() <= limit:
        yield x.reshape(-1)
        return
    if x.is_contiguous():
        flat = x.view(-1)
        for start in range(0, flat.numel(), limit):
            yield flat[start:start + limit]
        return
    row = x[0].numel()
    if row <= limit:
        step = limit // row
        for start in range(0, x.shape[0], step):
            yield x[start:start + step].reshape(-1)
    else:
        for i in range(x.shape[0]):
            yield from flat_chunks(x[i], limit)


@torch.no_grad()
def summarize(obj: Any) -> Summary:
    """Shape, dtype, device, statistics, non-finite counts and a histogram of `obj` (see `as_tensors`)."""
    parts, shape, kind = as_tensors(obj)
    first = parts[0]
    numel = math.prod(shape)
    common = dict(kind=kind, shape=shape, dtype=_dtype_name(first), device=str(first.device), numel=numel,
                  bytes=numel * first.element_size(), requires_grad=first.requires_grad)
    if first.is_meta:
        return _finish(common, None, None, None, "meta tensor: shape and dtype only, no data")
    if numel == 0:
        return _finish(common, None, [0, 0, 0, 0], None, "empty")
    tally = Tally()
    for part in parts:
        for c in flat_chunks(part):
            tally.add(c, as_float(c, wide_ints=True))
    moments, counts = tally.moments, tally.counts
    std = math.sqrt(max(moments.m2, 0.0) / moments.n) if moments.n else None
    stats = (moments.lo, moments.hi, moments.mean, std) if moments.n else None
    histogram = _histogram(parts, stats[0], stats[1], any(counts[:3])) if stats else None
    note = None
    if first.is_complex():
        note = "min/max/mean/std and histogram of |z|"
    elif first.is_floating_point() and first.dtype not in (torch.float32, torch.float64):
        note = f"statistics in float32 from {_dtype_name(first)}"
    if stats is None:
        note = "no finite values"
    return _finish(common, stats, counts, histogram, note)


def _histogram(parts: list[torch.Tensor], lo: float, hi: float, non_finite: bool) -> Histogram:
    """Counts over [lo, hi] from a seeded sample (the same tensor always gives the same picture)."""
    numel = sum(p.numel() for p in parts)
    sampled = numel > SAMPLE
    pieces = []
    for p in parts:
        if not sampled:
            pieces.append(as_float(p.reshape(-1), wide_ints=False))
            continue
        k = max(1, SAMPLE * p.numel() // numel)
        generator = torch.Generator(device=p.device).manual_seed(0)
        flat_index = torch.randint(0, p.numel(), (k,), generator=generator, device=p.device)
        picked = p.view(-1)[flat_index] if p.is_contiguous() else p[torch.unravel_index(flat_index, p.shape)]
        pieces.append(as_float(picked, wide_ints=False))
    sample = torch.cat(pieces).to(torch.float64 if pieces[0].dtype == torch.float64 else torch.float32)
    if non_finite:
        sample = sample[torch.isfinite(sample)]
    dtype = parts[0].dtype
    integral = not (dtype.is_floating_point or dtype.is_complex)
    if integral and hi - lo < BINS:
        # one bin per integer value, centred on it
        edges = [lo - 0.5 + i for i in range(int(hi - lo) + 2)]
    elif hi == lo:
        edges = [lo - 0.5, lo + 0.5]
    else:
        edges = [lo + (hi - lo) * i / BINS for i in range(BINS + 1)]
    counts = torch.histc(sample, bins=len(edges) - 1, min=edges[0], max=edges[-1])
    return Histogram(edges, [int(c) for c in counts.tolist()], int(sample.numel()), sampled)


def _finish(common: dict[str, Any], stats: tuple[float, float, float, float | None] | None,
            counts: list[int] | None, histogram: Histogram | None, note: str | None) -> Summary:
    lo, hi, mean, std = stats if stats else (None, None, None, None)
    nan, posinf, neginf, zeros = counts if counts else (None, None, None, None)
    fields: dict[str, Any] = dict(common, min=lo, max=hi, mean=mean, std=std, nan=nan, posinf=posinf,
                                  neginf=neginf, zeros=zeros, histogram=histogram, note=note)
    return Summary(**fields, text=_text(fields))


def _num(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.4g}"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def _text(f: dict[str, Any]) -> str:
    """One line, no ANSI colour: `tensor[2, 3] float32 cpu n=6 24 B min=.. max=.. mean=.. std=.. NaN=1`."""
    words = [f"{f['kind']}[{', '.join(map(str, f['shape']))}]", f["dtype"], f["device"],
             f"n={f['numel']}", _size(f["bytes"])]
    if f["requires_grad"]:
        words.append("grad")
    if f["nan"] is None:
        words.append("(no data)")
    elif f["numel"] == 0:
        words.append("(empty)")
    elif f["min"] is None:
        words.append("(no finite values)")
    elif f["min"] == f["max"] == 0:
        words.append("all zeros")
    else:
        words += [f"min={_num(f['min'])}", f"max={_num(f['max'])}", f"mean={_num(f['mean'])}",
                  f"std={_num(f['std'])}"]
    for key, label in (("nan", "NaN"), ("posinf", "+Inf"), ("neginf", "-Inf")):
        if f[key]:
            words.append(f"{label}={f[key]}")
    if f["note"] and f["note"].startswith("min/max"):
        words.append("(of |z|)")
    return " ".join(words)


def slice2d(x: torch.Tensor, dims: Sequence[int] = (-2, -1),
            index: Sequence[int] | None = None) -> torch.Tensor:
    """The 2-D view of `x` over `dims` (rows, columns), the other dimensions fixed at `index` (in their
    order; zeros by default). A 1-D tensor is one row; a 0-D one is 1x1. No copy."""
    if x.dim() < 2:
        return x.reshape(1, -1)
    rows, cols = (d % x.dim() for d in dims)
    if rows == cols:
        raise ValueError(f"dims must name two different dimensions, got {list(dims)} for {x.dim()}-D")
    others = [d for d in range(x.dim()) if d not in (rows, cols)]
    index = list(index) if index is not None else [0] * len(others)
    if len(index) != len(others):
        raise ValueError(f"index needs {len(others)} positions (dims {others}), got {len(index)}")
    view = x
    for d, i in sorted(zip(others, index, strict=True), reverse=True):
        if not -x.shape[d] <= i < x.shape[d]:
            raise IndexError(f"index {i} out of range for dimension {d} of size {x.shape[d]}")
        view = view.select(d, i)
    return view if rows < cols else view.T
