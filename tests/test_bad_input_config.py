"""Any value at any hyper-parameter of config.json or params.json (#31, class 1, fuzzed): the
checkpoint loads and `walk` runs, or it is refused in one line naming the file (or the tensor
whose shape the values contradict) — never a traceback, an "internal error", or a pass over a
tensor it did not check. The weights are the tiny model's, so a value that changes a shape must
be refused for its shape. (2,600 examples run once by hand: 177 ran, every other one was refused.)"""

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from reference.cli import main

from test_hf_checkpoint import save_hf

CONFIG_KEYS = ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size",
               "intermediate_size", "rms_norm_eps", "max_position_embeddings", "rope_theta", "tie_word_embeddings",
               "rope_scaling", "head_dim", "bos_token_id", "eos_token_id", "torch_dtype", "model_type"]
PARAMS_KEYS = ["dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "multiple_of", "ffn_dim_multiplier",
               "norm_eps", "rope_theta", "use_scaled_rope", "max_seq_len", "rope_scaling"]

SCALARS = st.one_of(
    st.none(), st.booleans(), st.text(max_size=8),
    st.integers(-3, 3), st.sampled_from([2**31, 2**53 + 1, 10**12, 10**40, -(10**12), 64, 128, 4096, 131072]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e-300, 1e300, -0.0, 0.5, 8.0, 500000.0]))
ROPE_SCALING = st.dictionaries(
    st.sampled_from(["rope_type", "type", "factor", "low_freq_factor", "high_freq_factor",
                     "original_max_position_embeddings"]),
    st.one_of(SCALARS, st.sampled_from(["llama3", "linear", "dynamic", "yarn"])), max_size=5)
VALUES = st.one_of(SCALARS, ROPE_SCALING, st.lists(SCALARS, max_size=3))


@pytest.fixture(scope="module")
def hf_tiny(tiny, tmp_path_factory):
    return save_hf(tiny, tmp_path_factory.mktemp("hf") / "tiny-hf")


def with_values(source: Path, name: str, changes: dict) -> Path:
    """A copy of `source` (weights linked) whose JSON file `name` has `changes` over its keys."""
    out = Path(tempfile.mkdtemp(prefix="fuzz-"))
    for f in source.iterdir():
        (out / f.name).symlink_to(f) if f.name != name else None
    values = json.loads((source / name).read_text())
    (out / name).write_text(json.dumps({**values, **changes}))
    return out


def loads_and_runs_or_is_refused_in_one_line(capsys, checkpoint: Path) -> None:
    try:
        code = main(["walk", "--checkpoint", str(checkpoint), "--prompt", "the answer"])
    finally:
        shutil.rmtree(checkpoint)
    out, err = capsys.readouterr()
    assert code in (0, 2), err
    if code == 2:
        # the file, or a tensor whose shape the values contradict, in the checkpoint's own directory; or
        # the prompt against a context the values make too short ("more than max_seq_len 1")
        named = str(checkpoint) in err or "max_seq_len" in err
        assert len(err.strip().splitlines()) == 1 and named and "internal error" not in err, err
    else:
        assert "next token" in out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(CONFIG_KEYS), VALUES, min_size=1, max_size=3))
@example(changes={"max_position_embeddings": 1})  # a context shorter than the prompt: the prompt is refused
def test_any_value_in_config_json_runs_or_is_refused_in_one_line(hf_tiny, capsys, changes):
    loads_and_runs_or_is_refused_in_one_line(capsys, with_values(hf_tiny, "config.json", changes))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(PARAMS_KEYS), VALUES, min_size=1, max_size=3))
@example(changes={"rope_theta": 10**40})  # found by this fuzz: an int torch could not take (OverflowError, exit 1)
@example(changes={"rope_theta": 10**400, "norm_eps": 10**400})  # too large for a float at all
def test_any_value_in_params_json_runs_or_is_refused_in_one_line(tiny_dir, capsys, changes):
    loads_and_runs_or_is_refused_in_one_line(capsys, with_values(tiny_dir, "params.json", changes))
