"""`check` on traces recorded with forward hooks on modules: the mistakes one helper makes in two
tensors at once, found by replaying the block the trace lacks.

A forward hook sees what a module returns. On Meta's Transformer and on transformers'
LlamaForCausalLM alike that is `HOOKED`: the embeddings, each layer's attention_norm, q, k and v
(the projections wq/wk/wv, reshaped to heads), attention_out (wo), ffn_norm, ffn_out and out,
then the final norm and the logits; the tokens are the user's input. It is never q_rotated,
k_rotated, scores or attention_weights (computed inside one function), nor h or attention (a
module's input: forward *pre*-hooks see them, `PRE_HOOKED`). The learner (tests/learner.py)
plants each mistake from layer 2 of the tiny model's 4 on; transformers' own pass with the
mistakes planted is in tests/test_check_hooks_transformers.py.
"""

import numpy as np
import pytest

from learner import Bugs, float64_weights, learner_trace
from reference.check import check_trace

from test_check import PROMPT

HOOKED = ("tokens", "embeddings", "attention_norm", "q", "k", "v", "attention_out", "ffn_norm", "ffn_out", "out",
          "norm", "logits")
PRE_HOOKED = ("h", "attention")  # ffn_norm's input and wo's: what a forward pre-hook sees besides
BETWEEN = ("q_rotated", "k_rotated", "scores", "attention_weights", "attention")  # the block a hook trace lacks


@pytest.fixture(scope="module")
def tokens(tiny):
    return tiny.tokenizer.encode(PROMPT, bos=True, eos=False)


def hooked(trace: dict, names=HOOKED) -> dict:
    """The tensors of a full trace that module hooks would have seen."""
    return {n: t for n, t in trace.items() if n.rsplit(".", 1)[-1] in names}


def check_hooked(tiny, tokens, names=HOOKED, **bugs):
    return check_trace(hooked(learner_trace(tiny, tokens, Bugs(**bugs)), names), tiny, PROMPT)


def inferred(report, first: str, cause: str, *evidence: str):
    """Named at `first`, and said to be inferred from replaying the block the trace lacks."""
    assert (report.match, report.first_divergent, report.cause) == (False, first, cause), str(report)
    assert report.inferred and "inferred from a block replay, not seen" in str(report), str(report)
    layer = first.rsplit(".", 1)[0]
    assert f"the pass was replayed from your layers.1.out to your {first}" in str(report)
    assert {f"{layer}.{s}" for s in ("q_rotated", "k_rotated", "scores")} <= set(report.replayed), report.replayed
    for part in evidence:
        assert part in report.evidence, report.evidence
    return report


def test_a_correct_hooked_trace_matches(tiny, tokens):
    report = check_hooked(tiny, tokens)
    assert report.match and report.replayed == () and not report.inferred, str(report)
    assert not set(report.checked) & {f"layers.0.{s}" for s in BETWEEN + PRE_HOOKED}


def test_rotate_half_on_metas_rows_for_q_and_k_is_rope_pairs_at_attention_out(tiny, tokens):
    inferred(check_hooked(tiny, tokens, wrong_pairs=True, layer=2), "layers.2.attention_out", "rope-pairs",
             "layers.2.q_rotated and layers.2.k_rotated computed as RoPE with pairs (j, j + d/2)",
             "the correct layers.2.q and layers.2.k alike", "rotate_half on Meta-layout weights")


def test_metas_pairs_on_hugging_faces_rows_for_q_and_k_is_rope_pairs(tiny, tokens):
    report = inferred(check_hooked(tiny, tokens, hf_rows=True, wrong_pairs=True, layer=2), "layers.2.attention_out",
                      "rope-pairs", "(2j, 2j+1)", "Hugging Face's row order")
    assert report.layout == "hf"


def test_keys_and_values_tiled_together_is_gqa_grouping(tiny, tokens):
    inferred(check_hooked(tiny, tokens, tiled_kv=True, layer=2), "layers.2.attention_out", "gqa-grouping",
             "layers.2.scores and layers.2.attention computed as the kv heads tiled for the keys and the values alike")


