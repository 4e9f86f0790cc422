"""Attention weights: recognise them, pool them for pictures, and roll them out across layers (no I/O).

Attention weights are `[batch, heads, q, k]` tensors whose rows are probability distributions; a model
returns one per layer (`outputs.attentions`). Rollout follows Abnar & Zuidema (2020), "Quantifying
Attention Flow in Transformers": average the heads, add the identity for the residual path, renormalise
the rows, and multiply the layers' matrices from the first to the last.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .pooling import pool

ROWS_CHECKED = 64  # rows per head sampled for the row-sum test
BUDGET = 1 << 21  # values for all layers x heads x pooled q x pooled k
MAX_SIDE = 128  # pooled matrix side at most (tokens beyond it are grouped)
ROLLOUT_FULL = 4096  # sequence length up to which rollout runs at full resolution


@dataclass(frozen=True)
class AttentionViews:
    layers: int
    heads: int
    batch: int
    batch_index: int
    q_len: int
    k_len: int
    group: list[int]  # tokens per pooled query row and key column (1, 1 when not pooled)
    heads_matrix: torch.Tensor  # [layers, heads, q', k'] float32, CPU
    head_average: torch.Tensor  # [layers, q', k']
    rollout: torch.Tensor | None  # [q', k'], None when q != k (cross-attention, a cached decoder step)
    query_labels: list[str]
    key_labels: list[str]
    note: str | None


def _tolerance(dtype: torch.dtype) -> float:
    return 1e-3 if dtype in (torch.float32, torch.float64) else 2e-2


@torch.no_grad()
def is_attention(t: Any) -> bool:
    """True for a float `[batch, heads, q, k]` tensor with non-negative rows summing to 1 (rows that are
    all zero, as some kernels leave fully masked queries, are allowed; at least one row must sum to 1).
    Checks up to ROWS_CHECKED rows per head of the first batch element."""
    if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.is_meta or t.numel() == 0:
        return False
    if not t.is_floating_point():
        return False
    q = t.shape[2]
    rows = (torch.arange(q, device=t.device) if q <= ROWS_CHECKED else
            torch.linspace(0, q - 1, ROWS_CHECKED, device=t.device).round().long())
    sample = t[0].index_select(1, rows).to(torch.float32)
    sums = sample.sum(-1)
    tol = _tolerance(t.dtype)
    # one transfer: min value, any row neither ~1 nor ~0, any row ~1
    checks = torch.stack([
        sample.amin(),
        ((sums - 1).abs() > tol).logical_and(sums.abs() > tol).any().float(),
        ((sums - 1).abs() <= tol).any().float(),
    ]).tolist()
    return bool(checks[0] >= 0 and checks[1] == 0 and checks[2] == 1)


def find_attention(obj: Any) -> list[torch.Tensor] | None:
    """The per-layer attention tensors in `obj`: one attention tensor, a tuple/list of them (one per
    layer, same shape), or a model output carrying `.attentions` (or an encoder-decoder's
    `encoder_attentions`). None when `obj` holds no attention weights."""
    if isinstance(obj, torch.Tensor):
        return [obj] if is_attention(obj) else None
    if isinstance(obj, list | tuple):
        if not obj or not all(isinstance(t, torch.Tensor) for t in obj):
            return None
        layers = list(obj)
        same = all(t.shape[:2] == layers[0].shape[:2] for t in layers)
        return layers if same and all(is_attention(t) for t in layers) else None
    for key in ("attentions", "encoder_attentions"):
        value = getattr(obj, key, None)
        if value is not None:
            return find_attention(value)
    return None


def token_labels(n: int, tokens: Sequence[str] | None = None, tokenizer: Any = None,
                 input_ids: Any = None, batch_index: int = 0) -> tuple[list[str], str | None]:
    """Labels for `n` key positions and a note when the given ones did not fit."""
    labels: list[str] | None = None
    if tokens is not None:
        labels = [str(t) for t in tokens]
    elif tokenizer is not None and input_ids is not None:
        ids = input_ids
        if isinstance(ids, torch.Tensor):
            ids = ids[batch_index] if ids.dim() == 2 else ids
            ids = ids.tolist()
        elif ids and isinstance(ids[0], list | tuple):
            ids = ids[batch_index]
        labels = [str(t) for t in tokenizer.convert_ids_to_tokens(list(ids))]
    if labels is None:
        return [str(i) for i in range(n)], None
    if len(labels) != n:
        return [str(i) for i in range(n)], f"{len(labels)} token labels for {n} positions: showing indices"
    return labels, None


def _group_labels(labels: list[str], group: int) -> list[str]:
    if group == 1:
        return labels
    out = []
    for start in range(0, len(labels), group):
        chunk = labels[start:start + group]
        out.append(chunk[0] if len(chunk) == 1 else f"{chunk[0]}…{chunk[-1]}")
    return out


def pool_attention(a: torch.Tensor, group_q: int, group_k: int) -> torch.Tensor:
    """Pool `[..., q, k]` attention into token groups: the mean over a group's queries of the sum over
    a group's keys, so that the rows still sum to 1 (attention from one group to another)."""
    lead = [1] * (a.dim() - 2)
    pooled = pool(a, [*lead, group_q, group_k], "mean")
    k = a.shape[-1]
    # block mean * keys in the block = block sum over keys; the last block may be short
    sizes = torch.full((pooled.shape[-1],), float(group_k), device=pooled.device)
    if k % group_k:
        sizes[-1] = float(k % group_k)
    return pooled * sizes


