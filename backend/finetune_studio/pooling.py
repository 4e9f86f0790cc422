"""Block-reduce tensors for pictures: previews of whole tensors and heatmaps of large matrices.

Works on the tensor's device in pieces of at most `tensors.CHUNK` input elements (each piece is
upcast to float32 on its own), so a multi-GB tensor is never copied whole; the result is small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

from . import tensors
from .tensors import as_float

Mode = Literal["mean", "maxabs"]


def factors_for(shape: Sequence[int], max_numel: int, max_side: Sequence[int] | None = None) -> list[int]:
    """Block sizes per dimension so that the pooled shape holds at most `max_numel` elements (and each
    side at most `max_side`): the longest pooled side is halved until it fits."""
    factors = [1] * len(shape)
    if max_side is not None:
        factors = [max(1, math.ceil(n / m)) for n, m in zip(shape, max_side, strict=True)]

    def pooled() -> list[int]:
        return [math.ceil(n / f) for n, f in zip(shape, factors, strict=True)]

    while math.prod(pooled()) > max_numel:
        out = pooled()
        d = out.index(max(out))
        factors[d] = math.ceil(shape[d] / math.ceil(out[d] / 2))
    return factors


@torch.no_grad()
def pool(x: torch.Tensor, factors: Sequence[int], mode: Mode = "mean") -> torch.Tensor:
    """Block-reduce `x` by `factors` (one per dimension; a short last block keeps its own mean) into a
    float32 tensor on `x`'s device. `maxabs` keeps the signed value of largest magnitude of each block
    (spikes survive; the mean would blur them). NaN in a block makes the block NaN."""
    if len(factors) != x.dim():
        raise ValueError(f"{len(factors)} factors for a {x.dim()}-D tensor")
    if x.numel() <= tensors.CHUNK:
        return _pool_small(as_float(x, wide_ints=False), factors, mode)
    f0, rest = factors[0], x.numel() // x.shape[0]
    if rest * f0 <= tensors.CHUNK:
        step = (tensors.CHUNK // (rest * f0)) * f0
        return torch.cat([_pool_small(as_float(x[i:i + step], wide_ints=False), factors, mode)
                          for i in range(0, x.shape[0], step)])
    blocks = []
    for i in range(0, x.shape[0], f0):
        rows = [pool(x[j], factors[1:], mode) for j in range(i, min(i + f0, x.shape[0]))]
        blocks.append(_combine(rows, mode)[None])
    return torch.cat(blocks)


def _combine(rows: list[torch.Tensor], mode: Mode) -> torch.Tensor:
    if mode == "mean":
        return torch.stack(rows).mean(0)
    return _reduce(torch.stack(rows), 0, mode)


def _reduce(x: torch.Tensor, dim: int, mode: Mode) -> torch.Tensor:
    if mode == "mean":
        return x.mean(dim)
    hi, lo = x.amax(dim), x.amin(dim)
    return torch.where(hi.abs() >= lo.abs(), hi, lo)


def _pool_small(x: torch.Tensor, factors: Sequence[int], mode: Mode) -> torch.Tensor:
    x = x.to(torch.float32)
    for d, f in enumerate(factors):
        n = x.shape[d]
        if f == 1 or n == 0:
            continue
        full = n // f
        parts = []
        if full:
            main = x.narrow(d, 0, full * f)  # splitting one dimension in two is always a view
            parts.append(_reduce(main.reshape(*main.shape[:d], full, f, *main.shape[d + 1:]), d + 1, mode))
        if n % f:
            parts.append(_reduce(x.narrow(d, full * f, n % f), d, mode).unsqueeze(d))
        x = torch.cat(parts, d)
    return x


def downsample(m: torch.Tensor, max_rows: int = 512, max_cols: int = 512,
               mode: Mode = "mean") -> tuple[torch.Tensor, list[int]]:
    """A 2-D matrix reduced to at most max_rows x max_cols (float32, on the CPU) and the block sizes."""
    if m.dim() != 2:
        raise ValueError(f"downsample takes a 2-D matrix, got {m.dim()}-D: use slice2d first")
    factors = [max(1, math.ceil(m.shape[0] / max_rows)), max(1, math.ceil(m.shape[1] / max_cols))]
    return pool(m, factors, mode).cpu(), factors
