"""`check`'s precision: differences no known mistake explains step through the dtypes in order,
float32, then float16 and bfloat16, and the report says which level it settled on and why.

A float64 trace of a float32 pass (computed in float32, saved with .double()) differs from the
float64 reference by float32's rounding, ~1e-7 of the scale: it settles on float32 (1e-4),
not on float16's 0.02.
"""

import numpy as np
import pytest
import torch

from learner import Bugs, learner_trace
from reference.check import check_trace
from reference.run import run_trace

from test_check import PROMPT


@pytest.fixture(scope="module")
def tokens(tiny):
    return tiny.tokenizer.encode(PROMPT, bos=True, eos=False)


def as_float64(trace: dict) -> dict:
    return {n: np.asarray(t, dtype=np.float64) if np.issubdtype(np.asarray(t).dtype, np.floating) else t
            for n, t in trace.items()}


def settled(report, level: str, *why: str):
    assert (report.match, report.cause, report.dtype, report.level) == (False, "precision", "float64", level), str(
        report)
    assert f"settled on {level}: " in str(report) and f"pass --dtype {level}" in str(report), str(report)
    for part in why:
        assert part in str(report), str(report)
    return report


def test_a_float64_trace_of_a_float32_pass_settles_on_float32(tiny, tokens):
    computed = run_trace(tokens, tiny.weights, tiny.args)  # float32
    trace = {n: t.double() if t.is_floating_point() else t for n, t in computed.items()}
    report = settled(check_trace(trace, tiny, PROMPT), "float32")
    assert report.max_error < 1e-6 and report.to_json()["level"] == "float32"


def test_float32_level_noise_on_float64_values_settles_on_float32_the_first_that_covers_it(tiny, tokens):
    """Values that are not float32 numbers: no dtype is recognised from them, the order decides."""
    exact = run_trace(tokens, tiny.weights, tiny.args, dtype=torch.float64)
    noise = torch.Generator().manual_seed(0)
    trace = {n: t + 2e-8 * t.nan_to_num(neginf=0).abs().max() * torch.randn(t.shape, generator=noise, dtype=t.dtype)
             if t.is_floating_point() else t for n, t in exact.items()}  # at most ~8e-8 of the scale
    settled(check_trace(trace, tiny, PROMPT), "float32", "stepping through float32, float16, bfloat16 in that order")


def test_a_float64_trace_of_a_bfloat16_pass_settles_on_bfloat16_from_its_values(tiny, tokens):
    """freqs_cis (float32 even in a bf16 pass) settles on float32 first; the first bf16 step's
    differences are within float16's tolerance too, but its values are all bfloat16 numbers."""
    settled(check_trace(as_float64(learner_trace(tiny, tokens, Bugs(bf16=True))), tiny, PROMPT), "bfloat16",
            "from freqs_cis on", "settled on float32", "from layers.0.attention_norm on",
            "settled on bfloat16: float16's tolerance covers them too, but the values are bfloat16 numbers")


def test_past_float32_level_differences_a_mistake_is_found_at_float32s_level(tiny, tokens):
    report = check_trace(as_float64(learner_trace(tiny, tokens, Bugs(tiled_kv=True, layer=2))), tiny, PROMPT)
    assert (report.first_divergent, report.cause, report.level) == ("layers.2.scores", "gqa-grouping", "float32"), (
        str(report))
    assert "settled on float32" in str(report) and "(tolerance 0.0001 at float32)" in str(report)


def test_a_float32_trace_needs_no_step_and_says_its_level(tiny, tokens):
    report = check_trace(learner_trace(tiny, tokens, Bugs()), tiny, PROMPT)
    assert report.match and report.level == "float32" and "settled" not in str(report)