@torch.no_grad()
def rollout(head_average: torch.Tensor) -> torch.Tensor:
    """Attention rollout of `[layers, n, n]` head-averaged attention: prod over layers of
    normalise_rows(A_l + I), the first layer applied first. Rows of the result sum to 1."""
    n = head_average.shape[-1]
    eye = torch.eye(n, device=head_average.device, dtype=torch.float32)
    result = eye
    for a in head_average.to(torch.float32):
        a = a + eye
        a = a / a.sum(-1, keepdim=True)
        result = a @ result
    return result


@torch.no_grad()
def attention_views(layers: list[torch.Tensor], tokens: Sequence[str] | None = None, tokenizer: Any = None,
                    input_ids: Any = None, batch_index: int = 0) -> AttentionViews:
    """Per-layer per-head matrices, head averages and rollout for one batch element, pooled so that all
    layers x heads fit in BUDGET values (each side at most MAX_SIDE)."""
    first = layers[0]
    batch, heads, q, k = first.shape
    if not 0 <= batch_index < batch:
        raise IndexError(f"batch_index {batch_index} out of range for batch size {batch}")
    side = max(1, min(MAX_SIDE, math.isqrt(BUDGET // (len(layers) * heads))))
    group_q, group_k = math.ceil(q / side), math.ceil(k / side)
    pooled = torch.stack([pool_attention(t[batch_index], group_q, group_k) for t in layers])
    # the head average of each layer at full resolution feeds the rollout; pooled for the picture
    averages = [t[batch_index].mean(0, dtype=torch.float32) for t in layers]
    head_average = torch.stack([pool_attention(a, group_q, group_k) for a in averages])
    note = None
    rolled = None
    if q == k:
        if q <= ROLLOUT_FULL:
            rolled = pool_attention(rollout(torch.stack(averages)), group_q, group_k)
        else:
            rolled = rollout(head_average)
            note = f"rollout computed on {group_q}-token groups ({q} tokens)"
    key_labels, label_note = token_labels(k, tokens, tokenizer, input_ids, batch_index)
    # queries are the last q positions when they are fewer (a decoder step with a cache)
    query_labels = key_labels[k - q:] if q <= k else [str(i) for i in range(q)]
    return AttentionViews(
        layers=len(layers), heads=heads, batch=batch, batch_index=batch_index, q_len=q, k_len=k,
        group=[group_q, group_k], heads_matrix=pooled.cpu(), head_average=head_average.cpu(),
        rollout=None if rolled is None else rolled.cpu(),
        query_labels=_group_labels(query_labels, group_q), key_labels=_group_labels(key_labels, group_k),
        note="; ".join(n for n in (note, label_note) if n) or None)
