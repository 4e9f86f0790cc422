"""Exact statistics of a tensor walked chunk by chunk: NaN, +Inf, -Inf and zero counts, and the count,
mean, variance, min and max of the finite values, combined across chunks in float64 on the CPU.

`Tally.add` takes one chunk (at most `tensors.CHUNK` elements) and its float values. A chunk whose float
sum is finite holds no NaN/Inf: its statistics are a few reductions on its own device and nothing
chunk-sized is allocated (the common case). A chunk that holds NaN or Inf is masked on its device,
except on the CPU: there `torch`'s masked kernels run on every core, slow down badly when the cores
are busy, and allocate chunk-sized temporaries, so from the first such chunk on, the rest of the tensor
goes through single-threaded NumPy over cache-sized pieces with preallocated scratch buffers, about
seven passes over each piece in all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

PIECE = 1 << 16  # elements per NumPy step on the CPU: the piece, its copy and its mask stay in the cache

_NATIVE_MINMAX = {torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64}


@dataclass
class Moments:
    """Running count/mean/M2 (Chan et al.'s parallel combination), min and max, in float64 on the CPU."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf

    def add(self, n: int, mean: float, var: float, lo: float, hi: float) -> None:
        if n == 0:
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += var * n + delta * delta * self.n * n / total
        self.n = total
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)


@dataclass
class Tally:
    """Counts and moments of the chunks added so far."""

    moments: Moments = field(default_factory=Moments)
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # nan, +inf, -inf, zeros
    numpy_pieces: bool = False  # set by the first CPU chunk that held NaN/Inf
    _scratch: dict[Any, tuple[Any, Any]] = field(default_factory=dict)  # NumPy dtype -> (mask, copy)

    def add(self, c: torch.Tensor, v: torch.Tensor) -> None:
        """`c`: a 1-D chunk; `v`: its float values (`tensors.as_float`), the same tensor for float32/64."""
        if self.numpy_pieces and v.device.type == "cpu":
            self.add_numpy(v.detach().numpy())
            return
        total = v.sum()
        if (c.is_floating_point() or c.is_complex()) and not math.isfinite(float(total)):  # one sync
            if v.device.type == "cpu":
                self.numpy_pieces = True
                self.add_numpy(v.detach().numpy())
            else:
                _device_masked(v, self.moments, self.counts)
            return
        _finite(c, v, total, self.moments, self.counts)

    def add_numpy(self, a: Any) -> None:
        """A contiguous 1-D float32/float64 array (a CPU chunk, zero-copy), piece by piece."""
        import numpy as np

        if a.dtype not in self._scratch:
            self._scratch[a.dtype] = (np.empty(PIECE, dtype=bool), np.empty(PIECE, dtype=a.dtype))
        mask, copy = self._scratch[a.dtype]
        with np.errstate(over="ignore"):  # float32 sums of huge finite values: redone in float64
            for start in range(0, a.size, PIECE):
                piece = a[start:start + PIECE]
                _numpy_piece(piece, mask[:piece.size], copy[:piece.size], self.moments, self.counts)


def _finite(c: torch.Tensor, v: torch.Tensor, total: torch.Tensor, moments: Moments, counts: list[int]) -> None:
    """Reductions only: a chunk-sized temporary is slow to make (fresh pages), a reduction is not."""
    spread = torch.var(v, correction=0)  # (var_mean, which would give the mean, was 5x slower on the CPU)
    native = c.dtype in _NATIVE_MINMAX
    lo, hi = torch.aminmax(c if native else v)
    nonzero = torch.count_nonzero(v)
    # one transfer of the float scalars per chunk (and one of the integer extremes, kept exact)
    values = torch.stack([total.double(), spread.double(), lo.double(), hi.double(), nonzero.double()]).tolist()
    if native:
        values[2], values[3] = torch.stack([lo, hi]).tolist()
    n = v.numel()
    counts[3] += n - int(values[4])
    mean, var = values[0] / n, values[1]
    if mean * mean > 100 * var and v.dtype == torch.float32:
        # float32 sums lose the digits the spread needs to a mean over 10x the spread (LayerNorm
        # weights near 1, say): redo them on the deviations
        shift = torch.tensor(mean, dtype=v.dtype, device=v.device)
        deviations = v - shift  # a chunk-sized temporary, for such chunks only
        residual, var = torch.stack([deviations.sum(), torch.var(deviations, correction=0)]).tolist()
        mean = float(shift) + residual / n
    moments.add(n, mean, var, values[2], values[3])


