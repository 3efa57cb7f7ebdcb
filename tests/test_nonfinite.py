"""Bad numbers (#14, class 1): a NaN or Inf in a weight, or hyper-parameters that cannot give
finite numbers, stop with one line naming the first non-finite tensor and what it read —
never `nan` printed as values and `next token: 0` as an answer."""

import json

import pytest
import torch

from reference.cli import main

from helpers import refused, write_checkpoint


@pytest.fixture(scope="module")
def nan_in_layer_1(tiny_dir, tmp_path_factory):
    """The tiny checkpoint with one NaN in layer 1's SwiGLU gate weights."""
    weights = torch.load(tiny_dir / "consolidated.00.pth", mmap=True, weights_only=True)
    weights = dict(weights)
    w1 = weights["layers.1.feed_forward.w1.weight"].clone()
    w1[5, 7] = float("nan")
    weights["layers.1.feed_forward.w1.weight"] = w1
    return write_checkpoint(tiny_dir, tmp_path_factory.mktemp("nan") / "ckpt", weights=weights)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_walk_stops_at_the_first_non_finite_tensor_and_names_the_weight(capsys, nan_in_layer_1):
    code, out, err = run(capsys, "walk", "--checkpoint", str(nan_in_layer_1), "--prompt", "hello")
    assert code == 2 and "next token" not in out
    assert len(err.strip().splitlines()) == 1, err
    assert "layers.1.ffn_out is NaN" in err
    assert "layers.1.ffn_norm finite" in err and "layers.1.feed_forward.w1.weight holds 1 non-finite values" in err


def test_the_batched_path_stops_at_the_same_tensor(capsys, nan_in_layer_1):
    code, _, err = run(capsys, "walk", "--checkpoint", str(nan_in_layer_1), "--prompt", "hello", "--path", "batched")
    assert code == 2 and "layers.1.ffn_out is NaN" in err


def test_trace_writes_no_file_of_nans(capsys, nan_in_layer_1, tmp_path):
    out = tmp_path / "t.npz"
    code, _, err = run(capsys, "trace", "--checkpoint", str(nan_in_layer_1), "--prompt", "hello", "--out", str(out))
    assert code == 2 and "layers.1.ffn_out is NaN" in err and not out.exists()


def test_greedy_generation_refuses_nan_logits_instead_of_writing_bangs(capsys, nan_in_layer_1):
    code, out, err = run(capsys, "generate", "--checkpoint", str(nan_in_layer_1), "--prompt", "hello",
                         "--temperature", "0", "--max-new-tokens", "4")
    assert code == 2 and "!!!" not in out
    assert "logits are not finite" in err and "walk" in err


def test_an_inf_in_the_embeddings_is_named_at_the_embeddings(capsys, tiny_dir, tmp_path):
    weights = dict(torch.load(tiny_dir / "consolidated.00.pth", mmap=True, weights_only=True))
    emb = weights["tok_embeddings.weight"].clone()
    emb[128000, 3] = float("inf")  # the BOS token's row: every prompt reads it
    weights["tok_embeddings.weight"] = emb
    ckpt = write_checkpoint(tiny_dir, tmp_path / "inf", weights=weights)
    code, _, err = run(capsys, "walk", "--checkpoint", str(ckpt), "--prompt", "hi")
    assert code == 2 and "embeddings is Inf (first at index [0, 3])" in err
    assert "tok_embeddings.weight holds 1 non-finite values" in err


@pytest.mark.parametrize("theta", [1e-300, 0.5, 1.0])
def test_a_rope_theta_that_cannot_give_finite_angles_is_refused(tiny_dir, tmp_path, theta):
    params = json.loads((tiny_dir / "params.json").read_text()) | {"rope_theta": theta}
    ckpt = write_checkpoint(tiny_dir, tmp_path / "theta", params=params)
    refused(ckpt, "params.json", "rope_theta must be larger than 1")


@pytest.mark.parametrize("key, value", [("n_layers", 1_000_000_000), ("dim", 1 << 40), ("vocab_size", 10 ** 12)])
def test_an_implausible_size_is_refused_in_a_moment(tiny_dir, tmp_path, key, value):
    params = json.loads((tiny_dir / "params.json").read_text()) | {key: value}
    ckpt = write_checkpoint(tiny_dir, tmp_path / "huge", params=params)
    refused(ckpt, "params.json", f"{key} {value:,} is not a plausible model")  # before any size is derived


def test_a_finite_model_still_runs(tiny):
    from reference.run import run_trace

    trace = run_trace([128000, 9906], tiny.weights, tiny.args)
    assert torch.isfinite(trace["logits"]).all()
