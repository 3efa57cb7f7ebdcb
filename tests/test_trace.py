"""The trace: every name of ../shared/TRACE.md, with its shape and dtype, for any shapes params.json allows."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from reference.formats import load_checkpoint
from reference.formats.synthesize import synthesize
from reference.config import ModelArgs, preset
from reference.errors import InputError
from reference.run import load_trace, run_trace, save_trace
from reference.trace import trace_shapes

PROMPT = [128000, 1820, 4320, 311, 279, 17139, 3488, 315, 2324, 11, 279, 15861, 11, 323, 4395, 374, 220]
TRACE_MD = Path(__file__).resolve().parents[2] / "shared" / "TRACE.md"

# Shapes the code has never been tuned for: odd head counts, every kv ratio, no ffn multiplier.
UNSEEN = {
    "6-heads-3-kv": ModelArgs(dim=96, n_layers=3, n_heads=6, n_kv_heads=3, vocab_size=128_256,
                              multiple_of=32, ffn_dim_multiplier=1.5, norm_eps=1e-6, rope_theta=10_000.0),
    "multi-head": ModelArgs(dim=40, n_layers=2, n_heads=5, n_kv_heads=5, vocab_size=128_300, multiple_of=7),
    "multi-query": ModelArgs(dim=48, n_layers=1, n_heads=12, n_kv_heads=1, vocab_size=128_256,
                             multiple_of=16, ffn_dim_multiplier=0.7, use_scaled_rope=True),
}


def test_trace_has_every_name_of_the_contract_in_pipeline_order(tiny):
    trace = run_trace(PROMPT, tiny.weights, tiny.args)
    assert list(trace) == list(trace_shapes(tiny.args, len(PROMPT)))
    assert {name: tuple(t.shape) for name, t in trace.items()} == trace_shapes(tiny.args, len(PROMPT))


@pytest.mark.skipif(not TRACE_MD.exists(), reason=f"{TRACE_MD} (the shared contract) is not beside this checkout")
def test_trace_names_are_those_of_shared_trace_md():
    documented = re.findall(r"^\| `([a-z_.i]+)` \|", TRACE_MD.read_text(), flags=re.M)
    args = preset("tiny").replace(n_layers=1)
    assert [name.replace(".i.", ".0.") for name in documented] == list(trace_shapes(args, 3))


def test_trace_of_the_walkthrough_prompt_on_8b_shapes_matches_the_walkthrough():
    shapes = trace_shapes(preset("llama3-8b"), 17)
    assert shapes["embeddings"] == (17, 4096)
    assert shapes["freqs_cis"] == (17, 64, 2)
    assert shapes["layers.0.q"] == (32, 17, 128) and shapes["layers.0.k"] == (8, 17, 128)
    assert shapes["layers.31.scores"] == (32, 17, 17)
    assert shapes["logits"] == (17, 128256)


@pytest.mark.parametrize("name", list(UNSEEN))
def test_unseen_shapes_trace_correctly_on_both_paths(tmp_path, name):
    args = UNSEEN[name]
    ckpt = load_checkpoint(synthesize(args, seed=7, out_dir=tmp_path / name))
    tokens = PROMPT[:11]
    literal = run_trace(tokens, ckpt.weights, ckpt.args, dtype=torch.float64, path="literal")
    fast = run_trace(tokens, ckpt.weights, ckpt.args, dtype=torch.float64, path="batched")
    assert {n: tuple(t.shape) for n, t in literal.items()} == trace_shapes(args, len(tokens))
    for n in literal:
        torch.testing.assert_close(fast[n], literal[n], atol=1e-10, rtol=1e-10, msg=lambda m: f"{n}: {m}")
    # the residual stream really flows: each layer changes it, and the logits are finite
    assert all(not torch.equal(literal[f"layers.{i}.out"], literal[f"layers.{i}.h"]) for i in range(args.n_layers))
    assert torch.isfinite(literal["logits"]).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_trace_tensors_are_in_the_compute_dtype(tiny, dtype):
    trace = run_trace(PROMPT[:5], tiny.weights, tiny.args, dtype=dtype)
    floating = {n: t.dtype for n, t in trace.items() if t.is_floating_point() and n != "freqs_cis"}
    assert set(floating.values()) == {dtype}
    assert trace["tokens"].dtype == trace["next_token"].dtype == torch.int64


def test_saved_trace_round_trips_through_npz(tiny, tmp_path):
    trace = run_trace(PROMPT, tiny.weights, tiny.args)
    saved = load_trace(save_trace(trace, tmp_path / "t.npz"))
    assert list(saved) == list(trace)
    for name, t in trace.items():
        assert np.array_equal(saved[name], t.numpy()), name
    assert saved["layers.0.scores"].dtype == np.float32
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"]  # no temporary file left behind


def test_bfloat16_trace_is_saved_exactly_as_float32(tiny, tmp_path):
    trace = run_trace(PROMPT[:4], tiny.weights, tiny.args, dtype=torch.bfloat16)
    saved = load_trace(save_trace(trace, tmp_path / "t.npz"))
    assert saved["logits"].dtype == np.float32
    assert np.array_equal(saved["logits"], trace["logits"].float().numpy())


def test_trace_must_be_written_to_an_npz_file(tiny, tmp_path):
    with pytest.raises(InputError, match=r"t\.txt: the trace is written as \.npz"):
        save_trace({}, tmp_path / "t.txt")


def test_token_outside_the_vocabulary_is_refused(tiny):
    with pytest.raises(InputError, match="token id 128256 is outside the vocabulary"):
        run_trace([128000, 128256], tiny.weights, tiny.args)


def test_prompt_longer_than_the_context_is_refused(tiny):
    too_long = [128000] * (tiny.args.max_seq_len + 1)
    with pytest.raises(InputError, match=f"more than max_seq_len {tiny.args.max_seq_len}"):
        run_trace(too_long, tiny.weights, tiny.args)


def test_saved_trace_has_ordinary_file_permissions(tiny, tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        path = save_trace(run_trace(PROMPT[:3], tiny.weights, tiny.args), tmp_path / "t.npz")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
