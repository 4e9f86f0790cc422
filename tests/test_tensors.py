"""Summaries, slices, pooling and attention detection against NumPy and a real tiny BERT."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from finetune_studio import tensors, tensorstats
from finetune_studio.attention import (
    attention_views,
    find_attention,
    is_attention,
    pool_attention,
    rollout,
    token_labels,
)
from finetune_studio.pooling import downsample, factors_for, pool
from finetune_studio.tensors import flat_chunks, slice2d, summarize


def planted(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, size=shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[[1, 7, 50]] = np.nan
    flat[[3, 11]] = np.inf
    flat[[5]] = -np.inf
    flat[[2, 9, 13, 17]] = 0.0
    return x


def reference(x: np.ndarray) -> dict[str, float]:
    """Counts and statistics over the finite values, in float64 (numpy.std: ddof=0)."""
    finite = x[np.isfinite(x)].astype(np.float64)
    return {"nan": int(np.isnan(x).sum()), "posinf": int(np.isposinf(x).sum()),
            "neginf": int(np.isneginf(x).sum()), "zeros": int((x == 0).sum()),
            "min": finite.min(), "max": finite.max(), "mean": finite.mean(), "std": finite.std()}


def assert_matches(s: tensors.Summary, x: np.ndarray, rel: float = 1e-6) -> None:
    """Exact counts and extremes; mean within `rel` of the spread (plus float32's resolution of the mean:
    torch's chunk sums are float32), std within `rel` of itself."""
    ref = reference(x)
    assert (s.nan, s.posinf, s.neginf, s.zeros) == (ref["nan"], ref["posinf"], ref["neginf"], ref["zeros"])
    assert (s.min, s.max) == (ref["min"], ref["max"])
    assert s.mean is not None and abs(s.mean - ref["mean"]) <= rel * ref["std"] + 1e-7 * abs(ref["mean"])
    assert s.std == pytest.approx(ref["std"], rel=rel, abs=1e-30)


def test_float32_summary_matches_numpy_with_planted_nan_and_inf() -> None:
    x = planted((300, 70))
    s = summarize(torch.from_numpy(x))
    assert_matches(s, x)
    assert (s.shape, s.dtype, s.device, s.numel, s.bytes) == ([300, 70], "float32", "cpu", 21000, 84000)
    assert s.histogram is not None and sum(s.histogram.counts) == s.histogram.sample_size == 21000 - 6
    assert "NaN=3" in s.text and "+Inf=2" in s.text and "-Inf=1" in s.text
    assert "\x1b" not in s.text


def sprinkled(n: int, kinds: str, seed: int, loc: float = 0.0, scale: float = 1.0,
              dtype: type = np.float32) -> np.ndarray:
    """`n` normal values with NaN (`n`), +Inf (`p`), -Inf (`m`) and zeros (`z`) at random places."""
    rng = np.random.default_rng(seed)
    x = rng.normal(loc, scale, n).astype(dtype)
    for kind, value in (("z", 0.0), ("n", np.nan), ("p", np.inf), ("m", -np.inf)):
        if kind in kinds:
            x[rng.choice(n, max(1, n // 97), replace=False)] = value
    return x


CASES = {  # name: (array, what it checks)
    "nan": sprinkled(5000, "nz", 1),
    "nan and both infinities": sprinkled(5000, "nzpm", 2),
    "+inf only": sprinkled(5000, "p", 3),
    "large mean, small spread": sprinkled(5000, "n", 4, loc=1000.0, scale=0.01),  # centred sum of squares
    "large mean, all finite": sprinkled(5000, "", 11, loc=1000.0, scale=0.01),  # torch's chunks only
    "mean 8x the spread, all finite": sprinkled(5000, "z", 12, loc=8.0),  # plain float32 sums
    "float64": sprinkled(5000, "nzpm", 5, loc=3.0, dtype=np.float64),
    "huge finite values": np.array([3e38, -3e38, 3e38, 3e38, np.nan] * 700, dtype=np.float32),  # sums overflow
    "nan only in the last chunk": np.concatenate([sprinkled(4000, "z", 6), sprinkled(1000, "n", 7)]),
    "nan only in the first chunk": np.concatenate([sprinkled(1000, "n", 8), sprinkled(4000, "z", 9)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_chunks_and_pieces_give_exact_counts_and_float64_statistics(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small chunks (torch) and NumPy pieces so that every path and every combination across chunk and
    piece boundaries runs; once a CPU chunk held NaN/Inf, the rest goes through NumPy pieces."""
    x = CASES[name]
    monkeypatch.setattr(tensors, "CHUNK", 1000)
    monkeypatch.setattr(tensorstats, "PIECE", 300)
    before = x.copy()
    assert_matches(summarize(torch.from_numpy(x)), x)
    np.testing.assert_array_equal(x, before)  # the scratch buffers never write into the tensor


def test_chunked_statistics_equal_single_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chan's combination across chunks must give the one-pass numbers (chunks of 1000 elements here)."""
    x = planted((90, 101), seed=1)
    whole = summarize(torch.from_numpy(x))
    monkeypatch.setattr(tensors, "CHUNK", 1000)
    sizes: list[int] = []
    real = tensorstats.Tally.add
    monkeypatch.setattr(tensorstats.Tally, "add", lambda self, c, v: (sizes.append(c.numel()), real(self, c, v)))
    # a transposed (strided) view walks its first dimension in bounded copies
    chunked = summarize(torch.from_numpy(x).T)
    assert len(sizes) >= 10 and max(sizes) <= 1000 and sum(sizes) == x.size
    for key in ("min", "max", "mean", "std", "nan", "posinf", "neginf", "zeros"):
        assert getattr(chunked, key) == pytest.approx(getattr(whole, key), rel=1e-6)
    assert_matches(chunked, x)


def test_whole_nan_tensor_over_many_pieces_and_grad() -> None:
    x = torch.full((3, 70_000), float("nan"), requires_grad=True)
    s = summarize(x)
    assert (s.nan, s.posinf, s.zeros, s.min, s.histogram) == (210_000, 0, 0, None, None)
    assert "(no finite values)" in s.text
    y = torch.from_numpy(sprinkled(200_000, "nzpm", 10)).requires_grad_()  # 4 real pieces, with grad
    assert_matches(summarize(y), y.detach().numpy())


def test_device_and_numpy_paths_for_non_finite_chunks_agree() -> None:
    """The NaN/Inf path runs through NumPy pieces on the CPU and through torch on accelerators (no GPU
    in CI: the torch path is run here on CPU data)."""
    v = torch.from_numpy(planted((40, 50), seed=4)).reshape(-1)
    pieces = tensorstats.Tally()
    pieces.add_numpy(v.numpy())
    device = tensorstats.Tally()
    tensorstats._device_masked(v, device.moments, device.counts)
    assert pieces.counts == device.counts == [3, 2, 1, 4]
    for key in ("n", "mean", "m2", "lo", "hi"):
        assert getattr(pieces.moments, key) == pytest.approx(getattr(device.moments, key), rel=1e-6)


def test_flat_chunks_never_exceed_limit_and_cover_everything() -> None:
    x = torch.arange(10 * 7 * 5).reshape(10, 7, 5).permute(2, 0, 1)
    pieces = list(flat_chunks(x, limit=20))
    assert max(p.numel() for p in pieces) <= 20
    assert sorted(torch.cat(pieces).tolist()) == list(range(350))


def test_histogram_is_seeded_and_sampled_for_large_tensors() -> None:
    x = torch.randn(300_000)
    a, b = summarize(x).histogram, summarize(x).histogram
    assert a == b and a is not None
    assert a.sampled and a.sample_size == tensors.SAMPLE
    assert len(a.edges) == len(a.counts) + 1 == tensors.BINS + 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_floats_get_float32_statistics(dtype: torch.dtype) -> None:
    x = torch.from_numpy(planted((64, 33), seed=2)).to(dtype)
    s = summarize(x)
    assert_matches(s, x.float().numpy())
    assert s.dtype == str(dtype).removeprefix("torch.") and s.bytes == 64 * 33 * 2
    assert s.note is not None and "float32" in s.note


def test_float8() -> None:
    x = torch.randn(40, 40).to(torch.float8_e4m3fn)
    s = summarize(x)
    assert_matches(s, x.float().numpy())
    assert s.dtype == "float8_e4m3fn" and s.bytes == 1600


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int32, torch.int64])
def test_integers_exact_min_max_and_integer_histogram(dtype: torch.dtype) -> None:
    x = torch.randint(0, 20, (50, 40), generator=torch.Generator().manual_seed(3)).to(dtype)
    s = summarize(x)
    n = x.numpy().astype(np.float64)
    assert (s.min, s.max) == (n.min(), n.max())
    assert s.mean == pytest.approx(n.mean()) and s.std == pytest.approx(n.std())
    assert s.nan == s.posinf == s.neginf == 0 and s.zeros == int((n == 0).sum())
    assert s.histogram is not None
    # one bin per integer value, centred on it
    assert s.histogram.edges[0] == s.min - 0.5 and len(s.histogram.counts) == int(s.max - s.min) + 1
    assert s.histogram.counts[0] == int((n == s.min).sum())


def test_int64_beyond_float64_precision_keeps_exact_extremes() -> None:
    big = 2**62 + 1
    s = summarize(torch.tensor([big, -big, 5]))
    assert (s.min, s.max) == (-big, big)


def test_bool() -> None:
    x = torch.tensor([True, False, True, True])
    s = summarize(x)
    assert (s.min, s.max, s.mean, s.zeros) == (0, 1, 0.75, 1)
    assert s.histogram is not None and s.histogram.counts == [1, 3]


def test_complex_statistics_are_of_the_magnitude() -> None:
    z = torch.tensor([3 + 4j, 0j, complex(float("nan"), 1.0), 1j], dtype=torch.complex64)
    s = summarize(z)
    assert (s.min, s.max, s.nan, s.zeros) == (0, 5, 1, 1)
    assert s.mean == pytest.approx(2.0) and "|z|" in s.text


def test_empty_tensor_answers_honestly() -> None:
    s = summarize(torch.zeros(0, 4))
    assert (s.numel, s.min, s.max, s.histogram, s.nan, s.zeros) == (0, None, None, None, 0, 0)
    assert "(empty)" in s.text


def test_meta_tensor_has_shape_but_no_data() -> None:
    s = summarize(torch.empty(1000, 1000, device="meta", dtype=torch.bfloat16))
    assert (s.shape, s.device, s.bytes, s.nan, s.min) == ([1000, 1000], "meta", 2_000_000, None, None)
    assert "no data" in s.text


def test_all_non_finite_and_to_dict_is_json_safe() -> None:
    import json

    s = summarize(torch.tensor([float("nan"), float("inf")]))
    assert s.min is None and s.nan == 1 and s.posinf == 1
    json.dumps(s.to_dict(), allow_nan=False)


def test_numpy_arrays_lists_and_sequences() -> None:
    a = planted((20, 5)).astype(np.float64)
    s = summarize(a)
    assert s.kind == "ndarray" and s.dtype == "float64"
    assert_matches(s, a, rel=1e-12)
    assert summarize(a[::-1]).mean == pytest.approx(s.mean)  # negative strides
    listed = summarize([[1, 2], [3, 4]])
    assert (listed.kind, listed.shape, listed.mean) == ("list", [2, 2], 2.5)
    stacked = summarize((torch.ones(2, 3), torch.zeros(2, 3)))
    assert (stacked.kind, stacked.shape, stacked.mean, stacked.zeros) == ("tensors", [2, 2, 3], 0.5, 6)


def test_unsupported_objects_raise_type_error_naming_them() -> None:
    with pytest.raises(TypeError, match="dict"):
        summarize({"a": 1})
    with pytest.raises(TypeError, match="ragged|cannot make"):
        summarize([[1, 2], [3]])
    with pytest.raises(TypeError, match="different shapes"):
        summarize([torch.ones(2), torch.ones(3)])


def test_slice2d_is_a_view_of_the_chosen_dimensions() -> None:
    x = torch.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    s = slice2d(x, (1, 3), [1, 2])
    assert torch.equal(s, x[1, :, 2, :])
    assert s.data_ptr() >= x.data_ptr()  # a view, no copy
    assert torch.equal(slice2d(x, (3, 1), [0, 0]), x[0, :, 0, :].T)
    assert torch.equal(slice2d(x), x[0, 0])
    assert slice2d(torch.arange(5)).shape == (1, 5)
    with pytest.raises(IndexError):
        slice2d(x, (0, 1), [9, 0])
    with pytest.raises(ValueError, match="two different"):
        slice2d(x, (1, 1))


def test_downsample_block_mean_and_maxabs() -> None:
    m = torch.arange(36, dtype=torch.float32).reshape(6, 6)
    small, factors = downsample(m, 3, 2)
    assert factors == [2, 3] and small.shape == (3, 2)
    assert small[0, 0] == m[:2, :3].mean() and small[2, 1] == m[4:, 3:].mean()
    spiky = torch.zeros(10, 10)
    spiky[3, 4] = -9.0
    peak, _ = downsample(spiky, 2, 2, mode="maxabs")
    assert peak[0, 0] == -9.0 and peak.abs().sum() == 9.0
    # a short last block keeps its own mean
    uneven, f = downsample(torch.ones(7, 5) * torch.arange(5.0), 3, 2)
    assert f == [3, 3] and uneven.shape == (3, 2) and uneven[0].tolist() == [1.0, 3.5]


def test_pool_in_chunks_equals_pool_in_one_go(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(9, 13, 11)
    factors = [2, 3, 4]
    assert pool(x, factors, "mean").shape == (5, 5, 3)
    for mode in ("mean", "maxabs"):
        monkeypatch.setattr(tensors, "CHUNK", 1 << 24)
        expected = pool(x, factors, mode)  # type: ignore[arg-type]
        monkeypatch.setattr(tensors, "CHUNK", 50)
        assert torch.allclose(pool(x, factors, mode), expected, atol=1e-6)  # type: ignore[arg-type]


def test_factors_fit_the_budget() -> None:
    shape = [32, 4096, 4096]
    factors = factors_for(shape, 1 << 20)
    assert math.prod(math.ceil(n / f) for n, f in zip(shape, factors, strict=True)) <= 1 << 20
    assert factors_for([10, 10], 1000) == [1, 1]


# attention

def tiny_bert(**config: int) -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=37, **config)
    return BertModel._from_config(cfg, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def bert_outputs() -> object:
    torch.manual_seed(0)
    model = tiny_bert()
    ids = torch.randint(0, 100, (2, 11))
    with torch.no_grad():
        return model(input_ids=ids, output_attentions=True)


def test_real_bert_attention_is_detected(bert_outputs: object) -> None:
    attentions = bert_outputs.attentions  # type: ignore[attr-defined]
    assert is_attention(attentions[0])
    assert find_attention(attentions) is not None and len(find_attention(attentions) or []) == 2
    layers = find_attention(bert_outputs)
    assert layers is not None and layers[1].shape == (2, 2, 11, 11)
    assert is_attention(attentions[0].to(torch.bfloat16))


def test_negatives_are_not_attention(bert_outputs: object) -> None:
    torch.manual_seed(0)
    assert not is_attention(torch.randn(1, 2, 11, 11))
    assert not is_attention(torch.rand(1, 2, 11, 11))  # non-negative but rows do not sum to 1
    assert not is_attention(torch.zeros(1, 2, 11, 11))
    assert not is_attention(torch.ones(2, 11, 11))  # 3-D
    assert not is_attention(torch.empty(1, 2, 4, 4, device="meta"))
    assert find_attention(bert_outputs.last_hidden_state) is None  # type: ignore[attr-defined]
    assert find_attention([torch.randn(1, 2, 4, 4)]) is None
    assert find_attention({"a": 1}) is None


def test_views_of_real_bert(bert_outputs: object) -> None:
    layers = find_attention(bert_outputs)
    assert layers is not None
    tokens = [f"t{i}" for i in range(11)]
    views = attention_views(layers, tokens=tokens, batch_index=1)
    assert (views.layers, views.heads, views.q_len, views.k_len, views.group) == (2, 2, 11, 11, [1, 1])
    assert torch.allclose(views.heads_matrix, torch.stack([t[1] for t in layers]))
    assert torch.allclose(views.head_average[0], layers[0][1].mean(0))
    assert views.query_labels == views.key_labels == tokens
    assert views.rollout is not None and torch.allclose(views.rollout.sum(-1), torch.ones(11))


def test_rollout_properties() -> None:
    torch.manual_seed(0)
    a = torch.softmax(torch.randn(3, 6, 6), -1)
    r = rollout(a)
    assert (r >= 0).all() and torch.allclose(r.sum(-1), torch.ones(6))
    # one layer: (A + I) with rows renormalised = (A + I) / 2
    assert torch.allclose(rollout(a[:1]), (a[0] + torch.eye(6)) / 2)
    # layers compose in order: the last layer's matrix is on the left
    step = [(m + torch.eye(6)) / 2 for m in a]
    assert torch.allclose(r, step[2] @ step[1] @ step[0], atol=1e-6)
    # identity attention rolls out to the identity
    assert torch.allclose(rollout(torch.eye(4).expand(5, 4, 4)), torch.eye(4))


def test_pooled_attention_keeps_rows_stochastic_and_groups_labels() -> None:
    a = torch.softmax(torch.randn(1, 3, 130, 130), -1)
    pooled = pool_attention(a[0], 3, 3)
    assert pooled.shape == (3, 44, 44) and torch.allclose(pooled.sum(-1), torch.ones(3, 44), atol=1e-5)
    views = attention_views([a, a], tokens=[f"w{i}" for i in range(130)])
    assert views.group == [2, 2] and views.heads_matrix.shape == (2, 3, 65, 65)
    assert views.key_labels[0] == "w0…w1" and len(views.key_labels) == 65


def test_token_labels_from_tokenizer_and_mismatch() -> None:
    class Tok:
        def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
            return [f"<{i}>" for i in ids]

    ids = torch.tensor([[5, 6, 7], [1, 2, 3]])
    labels, note = token_labels(3, tokenizer=Tok(), input_ids=ids, batch_index=1)
    assert labels == ["<1>", "<2>", "<3>"] and note is None
    labels, note = token_labels(4, tokens=["a", "b"])
    assert labels == ["0", "1", "2", "3"] and note is not None and "2 token labels" in note
