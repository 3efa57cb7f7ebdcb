"""Planted bugs: each classic mistake, made on purpose, is caught by the walk-through golden and
named at the tensor where it happens.

Each test breaks one thing (an argument, a function recompiled with one edit, a weight) and runs
the walk-through prompt through the pass; the first tensor to leave the golden must be the one
the mistake makes. Those of the model's arguments and functions run on both built-in models,
tiny and SmolLM2. The last three check the message itself: what it says, and that a float64 or
a missing tensor is named. tests/test_goldens.py compares the unbroken pass with every golden.
"""

import __future__
import inspect
import re
import textwrap

import numpy as np
import pytest
import torch

from reference import batched, model
from reference.verify import goldens, tolerances
from reference.run import run_trace

TINY = goldens.TINY_GOLDENS


@pytest.fixture(scope="module")
def walkthrough_golden():
    return goldens.read_npz(TINY / "walkthrough.npz")


@pytest.fixture(scope="module", params=["tiny", "smollm2-135m"])
def model_and_golden(request):
    """Each built-in model with its walk-through golden: the planted bugs run on both."""
    ckpt = request.getfixturevalue("tiny" if request.param == "tiny" else "smollm2")
    return ckpt, goldens.read_npz(goldens.GOLDEN_SETS[request.param].directory / "walkthrough.npz")


def divergence(ckpt, golden, args=None, weights=None, path="literal"):
    trace = run_trace(golden["tokens"].tolist(), weights or ckpt.weights, args or ckpt.args,
                      dtype=goldens.COMPUTE_DTYPE, path=path, check_finite=False)  # broken on purpose
    return tolerances.first_divergence(golden, goldens.golden_arrays(trace, goldens.stored_layers(golden)))


def mutated(function, old: str, new: str):
    """`function` recompiled with `old` replaced by `new` in its source: the edit a reader would make."""
    source = textwrap.dedent(inspect.getsource(function))
    assert source.count(old) == 1, f"{function.__qualname__} no longer contains {old!r}; update this test"
    namespace = dict(function.__globals__)
    code = compile(source.replace(old, new), inspect.getsourcefile(function), "exec",
                   flags=__future__.annotations.compiler_flag, dont_inherit=True)
    exec(code, namespace)
    return namespace[function.__name__]


def test_unchanged_pass_matches_the_walkthrough_golden(model_and_golden):
    ckpt, golden = model_and_golden
    assert divergence(ckpt, golden) is None  # the baseline the planted bugs depart from


def test_norm_eps_1e6_instead_of_1e5_is_caught_at_layer_0_attention_norm(model_and_golden):
    ckpt, golden = model_and_golden
    # The subtlest bug here: it moves attention_norm by only ~4e-6 of its value.
    message = divergence(ckpt, golden, args=ckpt.args.replace(norm_eps=1e-6))
    assert message.startswith("layers.0.attention_norm: max abs err"), message


def test_rope_theta_10000_instead_of_the_models_is_caught_at_freqs_cis(model_and_golden):
    ckpt, golden = model_and_golden
    message = divergence(ckpt, golden, args=ckpt.args.replace(rope_theta=10_000.0))
    assert message.startswith("freqs_cis: max abs err"), message


def test_rope_turning_the_wrong_way_is_caught_at_layer_0_q_rotated(model_and_golden, monkeypatch):
    ckpt, golden = model_and_golden
    apply_rope = model.apply_rope
    monkeypatch.setattr(model, "apply_rope", lambda x, cis: apply_rope(x, cis.conj()))
    message = divergence(ckpt, golden)
    assert message.startswith("layers.0.q_rotated: max abs err"), message


def test_wrong_kv_head_index_is_caught_at_layer_0_k(model_and_golden, monkeypatch):
    ckpt, golden = model_and_golden
    # Each group of n_rep query heads should share one kv head (tiny: 0-3 kv head 0, 4-7 kv head 1); h % K
    # interleaves them instead, so the keys recorded for kv head 1 are kv head 0's.
    buggy = mutated(model.attention_literal, "kv = h // args.n_rep", "kv = h % args.n_kv_heads")
    monkeypatch.setitem(model.forward.__kwdefaults__, "attention", buggy)
    message = divergence(ckpt, golden)
    assert message.startswith("layers.0.k: max abs err"), message


