"""`check`: a trace from elsewhere against our pass — where it first differs, and why.

Every buggy trace is made by tests/learner.py, a NumPy pass written apart from reference/, so
a diagnosis is tested against a mistake as a learner makes it, not against its own recomputation.
Bugs sit in layer 2 of the tiny model's 4 (layers 0 and 1 must be passed as correct), unless
the mistake is one of the whole pass (tokens, freqs_cis, the final norm). Correct traces pass,
each cause id has its test here, and traces holding only a few names are diagnosed too;
transformers' own trace is in tests/test_check_transformers.py, the command line in
tests/test_check_cli.py.
"""

import pytest
import torch

from learner import Bugs, learner_trace
from reference.check.causes import CAUSES
from reference.check import assert_matches_reference, check_trace
from reference.run import run_trace

PROMPT = "The capital of France is"  # 6 tokens with BOS on the tiny model's tokenizer


@pytest.fixture(scope="module")
def tokens(tiny):
    return tiny.tokenizer.encode(PROMPT, bos=True, eos=False)


def check(tiny, tokens, keep=None, **bugs):
    """Check the learner's trace with `bugs` (only the names in `keep`, if given)."""
    trace = learner_trace(tiny, tokens, Bugs(**bugs))
    if keep is not None:
        trace = {n: t for n, t in trace.items() if n in keep or n.rsplit(".", 1)[-1] in keep}
    return check_trace(trace, tiny, PROMPT)


def diagnosed(report, first: str, cause: str, *evidence: str):
    assert (report.match, report.first_divergent, report.cause) == (False, first, cause), str(report)
    for part in evidence:
        assert part in report.evidence, report.evidence
    return report


# --- correct traces pass ---

def test_a_correct_float32_trace_matches_in_metas_layout(tiny, tokens):
    report = check(tiny, tokens)
    assert report.match and report.first_divergent is None and report.cause is None, str(report)
    assert (report.layout, report.dtype, report.missing) == ("meta", "float32", ())


def test_a_correct_hf_layout_trace_matches_and_says_its_layout(tiny, tokens):
    report = check(tiny, tokens, hf_rows=True)
    assert report.match and report.layout == "hf", str(report)
    assert "decided from layers.0.q" in report.lines[1]


def test_a_trace_in_bfloat16_is_recognised_and_matches_at_its_level(tiny, tokens):
    report = check(tiny, tokens, bf16=True)
    assert report.match and report.dtype == "bfloat16", str(report)
    assert "recognised from the values" in report.lines[1]


def test_torch_tensors_in_bfloat16_are_accepted(tiny, tokens):
    trace = run_trace(tokens, tiny.weights, tiny.args, dtype=torch.bfloat16)
    report = assert_matches_reference(trace, tiny)  # the trace's own tokens: no prompt needed
    assert report.dtype == "bfloat16"


# --- one test per cause id ---

def test_tokens_without_bos_is_tokens_no_bos(tiny, tokens):
    diagnosed(check(tiny, tokens, no_bos=True), "tokens", "tokens-no-bos", "without the BOS token 128000")


def test_tokens_without_bos_are_found_from_the_embeddings_alone(tiny, tokens):
    diagnosed(check(tiny, tokens, keep={"embeddings", "logits"}, no_bos=True), "embeddings", "tokens-no-bos")


def test_rope_theta_10000_is_named_with_the_theta_that_fits(tiny, tokens):
    diagnosed(check(tiny, tokens, theta=10_000.0), "freqs_cis", "rope-theta", "θ = 10000", "500000")


def test_rope_theta_in_a_later_layer_is_found_at_its_q_rotated(tiny, tokens):
    diagnosed(check(tiny, tokens, theta=10_000.0, freqs_in_layer=True, layer=2), "layers.2.q_rotated",
              "rope-theta", "θ = 10000", "correct layers.2.q")


def test_positions_from_1_is_rope_positions(tiny, tokens):
    diagnosed(check(tiny, tokens, start=1), "freqs_cis", "rope-positions", "starting at 1")


def test_rotate_half_on_metas_rows_is_rope_pairs(tiny, tokens):
    report = diagnosed(check(tiny, tokens, wrong_pairs=True, layer=2), "layers.2.q_rotated", "rope-pairs",
                       "pairs (j, j + d/2) applied to the correct layers.2.q", "rotate_half on Meta-layout weights")
    assert report.layout == "meta"


def test_metas_pairs_on_hugging_faces_rows_is_rope_pairs(tiny, tokens):
    report = diagnosed(check(tiny, tokens, hf_rows=True, wrong_pairs=True, layer=2), "layers.2.q_rotated",
                       "rope-pairs", "(2j, 2j+1)", "Hugging Face's row order")
    assert report.layout == "hf"


@pytest.mark.parametrize("scale", [1.0, 1 / 16])
def test_scores_without_1_over_sqrt_d_is_attention_scale(tiny, tokens, scale):
    diagnosed(check(tiny, tokens, scale=scale, layer=2), "layers.2.scores", "attention-scale")


@pytest.mark.parametrize("mask", ["none", "diagonal", "next"])
def test_a_missing_or_shifted_mask_is_causal_mask(tiny, tokens, mask):
    diagnosed(check(tiny, tokens, mask=mask, layer=2), "layers.2.scores", "causal-mask")


