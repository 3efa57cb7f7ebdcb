"""Each step of the forward pass against a small case worked by hand."""

import math

import pytest
import torch

from reference.config import ModelArgs
from reference.model import (apply_rope, attention_literal, causal_mask, embed, freqs_cis, rms_norm,
                             rope_frequencies, scale_rope_frequencies, softmax, swiglu, get_weight)

SMALL = ModelArgs(dim=8, n_layers=1, n_heads=2, n_kv_heads=1, vocab_size=16, rope_theta=10_000.0)


def test_embed_picks_one_row_per_token_and_upcasts_only_those():
    table = torch.arange(12, dtype=torch.bfloat16).view(4, 3)
    rows = embed(torch.tensor([2, 0, 2]), table, torch.float32)
    assert rows.dtype == torch.float32
    assert rows.tolist() == [[6, 7, 8], [0, 1, 2], [6, 7, 8]]


def test_rms_norm_divides_by_root_mean_square():
    # mean(3², 4²) = 12.5, so each value is divided by √12.5 = 3.5355
    out = rms_norm(torch.tensor([[3.0, 4.0]]), torch.tensor([1.0, 1.0]), eps=0.0)
    torch.testing.assert_close(out, torch.tensor([[3 / math.sqrt(12.5), 4 / math.sqrt(12.5)]]))


def test_rms_norm_scales_by_weight_per_dimension():
    out = rms_norm(torch.tensor([[3.0, 4.0]]), torch.tensor([2.0, 0.5]), eps=0.0)
    torch.testing.assert_close(out, torch.tensor([[6 / math.sqrt(12.5), 2 / math.sqrt(12.5)]]))


def test_rms_norm_eps_keeps_a_zero_row_finite():
    out = rms_norm(torch.zeros(1, 4), torch.ones(4), eps=1e-5)
    assert torch.equal(out, torch.zeros(1, 4))


def test_rms_norm_eps_is_added_inside_the_root():
    out = rms_norm(torch.tensor([[1.0, 1.0]]), torch.ones(2), eps=3.0)
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.5]]))  # 1 / √(1 + 3)


def test_rope_frequencies_fall_geometrically_from_one():
    # head_dim 4, θ = 10000: pair j turns at 10000^(-2j/4) = [1, 0.01] radians per position
    torch.testing.assert_close(rope_frequencies(SMALL), torch.tensor([1.0, 0.01]))


def test_freqs_cis_is_unit_complex_at_angle_position_times_frequency():
    cis = freqs_cis(SMALL, n_tokens=3)  # [3, 2]
    assert cis.shape == (3, 2) and cis.dtype == torch.complex64
    torch.testing.assert_close(cis.abs(), torch.ones(3, 2))
    torch.testing.assert_close(cis.angle()[2], torch.tensor([2.0, 0.02]))


def test_freqs_cis_start_offsets_positions():
    torch.testing.assert_close(freqs_cis(SMALL, 2, start=5), freqs_cis(SMALL, 7)[5:])


def test_apply_rope_rotates_adjacent_pairs():
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0]] * 2)  # positions 0 and 1
    out = apply_rope(x, freqs_cis(SMALL, 2))
    # position 0 is not rotated; at position 1 pair 0 turns by 1 rad, pair 1 by 0.01 rad
    torch.testing.assert_close(out[0], x[0])
    expected = torch.tensor([math.cos(1), math.sin(1), -math.sin(0.01), math.cos(0.01)])
    torch.testing.assert_close(out[1], expected)


def test_apply_rope_keeps_length_of_each_pair():
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    out = apply_rope(x, freqs_cis(SMALL, 5))
    torch.testing.assert_close(out.view(5, 2, 2).norm(dim=-1), x.view(5, 2, 2).norm(dim=-1))


def test_apply_rope_makes_scores_depend_only_on_relative_position():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(4, generator=g), torch.randn(4, generator=g)
    cis = freqs_cis(SMALL, 10)
    rotated = lambda v, m: apply_rope(v.expand(10, 4), cis)[m]  # noqa: E731
    torch.testing.assert_close(rotated(q, 3) @ rotated(k, 1), rotated(q, 9) @ rotated(k, 7))


def test_scaled_rope_divides_slow_frequencies_and_keeps_fast_ones():
    args = SMALL.replace(use_scaled_rope=True, rope_scale_factor=8.0)
    freqs = torch.tensor([1.0, 2 * math.pi / 1000, 2 * math.pi / 4096, 2 * math.pi / 20_000])
    scaled = scale_rope_frequencies(freqs, args)
    # wavelengths 6.3 and 1000 < 8192/4: kept; 20000 > 8192: divided by 8
    torch.testing.assert_close(scaled[:2], freqs[:2])
    torch.testing.assert_close(scaled[3], freqs[3] / 8)
    # 4096 lies in between: smooth = 8192/4096 - 1 over (4 - 1) = 1/3 of the way to unscaled
    torch.testing.assert_close(scaled[2], (2 / 3) * freqs[2] / 8 + (1 / 3) * freqs[2])