def test_kv_heads_tiled_instead_of_interleaved_is_caught_at_layer_0_scores(model_and_golden, monkeypatch):
    ckpt, golden = model_and_golden
    # The batched path's version of the same mistake: repeat gives kv heads 0 1 0 1 …, not 0 0 0 0 1 1 1 1.
    buggy = mutated(batched.attention_batched, "keys = keys.repeat_interleave(n_rep, dim=0)",
                    "keys = keys.repeat(n_rep, 1, 1)")
    monkeypatch.setattr(batched, "attention_batched", buggy)
    message = divergence(ckpt, golden, path="batched")
    assert message.startswith("layers.0.scores: max abs err"), message


def test_silu_scaled_by_1_001_is_caught_at_layer_0_ffn_out(tiny, walkthrough_golden, monkeypatch):
    silu = torch.nn.functional.silu
    monkeypatch.setattr(torch.nn.functional, "silu", lambda x: silu(x) * 1.001)
    message = divergence(tiny, walkthrough_golden)
    assert message.startswith("layers.0.ffn_out: max abs err"), message


def test_every_matrix_product_0_1_percent_too_large_is_caught_at_layer_0_q(tiny, walkthrough_golden, monkeypatch):
    matmul = torch.Tensor.__matmul__
    monkeypatch.setattr(torch.Tensor, "__matmul__", lambda a, b: matmul(a, b) * 1.001)
    message = divergence(tiny, walkthrough_golden)
    assert message.startswith("layers.0.q: max abs err"), message  # the first product of the pass


def test_causal_mask_hiding_the_diagonal_is_caught_at_layer_0_scores(tiny, walkthrough_golden, monkeypatch):
    buggy = mutated(model.causal_mask, "diagonal=n_keys - n_queries + 1", "diagonal=n_keys - n_queries")
    monkeypatch.setattr(model, "causal_mask", buggy)
    message = divergence(tiny, walkthrough_golden)
    # the diagonal of each of the 8 heads' [17, 17] scores is now -inf
    assert message.startswith("layers.0.scores: 136 non-finite values differ, first at [0, 0, 0]: -inf"), message


def test_one_weight_of_layer_2_changed_is_caught_at_layer_2_ffn_out(tiny, walkthrough_golden):
    weights = dict(tiny.weights)
    w2 = weights["layers.2.feed_forward.w2.weight"].clone()
    w2[5, 7] += 0.01
    weights["layers.2.feed_forward.w2.weight"] = w2
    message = divergence(tiny, walkthrough_golden, weights=weights)
    assert message.startswith("layers.2.ffn_out: max abs err"), message


def test_failure_names_one_tensor_its_errors_and_how_many_follow(tiny, walkthrough_golden):
    message = divergence(tiny, walkthrough_golden, args=tiny.args.replace(rope_theta=10_000.0))
    assert re.fullmatch(r"freqs_cis: max abs err \S+ at \[\d+, \d+, \d+\] \(obtained \S+, golden \S+\), "
                        r"max rel err \S+; \d+ of 272 values outside atol 1e-09 \+ rtol 2\.5e-07·\|golden\|\. "
                        r"The 3 tensors before it match; \d+ of the 62 after it differ too\.", message), message


def test_float64_array_fails_against_a_float32_golden(walkthrough_golden):
    obtained = dict(walkthrough_golden, **{"layers.1.h": walkthrough_golden["layers.1.h"].astype(np.float64)})
    assert tolerances.first_divergence(walkthrough_golden, obtained).startswith("layers.1.h: dtype float64, golden float32")


def test_missing_tensor_is_named(walkthrough_golden):
    obtained = {n: a for n, a in walkthrough_golden.items() if n != "layers.3.v"}
    assert tolerances.first_divergence(walkthrough_golden, obtained).startswith("layers.3.v: missing")