def _device_masked(v: torch.Tensor, moments: Moments, counts: list[int]) -> None:
    """A float chunk holding NaN/Inf (or finite values whose float32 sum overflows) on an accelerator:
    masked `where` passes on the device rather than `v[finite]` (a compaction syncs and is slower);
    only scalars come back, in two transfers."""
    finite = torch.isfinite(v)
    n, nan, posinf = torch.stack([torch.count_nonzero(finite), torch.count_nonzero(torch.isnan(v)),
                                  torch.count_nonzero(v == math.inf)]).tolist()
    counts[0] += nan
    counts[1] += posinf
    counts[2] += v.numel() - n - nan - posinf
    if n == 0:
        return
    kept = torch.where(finite, v, 0.0)  # the non-finite values add nothing to the sums
    total = kept.sum(dtype=torch.float64)
    centred = torch.where(finite, v - (total / n).to(v.dtype), 0.0)
    lo = torch.where(finite, v, math.inf).amin()
    hi = torch.where(finite, v, -math.inf).amax()
    values = torch.stack([total, torch.dot(centred, centred).double(), lo.double(), hi.double(),
                          torch.count_nonzero(kept).double()]).tolist()
    counts[3] += n - int(values[4])
    moments.add(n, values[0] / n, values[1] / n, values[2], values[3])


def _numpy_piece(a: Any, mask: Any, copy: Any, moments: Moments, counts: list[int]) -> None:
    """One piece on the CPU, through scratch buffers of its size. Passes over the piece: isfinite, and
    for a piece with NaN/Inf a copy whose non-finite values are zeroed (by index: they are usually
    few); then == 0, sum, sum of squares, min and max (NaN-ignoring `fmin`/`fmax`, or of the copy when
    it holds Inf)."""
    import numpy as np

    np.isfinite(a, out=mask)
    bad = np.flatnonzero(np.logical_not(mask, out=mask))
    n = a.size - len(bad)
    kept, fill = a, None
    if len(bad):
        values = a[bad]
        nan, posinf = int(np.count_nonzero(np.isnan(values))), int(np.count_nonzero(values == np.inf))
        counts[0] += nan
        counts[1] += posinf
        counts[2] += a.size - n - nan - posinf
        if n == 0:
            return
        fill = a[np.argmin(mask)] if nan < len(bad) else None  # a finite value, for min/max with Inf
        np.copyto(copy, a)
        copy[bad] = 0  # the non-finite values add nothing to the sums
        kept = copy
    counts[3] += int(np.count_nonzero(np.equal(a, 0, out=mask)))  # NaN == 0 is False
    total = float(np.add.reduce(kept))  # pairwise summation: float32 keeps ~1e-7 of the piece's sum
    if not math.isfinite(total):  # finite float32 values whose float32 sum overflows
        total = float(np.add.reduce(kept, dtype=np.float64))
    mean = total / n
    var = max(_sum_squares(kept) / n - mean * mean, 0.0)
    if fill is None:  # fmin/fmax skip NaN, not Inf
        lo, hi = float(np.fmin.reduce(a)), float(np.fmax.reduce(a))
    else:  # a finite value of the piece in place of each non-finite one leaves min and max as they are
        copy[bad] = fill
        lo, hi = float(np.minimum.reduce(copy)), float(np.maximum.reduce(copy))
    if mean * mean > var:  # float32 sums lose the spread to a large mean: sum the deviations from it
        shift = kept.dtype.type(mean)
        centred = np.subtract(kept, shift, out=copy)
        centred[bad] = 0
        residual = float(np.add.reduce(centred)) / n
        squares = _sum_squares(centred) / n
        if math.isfinite(squares):  # no overflow of the deviations of huge values
            mean, var = float(shift) + residual, max(squares - residual * residual, 0.0)
    moments.add(n, mean, var, lo, hi)


def _sum_squares(x: Any) -> float:
    """One pass, no temporary and no BLAS thread pool (`np.dot` would start one); float64 on overflow."""
    import numpy as np

    squares = float(np.einsum("i,i->", x, x))
    if not math.isfinite(squares):
        squares = float(np.einsum("i,i->", x, x, dtype=np.float64))
    return squares