def test_scaled_rope_uses_the_configured_factor():
    slow = torch.tensor([2 * math.pi / 50_000])
    for factor in (8.0, 32.0):
        args = SMALL.replace(use_scaled_rope=True, rope_scale_factor=factor)
        torch.testing.assert_close(scale_rope_frequencies(slow, args), slow / factor)


def test_causal_mask_hides_the_future():
    inf = float("-inf")
    assert causal_mask(3, 3, torch.float32).tolist() == [[0, inf, inf], [0, 0, inf], [0, 0, 0]]


def test_causal_mask_with_fewer_queries_than_keys_places_queries_last():
    inf = float("-inf")
    assert causal_mask(2, 4, torch.float32).tolist() == [[0, 0, 0, inf], [0, 0, 0, 0]]


def test_softmax_of_bfloat16_scores_is_computed_in_float32():
    scores = torch.tensor([0.0, 0.01, 0.02], dtype=torch.bfloat16)
    expected = torch.softmax(scores.float(), -1).to(torch.bfloat16)
    out = softmax(scores)
    assert out.dtype == torch.bfloat16 and torch.equal(out, expected)


def test_softmax_of_masked_scores_gives_future_zero_weight():
    probs = softmax(torch.zeros(3, 3) + causal_mask(3, 3, torch.float32))
    torch.testing.assert_close(probs[1], torch.tensor([0.5, 0.5, 0.0]))


def test_swiglu_worked_by_hand():
    # x = 2, w1 = 1, w3 = 3, w2 = 0.5: silu(2) = 2·σ(2) = 1.76159; · (3·2) · 0.5 = 5.28477
    out = swiglu(torch.tensor([[2.0]]), torch.tensor([[1.0]]), torch.tensor([[0.5]]), torch.tensor([[3.0]]))
    torch.testing.assert_close(out, torch.tensor([[2 * torch.sigmoid(torch.tensor(2.0)).item() * 6 * 0.5]]))


def test_weight_upcasts_a_copy_and_leaves_the_bf16_original():
    weights = {"w": torch.ones(2, 2, dtype=torch.bfloat16)}
    w = get_weight(weights, "w", torch.float32)
    assert w.dtype == torch.float32 and weights["w"].dtype == torch.bfloat16


def _one_layer_weights(args, seed=0):
    g = torch.Generator().manual_seed(seed)
    H, K, d, D = args.n_heads, args.n_kv_heads, args.head_dim, args.dim
    shapes = {"wq": (H * d, D), "wk": (K * d, D), "wv": (K * d, D), "wo": (D, H * d)}
    return {f"layers.0.attention.{n}.weight": torch.randn(s, generator=g) for n, s in shapes.items()}


def test_query_head_reads_kv_head_h_over_group_size():
    args = ModelArgs(dim=24, n_layers=1, n_heads=6, n_kv_heads=2, vocab_size=16)  # 3 query heads per kv head
    weights = _one_layer_weights(args)
    x = torch.randn(4, 24, generator=torch.Generator().manual_seed(2))
    trace = {}
    attention_literal(x, 0, weights, args, freqs_cis(args, 4), torch.float32, "cpu", trace)
    d = args.head_dim
    wk = weights["layers.0.attention.wk.weight"].view(2, d, 24)
    wv = weights["layers.0.attention.wv.weight"].view(2, d, 24)
    for h in range(6):
        kv = h // 3
        k_rot = apply_rope(x @ wk[kv].T, freqs_cis(args, 4))
        scores = trace["layers.0.q_rotated"][h] @ k_rot.T / math.sqrt(d) + causal_mask(4, 4, torch.float32)
        torch.testing.assert_close(trace["layers.0.scores"][h], scores)
        head_out = torch.softmax(scores, -1) @ (x @ wv[kv].T)
        torch.testing.assert_close(trace["layers.0.attention"][:, h * d:(h + 1) * d], head_out)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_attention_computes_in_the_requested_dtype(dtype):
    args = ModelArgs(dim=16, n_layers=1, n_heads=4, n_kv_heads=2, vocab_size=16)
    weights = {k: v.bfloat16() for k, v in _one_layer_weights(args).items()}
    x = torch.randn(3, 16, dtype=dtype, generator=torch.Generator().manual_seed(3))
    rope_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    trace = {}
    out = attention_literal(x, 0, weights, args, freqs_cis(args, 3, dtype=rope_dtype), dtype, "cpu", trace)
    assert out.dtype == dtype
    assert {t.dtype for t in trace.values()} == {dtype}
