"""Synthesized checkpoints as Meta writes them, so Meta's own loader takes them unchanged.

Meta's `Llama3.build(ckpt_dir, max_seq_len, max_batch_size)` reads params.json and calls
`ModelArgs(max_seq_len=max_seq_len, max_batch_size=max_batch_size, **params)`: a params.json
that says max_seq_len itself is a TypeError there. And it loads the weights strictly: Llama 3.2's
tied files store output.weight, a copy of the embeddings. Our loader reads the files it wrote
before (max_seq_len in params.json, no output.weight) as it did. Meta's ModelArgs comes from
llama_models/llama3/args.py, which needs nothing beyond the package itself.
"""

import json

import pytest
import torch

from reference import config
from reference.config import PRESETS
from reference.errors import InputError
from reference.formats import load_checkpoint
from reference.formats.params import load_params, meta_params
from reference.formats.synthesize import synthesize
from reference.run import run_trace

# original/params.json of two published models, as Meta wrote them
LLAMA3_8B = {"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256, "multiple_of": 1024,
             "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0}
LLAMA32_1B = {"dim": 2048, "ffn_dim_multiplier": 1.5, "multiple_of": 256, "n_heads": 32, "n_kv_heads": 8,
              "n_layers": 16, "norm_eps": 1e-05, "rope_theta": 500000.0, "use_scaled_rope": True, "vocab_size": 128256}
SMALL_32 = PRESETS["llama3.2-1b"].replace(dim=64, n_layers=1, n_heads=4, n_kv_heads=2, multiple_of=32)


def metas_model_args(params: dict):
    """What Meta's Llama3.build makes of a params.json (generation.py, as it calls it)."""
    from llama_models.llama3.args import ModelArgs

    return ModelArgs(max_seq_len=64, max_batch_size=1, **params)


@pytest.mark.parametrize("name, published", [("llama3-8b", LLAMA3_8B), ("llama3.2-1b", LLAMA32_1B)])
def test_a_published_models_params_json_is_written_as_meta_wrote_it(name, published):
    assert meta_params(PRESETS[name]) == published


def test_the_tiny_params_json_takes_metas_keys_and_says_its_context_in_a_key_meta_ignores(tiny_dir, tiny):
    params = json.loads((tiny_dir / "params.json").read_text())
    assert params == {"dim": 128, "n_layers": 4, "n_heads": 8, "n_kv_heads": 2, "vocab_size": 128256, "multiple_of": 64,
                      "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0,
                      "max_position_embeddings": 2048}
    meta = metas_model_args(params)
    assert (meta.dim, meta.n_kv_heads, meta.max_seq_len) == (128, 2, 64) and tiny.args.max_seq_len == 2048


def test_our_old_params_json_with_max_seq_len_is_what_metas_build_refused(tiny):
    old = tiny.args.to_params()  # what synthesize wrote before: every field, max_seq_len among them
    with pytest.raises(TypeError, match="multiple values for keyword argument 'max_seq_len'"):
        metas_model_args(old)


def test_our_loader_still_reads_the_old_params_json_to_the_same_model(tmp_path):
    for args in (PRESETS["tiny"], SMALL_32, PRESETS["tiny"].replace(use_scaled_rope=True, rope_scale_factor=4.0)):
        (tmp_path / "params.json").write_text(json.dumps(args.to_params()))
        assert load_params(tmp_path / "params.json") == args
        (tmp_path / "params.json").write_text(json.dumps(meta_params(args)))
        assert load_params(tmp_path / "params.json") == args


def test_a_scaling_metas_keys_do_not_imply_is_kept_in_rope_scaling():
    """A 3.2 shape of our own: nothing tells its factor 32, so rope_scaling says it."""
    assert meta_params(SMALL_32)["rope_scaling"]["factor"] == 32.0 and "rope_scaling" not in LLAMA32_1B


def test_a_context_said_twice_differently_is_refused(tmp_path):
    (tmp_path / "params.json").write_text(json.dumps({**LLAMA3_8B, "max_seq_len": 8192,
                                                      "max_position_embeddings": 4096}))
    with pytest.raises(InputError, match="max_seq_len and max_position_embeddings differ"):
        load_params(tmp_path / "params.json")


def test_a_synthesized_llama32_preset_stores_output_weight_as_a_copy_of_the_embeddings(monkeypatch, tmp_path):
    monkeypatch.setitem(config.PRESETS, "llama3.2-1b", SMALL_32)
    c = synthesize("llama3.2-1b", seed=0, out_dir=tmp_path / "c")
    raw = torch.load(c / "consolidated.00.pth", weights_only=True)
    assert list(raw)[-1] == "output.weight" and torch.equal(raw["output.weight"], raw["tok_embeddings.weight"])
    storage = [raw[n].untyped_storage().data_ptr() for n in ("output.weight", "tok_embeddings.weight")]
    assert storage[0] != storage[1]  # a copy, not a second view of the embeddings
    assert metas_model_args(json.loads((c / "params.json").read_text())).use_scaled_rope


def test_the_copy_and_the_old_tied_file_without_output_weight_give_the_same_logits(tmp_path):
    copy = load_checkpoint(synthesize(SMALL_32, seed=0, out_dir=tmp_path / "copy", tied_copy=True))
    absent = load_checkpoint(synthesize(SMALL_32, seed=0, out_dir=tmp_path / "absent", tied=True))
    assert not copy.tied and absent.tied and "output.weight" not in absent.weights
    tokens = [128000, 791, 6864, 315, 9822, 374]
    assert torch.equal(run_trace(tokens, copy.weights, copy.args)["logits"],
                       run_trace(tokens, absent.weights, absent.args)["logits"])


def test_tied_and_tied_copy_at_once_is_refused(tmp_path):
    with pytest.raises(InputError, match="choose one"):
        synthesize(SMALL_32, seed=0, out_dir=tmp_path / "c", tied=True, tied_copy=True)
