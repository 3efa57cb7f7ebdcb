"""ModelArgs: presets, derived sizes (expected_shapes included) and params.json validation."""

import json

import pytest

from reference.config import PRESETS, ModelArgs, expected_shapes, preset
from reference.formats.params import load_params, save_params
from reference.errors import InputError

LLAMA3_8B_PARAMS = {"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256,
                    "multiple_of": 1024, "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0}
LLAMA32_1B_PARAMS = {"dim": 2048, "ffn_dim_multiplier": 1.5, "multiple_of": 256, "n_heads": 32, "n_kv_heads": 8,
                     "n_layers": 16, "norm_eps": 1e-05, "rope_theta": 500000.0, "use_scaled_rope": True,
                     "vocab_size": 128256}


def write_params(tmp_path, params):
    path = tmp_path / "params.json"
    path.write_text(json.dumps(params))
    return path


@pytest.mark.parametrize("name, hidden", [("llama3-8b", 14336), ("llama3-70b", 28672), ("llama3.1-8b", 14336),
                                          ("llama3.2-1b", 8192), ("llama3.2-3b", 8192)])
def test_hidden_dim_follows_metas_rounding_rule(name, hidden):
    assert PRESETS[name].hidden_dim == hidden


@pytest.mark.parametrize("name, billions", [("llama3-8b", 8.03), ("llama3-70b", 70.55), ("llama3.2-3b", 3.61)])
def test_presets_have_the_published_parameter_counts(name, billions):
    assert round(PRESETS[name].n_params() / 1e9, 2) == billions


def test_8b_derived_sizes():
    a = PRESETS["llama3-8b"]
    assert (a.head_dim, a.n_rep) == (128, 4)


def test_tiny_preset_has_the_real_vocabulary_and_grouped_kv_heads():
    tiny = PRESETS["tiny"]
    assert tiny.vocab_size == 128_256 and tiny.n_kv_heads < tiny.n_heads


def test_preset_can_override_the_layer_count():
    assert preset("llama3-8b", n_layers=2).n_layers == 2


def test_unknown_preset_is_named():
    with pytest.raises(InputError, match="unknown preset 'llama9'"):
        preset("llama9")


def test_real_8b_params_json_loads(tmp_path):
    assert load_params(write_params(tmp_path, LLAMA3_8B_PARAMS)) == PRESETS["llama3-8b"]


def test_llama32_params_json_gets_its_scale_factor_of_32(tmp_path):
    assert load_params(write_params(tmp_path, LLAMA32_1B_PARAMS)).rope_scale_factor == 32.0


def test_unknown_scaled_model_gets_metas_default_scale_factor_of_8(tmp_path):
    args = load_params(write_params(tmp_path, {**LLAMA32_1B_PARAMS, "n_layers": 3}))
    assert args.rope_scale_factor == 8.0


def test_params_round_trip_through_json(tmp_path):
    args = PRESETS["llama3.2-3b"].replace(n_layers=2)
    save_params(args, tmp_path / "params.json")
    assert load_params(tmp_path / "params.json") == args


def test_missing_n_kv_heads_means_one_kv_head_per_query_head():
    assert ModelArgs(dim=64, n_layers=1, n_heads=4, vocab_size=10).n_kv_heads == 4


@pytest.mark.parametrize("change, message", [
    ({"dim": "4096"}, "dim must be a positive integer, got '4096'"),
    ({"n_layers": 0}, "n_layers must be a positive integer, got 0"),
    ({"n_heads": True}, "n_heads must be a positive integer, got True"),
    ({"norm_eps": -1}, "norm_eps must be a positive finite number, got -1"),
    ({"rope_theta": float("nan")}, "rope_theta must be a positive finite number"),
    ({"ffn_dim_multiplier": 0}, "ffn_dim_multiplier must be a number in (0, 64] or null (Llama 3: 1.3), got 0"),
    ({"use_scaled_rope": "yes"}, "use_scaled_rope must be true or false"),
    ({"n_kv_heads": 5}, "n_heads 32 is not a multiple of n_kv_heads 5"),
    ({"n_heads": 30}, "dim 4096 is not divisible by n_heads 30"),
    ({"dim": 96, "n_heads": 32}, "head_dim = dim / n_heads = 3 must be even"),
    ({"n_head": 32}, "unknown key 'n_head'"),
])
def test_bad_params_json_names_file_and_field(tmp_path, change, message):
    path = write_params(tmp_path, {**LLAMA3_8B_PARAMS, **change})
    with pytest.raises(InputError) as e:
        load_params(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value) and "\n" not in str(e.value)


def test_missing_required_key_is_named(tmp_path):
    params = dict(LLAMA3_8B_PARAMS)
    del params["vocab_size"]
    with pytest.raises(InputError, match="params.json: missing required key 'vocab_size'"):
        load_params(write_params(tmp_path, params))


def test_params_json_that_is_not_json_is_reported_with_its_position(tmp_path):
    path = tmp_path / "params.json"
    path.write_text('{"dim": 4096,,}')
    with pytest.raises(InputError, match=r"params.json: not valid JSON .* line 1 column 14"):
        load_params(path)


def test_missing_params_json_is_reported(tmp_path):
    with pytest.raises(InputError, match="params.json: not found"):
        load_params(tmp_path / "params.json")


# --- names and shapes ---


def test_expected_shapes_of_llama3_8b():
    shapes = expected_shapes(PRESETS["llama3-8b"])
    assert shapes["tok_embeddings.weight"] == (128256, 4096)
    assert shapes["layers.0.attention.wq.weight"] == (4096, 4096)
    assert shapes["layers.0.attention.wk.weight"] == (1024, 4096)
    assert shapes["layers.31.attention.wv.weight"] == (1024, 4096)
    assert shapes["layers.7.feed_forward.w1.weight"] == (14336, 4096)
    assert shapes["layers.7.feed_forward.w2.weight"] == (4096, 14336)
    assert shapes["layers.31.ffn_norm.weight"] == (4096,)
    assert shapes["output.weight"] == (128256, 4096)
    assert len(shapes) == 2 + 9 * 32 + 1


def test_expected_shapes_are_in_metas_order():
    names = list(expected_shapes(preset("tiny", n_layers=1)))
    assert names == [
        "tok_embeddings.weight",
        "layers.0.attention.wq.weight", "layers.0.attention.wk.weight",
        "layers.0.attention.wv.weight", "layers.0.attention.wo.weight",
        "layers.0.feed_forward.w1.weight", "layers.0.feed_forward.w2.weight", "layers.0.feed_forward.w3.weight",
        "layers.0.attention_norm.weight", "layers.0.ffn_norm.weight",
        "norm.weight", "output.weight",
    ]
