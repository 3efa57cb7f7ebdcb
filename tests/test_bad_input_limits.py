"""Bad input (#14 classes 4 and 5): memory that would grow with what the user could ask is
estimated first and refused with the numbers; numbers near the float limit, strangers' index
files, output paths that cannot be written and unexpected exceptions are each one line."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from helpers import one_line_error
from reference import cli
from reference.cli.commands import BY_NAME
from reference.formats.params import args_from_params
from reference.errors import InputError, unexpected
from reference.formats import load_checkpoint
from reference.formats.hf import args_from_hf_config
from reference.files import available_memory
from reference.run import run_trace
from reference.trace import trace_bytes, trace_shapes


def test_the_trace_estimate_counts_every_recorded_tensor(tiny):
    shapes = trace_shapes(tiny.args, 17)
    elements = sum(torch.Size(s).numel() for s in shapes.values())
    assert trace_bytes(tiny.args, 17) == 4 * elements
    assert trace_bytes(tiny.args, 17, torch.float64) == 8 * elements


def test_the_scores_make_a_long_trace_grow_as_the_square_of_its_length(tiny):
    a = tiny.args
    scores_and_weights = 2 * a.n_layers * a.n_heads * 4  # bytes per (query, key) pair, float32
    growth = trace_bytes(a, 2000) - 2 * trace_bytes(a, 1000) + trace_bytes(a, 0)
    assert growth == scores_and_weights * (2000**2 - 2 * 1000**2)


def test_a_trace_that_cannot_fit_in_memory_is_refused_before_anything_is_allocated(tiny):
    """A long prompt on a checkpoint whose context allows it (max_seq_len 131,072): tiny's 4
    layers of 8 heads at 40,000 tokens would record 400 GB of scores."""
    args = tiny.args.replace(max_seq_len=131_072)
    tokens = torch.full((40_000,), 100, dtype=torch.int64)
    assert trace_bytes(args, len(tokens)) > available_memory()
    with pytest.raises(InputError) as excinfo:
        run_trace(tokens, tiny.weights, args)
    message = one_line_error(excinfo, "40,000 tokens", "GiB", "of memory is available", "generate")
    assert f"{trace_bytes(args, 40_000) / 2**30:,.1f} GiB" in message


def test_a_kv_cache_that_cannot_fit_in_memory_is_refused_before_anything_is_allocated(tiny):
    """`generate --max-new-tokens` as large as the context: Llama 3.1's 131,072 positions are 32 GiB
    of float32 keys and values for the 8B, and the kernel killed the process that asked."""
    from reference.batched import KVCache
    from reference.generate import generate

    args = tiny.args.replace(max_seq_len=2**24, n_layers=256)  # refused before a layer is looked for
    need = KVCache.nbytes(args, 2**24 - 1, torch.float64)  # 4 TiB
    assert need > available_memory()
    with pytest.raises(InputError) as excinfo:
        generate([1, 2], tiny.weights, args, max_new_tokens=2**50, dtype=torch.float64)
    message = one_line_error(excinfo, "KV cache", f"{2**24 - 1:,} positions", "of memory is available",
                             "--max-new-tokens")
    assert f"{need / 2**30:,.1f} GiB" in message
    cache = KVCache.allocate(tiny.args, 9, torch.float64)  # and the estimate is what allocating holds
    assert KVCache.nbytes(tiny.args, 9, torch.float64) == cache.k.nbytes + cache.v.nbytes > 0


# --- class 5: numbers near the float limit ---

@pytest.mark.parametrize("key, value, says", [
    ("ffn_dim_multiplier", 1e308, "ffn_dim_multiplier must be a number in (0, 64]"),  # was an OverflowError
    ("ffn_dim_multiplier", 1.7976931348623157e308, "ffn_dim_multiplier must be a number in (0, 64]"),
    ("ffn_dim_multiplier", 1e-308, "leaves no SwiGLU hidden units"),  # was a model without a feed-forward
    ("norm_eps", 1e308, "norm_eps must be below 1"),  # was every RMSNorm output near 0
])
def test_hyper_parameters_near_the_float_limit_are_refused_in_one_line(tiny, key, value, says):
    params = {**tiny.args.to_params(), key: value}
    with pytest.raises(InputError) as excinfo:
        args_from_params(params)
    one_line_error(excinfo, says)


def test_zero_attention_heads_in_a_hugging_face_config_is_refused_not_divided_by():
    config = {"model_type": "llama", "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 0,
              "num_key_value_heads": 2, "vocab_size": 128256, "intermediate_size": 256}
    with pytest.raises(InputError) as excinfo:
        args_from_hf_config(config)
    one_line_error(excinfo, "num_attention_heads must be a positive integer, got 0")


# --- class 5: a stranger's model.safetensors.index.json ---

@pytest.fixture(scope="module")
def hf_dir(tiny, tmp_path_factory):
    from test_hf_checkpoint import save_hf

    return save_hf(tiny, tmp_path_factory.mktemp("hf-index") / "tiny-hf", max_shard_size="20MB")


@pytest.mark.parametrize("value", [7, ["model-00001-of-00004.safetensors"], None, "../../etc/passwd",
                                   "/tmp/elsewhere.safetensors", "model.bin"])
def test_index_values_that_are_not_file_names_here_are_refused(hf_dir, tmp_path, value):
    d = shutil.copytree(hf_dir, tmp_path / "hf")
    index = json.loads((d / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.norm.weight"] = value
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(InputError) as excinfo:
        load_checkpoint(d)
    one_line_error(excinfo, "model.safetensors.index.json", "model.norm.weight",
                   "expected the name of a .safetensors file in this directory")


# --- class 5: output paths, found before the pass ---

def run_cli(*argv):
    return subprocess.run([sys.executable, "-m", "reference", *argv], capture_output=True, text=True, timeout=120)


def test_a_compiled_product_without_a_working_compiler_is_one_line_naming_the_switch(tiny_dir, tmp_path):
    # A fresh inductor cache, so that nothing compiled before can stand in for the compiler.
    env = {**os.environ, "LLAMA3_REFERENCE_COMPILE": "1", "CXX": str(tmp_path / "no-such-g++"),
           "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    done = subprocess.run([sys.executable, "-m", "reference", "generate", "--checkpoint", str(tiny_dir), "--prompt",
                           "hi", "--max-new-tokens", "2", "--dtype", "bfloat16"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "LLAMA3_REFERENCE_COMPILE=1" in done.stderr and "no-such-g++" in done.stderr, done.stderr


def test_a_trace_out_that_is_a_directory_is_refused_before_the_pass(tiny_dir, tmp_path, capsys):
    (tmp_path / "t.npz").mkdir()
    assert cli.main(["trace", "--checkpoint", str(tiny_dir), "--prompt", "hi", "--out", str(tmp_path / "t.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "t.npz: is a directory" in err


def test_a_trace_that_cannot_be_written_is_one_line_and_leaves_nothing(tiny_dir):
    done = run_cli("trace", "--checkpoint", str(tiny_dir), "--prompt", "hi", "--out", "/proc/t.npz")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "/proc/t.npz: could not write the trace" in done.stderr


# --- class 5: the last resort ---

def test_an_exception_no_check_caught_is_one_line_that_says_it_is_a_bug_and_where(tiny_dir, monkeypatch, capsys):
    def buggy(options):
        return {}["a key that is not there"]

    monkeypatch.setitem(BY_NAME, "walk", dataclasses.replace(BY_NAME["walk"], run=buggy))
    assert cli.main(["walk", "--checkpoint", str(tiny_dir)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error, a bug in llama3-reference (KeyError" in err
    assert " at cli/main.py:" in err and "LLAMA3_REFERENCE_TRACEBACK=1" in err  # the innermost line of reference/


def test_the_whole_traceback_is_there_when_asked_for(tiny_dir, monkeypatch):
    monkeypatch.setitem(BY_NAME, "walk", dataclasses.replace(BY_NAME["walk"], run=lambda options: 1 / 0))
    monkeypatch.setenv("LLAMA3_REFERENCE_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["walk", "--checkpoint", str(tiny_dir)])


def test_running_out_of_memory_or_disk_is_the_users_situation_not_a_bug():
    try:
        torch.empty(1 << 62, dtype=torch.uint8)  # the allocator refuses 4 EiB
    except RuntimeError as e:
        message, code = unexpected(e)
    assert code == 2 and message.startswith("ran out of memory")
    try:
        open("/proc/no-such-dir/file", "w")
    except OSError as e:
        message, code = unexpected(e)
    assert code == 2 and message.startswith("/proc/no-such-dir/file: No such file or directory")


# --- class 5: a corrupt or pickled .npz, where a golden or a trace is expected ---

def pickled_npz(path):
    import numpy as np

    np.savez(path, tokens=np.array([object()], dtype=object))  # an object array: loading it unpickles
    return path


@pytest.mark.parametrize("make, says", [(pickled_npz, "holds pickled objects"),
                                        (lambda p: p.write_bytes(b"PK\x03\x04" + b"x" * 100) and p,
                                         "is not a readable .npz (BadZipFile)")])
def test_a_corrupt_or_pickled_trace_is_one_line_and_never_unpickled(tmp_path, make, says):
    from reference.run import load_trace

    path = tmp_path / "t.npz"
    make(path)
    with pytest.raises(InputError) as excinfo:
        load_trace(path)
    one_line_error(excinfo, str(path), says)


def test_a_corrupt_or_pickled_golden_is_replaced_by_regeneration(tiny, tmp_path):
    from reference.verify import goldens

    out = shutil.copytree(goldens.TINY_GOLDENS, tmp_path / "tiny-seed0")
    pickled_npz(out / "walkthrough.npz")
    (out / "long.npz").write_bytes(b"not a zip at all")
    said = []
    written = goldens.regenerate(tiny, out, goldens.load_prompts(), echo=said.append)
    assert sorted(written) == ["long", "walkthrough"]
    assert any("walkthrough.npz (holds pickled objects, so it was replaced)" in line for line in said), said
    for name in ("walkthrough", "long"):
        again, committed = goldens.read_npz(out / f"{name}.npz"), goldens.read_npz(goldens.TINY_GOLDENS / f"{name}.npz")
        assert set(again) == set(committed) and (again["tokens"] == committed["tokens"]).all()