def test_softmax_over_the_queries_is_softmax_axis(tiny, tokens):
    diagnosed(check(tiny, tokens, softmax_axis=-2, layer=2), "layers.2.attention_weights", "softmax-axis",
              "over the queries")


def test_kv_heads_tiled_is_gqa_grouping(tiny, tokens):
    diagnosed(check(tiny, tokens, tiled_kv=True, layer=2), "layers.2.scores", "gqa-grouping", "h % K")


@pytest.mark.parametrize("norm, kind, how", [("layernorm", "ffn_norm", "LayerNorm"),
                                             ("no-weight", "attention_norm", "without its weight")])
def test_another_norm_is_rmsnorm(tiny, tokens, norm, kind, how):
    diagnosed(check(tiny, tokens, norm=norm, norms=(kind,), layer=2), f"layers.2.{kind}", "rmsnorm", how)


def test_silu_on_the_up_projection_is_swiglu_branches(tiny, tokens):
    diagnosed(check(tiny, tokens, swap_gate=True, layer=2), "layers.2.ffn_out", "swiglu-branches")


@pytest.mark.parametrize("activation, name", [("gelu", "GELU"), ("relu", "ReLU")])
def test_gelu_or_relu_for_silu_is_activation(tiny, tokens, activation, name):
    diagnosed(check(tiny, tokens, activation=activation, layer=2), "layers.2.ffn_out", "activation", name)


@pytest.mark.parametrize("where, bug", [("h", "attention_residual"), ("out", "ffn_residual")])
def test_a_missing_residual_is_residual(tiny, tokens, where, bug):
    diagnosed(check(tiny, tokens, layer=2, **{bug: False}), f"layers.2.{where}", "residual", "alone")


def test_skipping_the_final_norm_is_final_norm(tiny, tokens):
    diagnosed(check(tiny, tokens, final_norm=False), "norm", "final-norm")


def test_x_times_wq_is_weight_transposed(tiny, tokens):
    diagnosed(check(tiny, tokens, transposed_wq=True, layer=2), "layers.2.q", "weight-transposed", "· wq instead of")


def test_q_recorded_as_t_h_d_is_axes(tiny, tokens):
    diagnosed(check(tiny, tokens, q_as_thd=True, layer=2), "layers.2.q", "axes", "[T, H, d]")


def test_heads_flattened_without_moving_t_first_is_axes(tiny, tokens):
    diagnosed(check(tiny, tokens, heads_flattened_wrong=True, layer=2), "layers.2.attention", "axes", "[H, T, d]")


def test_a_mask_made_as_ones_times_minus_inf_is_non_finite(tiny, tokens):
    report = diagnosed(check(tiny, tokens, mask="nan", layer=2), "layers.2.scores", "non-finite", "NaN")
    assert report.where["layer"] == 2


def test_bfloat16_values_checked_as_float32_are_precision_not_a_mistake(tiny, tokens):
    trace = learner_trace(tiny, tokens, Bugs(bf16=True))
    report = check_trace(trace, tiny, PROMPT, dtype="float32")
    assert (report.match, report.cause, report.dtype) == (False, "precision", "float32"), str(report)
    assert "not a mistake" in str(report)


def test_past_precision_differences_a_real_mistake_is_still_found(tiny, tokens):
    trace = learner_trace(tiny, tokens, Bugs(bf16=True, swap_gate=True, layer=2))
    report = diagnosed(check_trace(trace, tiny, PROMPT, dtype="float32"), "layers.2.ffn_out", "swiglu-branches")
    assert "precision, not a mistake" in str(report)


def test_every_cause_is_tested_here_and_has_an_explanation_and_a_fix():
    source = open(__file__, encoding="utf-8").read()
    for cause in CAUSES.values():
        assert f'"{cause.id}"' in source, cause.id
        assert cause.explanation and cause.fix


# --- traces that hold only a few names ---

def test_with_only_each_layers_output_the_mistake_inside_the_layer_is_found(tiny, tokens):
    report = diagnosed(check(tiny, tokens, keep={"tokens", "out", "logits"}, softmax_axis=-2, layer=2),
                       "layers.2.out", "softmax-axis", "layers.2.attention_weights is not in the trace")
    assert report.checked == ("tokens", "layers.0.out", "layers.1.out", "layers.2.out")


def test_without_scores_as_hugging_face_gives_them_the_mask_is_found_from_the_weights(tiny, tokens):
    keep = {"tokens", "q", "k", "v", "attention_weights", "out"}
    diagnosed(check(tiny, tokens, keep=keep, mask="none", layer=2), "layers.2.attention_weights", "causal-mask")


def test_from_the_logits_alone_a_bug_in_every_layer_is_found(tiny, tokens):
    diagnosed(check(tiny, tokens, keep={"tokens", "logits"}, swap_gate=True), "logits", "swiglu-branches",
              "in every layer from 0 on")


def test_a_difference_no_mistake_explains_is_described_not_guessed(tiny, tokens):
    trace = learner_trace(tiny, tokens, Bugs())
    trace["layers.2.v"] = trace["layers.2.v"].copy()
    trace["layers.2.v"][1] *= 1.5  # kv head 1 scaled: no known mistake
    report = check_trace(trace, tiny, PROMPT)
    assert (report.first_divergent, report.cause) == ("layers.2.v", None), str(report)
    assert "only kv head 1 differs" in report.evidence and report.where["kv head"] == 1