@pytest.mark.parametrize("bugs, cause, says", [
    (dict(scale=1.0), "attention-scale", "without the 1/√d"),
    (dict(scale=1 / 16), "attention-scale", "q·kᵀ/d instead of /√d"),
    (dict(mask="none"), "causal-mask", "without the causal mask"),
    (dict(mask="next"), "causal-mask", "off by one"),
    (dict(softmax_axis=-2), "softmax-axis", "over the queries"),
    (dict(heads_flattened_wrong=True), "axes", "without moving T first"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_mistake_of_one_step_inside_the_block_is_named_at_attention_out(tiny, tokens, bugs, cause, says):
    inferred(check_hooked(tiny, tokens, layer=2, **bugs), "layers.2.attention_out", cause, says)


def test_rope_theta_in_one_layers_helper_is_rope_theta(tiny, tokens):
    """freqs_cis is not a module's output either: a θ wrong only where layer 2 rotates q and k."""
    inferred(check_hooked(tiny, tokens, theta=10_000.0, freqs_in_layer=True, layer=2, only=True),
             "layers.2.attention_out", "rope-theta", "θ = 10000", "alike")


def test_with_pre_hooks_too_the_helpers_mistake_is_found_at_wos_input(tiny, tokens):
    report = inferred(check_hooked(tiny, tokens, HOOKED + PRE_HOOKED, tiled_kv=True, layer=2), "layers.2.attention",
                      "gqa-grouping", "tiled")
    assert "layers.2.h" not in report.checked[:-1] and "layers.1.h" in report.checked


def test_a_bug_in_every_layer_is_found_at_layer_0_from_the_embeddings(tiny, tokens):
    report = check_hooked(tiny, tokens, wrong_pairs=True)
    assert (report.first_divergent, report.cause, report.inferred) == ("layers.0.attention_out", "rope-pairs", True)
    assert "replayed from your embeddings to your layers.0.attention_out" in str(report), str(report)


def test_from_each_layers_output_alone_a_helpers_mistake_in_every_layer_is_found(tiny, tokens):
    report = check_hooked(tiny, tokens, ("tokens", "out", "logits"), tiled_kv=True)
    assert (report.first_divergent, report.cause, report.inferred) == ("layers.0.out", "gqa-grouping", True)


def test_the_json_report_says_what_was_replayed_and_that_the_cause_was_inferred(tiny, tokens):
    report = check_hooked(tiny, tokens, wrong_pairs=True, layer=2).to_json()
    assert report["inferred"] is True and report["level"] == "float32"
    assert report["replayed"] == [f"layers.2.{s}" for s in BETWEEN]


def test_a_mistake_the_known_ones_do_not_explain_is_described_not_guessed(tiny, tokens):
    """RoPE on the queries only (apply_rotary_emb returning the keys unturned): no hypothesis."""
    trace = hooked(learner_trace(tiny, tokens, Bugs()))
    full = learner_trace(tiny, tokens, Bugs())
    trace["layers.2.attention_out"] = attention_out(tiny, full, 2, q=full["layers.2.q_rotated"], k=full["layers.2.k"])
    report = check_trace(trace, tiny, PROMPT)
    assert (report.first_divergent, report.cause, report.inferred) == ("layers.2.attention_out", None, False), str(
        report)
    assert report.evidence.startswith("no known mistake reproduces it")
    assert "searched by a block replay: the trace lacks layers.2.q_rotated" in str(report)
    assert "none reproduces it: nothing is guessed" in str(report)


def attention_out(tiny, trace: dict, i: int, q, k) -> np.ndarray:
    """Layer i's attention_out from these q and k ([H or K, T, d]), the learner's v and wo: [T, D]."""
    a = tiny.args
    group = [h // a.n_rep for h in range(a.n_heads)]
    T = q.shape[1]
    s = np.einsum("htd,hsd->hts", q.astype(np.float64), k[group].astype(np.float64)) / np.sqrt(a.head_dim)
    s = s + np.triu(np.full((T, T), -np.inf), 1)
    e = np.exp(s - s.max(-1, keepdims=True))
    heads = (e / e.sum(-1, keepdims=True)) @ trace[f"layers.{i}.v"][group]  # [H, T, d]
    wo = float64_weights(tiny)[f"layers.{i}.attention.wo.weight"]
    return (heads.transpose(1, 0, 2).reshape(T, -1) @ wo.T).astype(np.float32)
