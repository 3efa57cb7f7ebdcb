"""Parity with Hugging Face transformers: the Meta <-> HF conversion, and every tensor HF's
LlamaForCausalLM computes on the same weights, within 1e-4 of its own scale.

Three configurations (reference/parity.py): the tiny model on the walk-through prompt; odd
shapes (6 heads per 2 kv heads, head_dim 14, tied output) on a multilingual prompt; and
Llama 3.1's scaled RoPE over 300 tokens. `python -m reference parity` prints the table.
"""

import pytest
import torch
from transformers import LlamaForCausalLM

from reference.verify import parity
from reference.formats import hf, layout
from reference.formats.synthesize import synthesize
from reference import WALKTHROUGH_PROMPT
from reference.cli import main
from reference.config import PRESETS, ModelArgs
from reference.errors import InputError
from reference.text.tokenizer import load_tokenizer
from reference.run import run_trace
from reference.trace import trace_shapes


@pytest.fixture(scope="module", params=list(parity.CONFIGS))
def result(request, tiny_dir, tmp_path_factory):
    """One configuration run through both implementations (about 1-3 s each)."""
    config = parity.CONFIGS[request.param]
    if config.name == "tiny":
        ckpt_dir = tiny_dir  # the same bytes as synthesize("tiny", seed=0)
    else:
        ckpt_dir = synthesize(config.args, seed=0, out_dir=tmp_path_factory.mktemp("parity") / config.name,
                              tied=config.tied)
    return parity.measure(config, ckpt_dir)


# --- every tensor HF exposes ---

@pytest.mark.parametrize("kind", parity.KINDS)
def test_tensor_matches_transformers_within_1e_4_of_its_scale(result, kind):
    errors = {name: e for name, e in result.errors.items() if name.rsplit(".", 1)[-1] == kind}
    worst = max(errors, key=errors.get)
    assert errors[worst] < parity.TARGET, f"{result.config.name}: {worst} differs by {errors[worst]:.1e} of its scale"


def test_next_token_matches_transformers(result):
    ours, theirs = result.next_token
    assert ours == theirs


def test_every_layer_of_every_reachable_tensor_is_compared(result):
    # Guards the hooks: a renamed HF module would silently drop tensors from the comparison.
    expected = {name for name in trace_shapes(result.config.args, result.n_tokens)
                if name not in ("tokens", "next_token") and not name.endswith(".scores")}
    assert set(result.errors) == expected


def test_without_the_qk_permutation_transformers_computes_something_else(tiny):
    # The classic mistake: Meta's wq/wk rows loaded as they are. RoPE then rotates the wrong
    # pairs of dimensions, so every layer's attention, and the logits, come out different.
    tokens = load_tokenizer().encode(WALKTHROUGH_PROMPT, bos=True, eos=False)
    model = parity.hf_model(tiny.weights, tiny.args, tied=False)
    with torch.no_grad():
        for i, layer in enumerate(model.model.layers):
            layer.self_attn.q_proj.weight.copy_(tiny.weights[f"layers.{i}.attention.wq.weight"].float())
            layer.self_attn.k_proj.weight.copy_(tiny.weights[f"layers.{i}.attention.wk.weight"].float())
        theirs = model(torch.tensor([tokens])).logits[0]
    ours = run_trace(tokens, tiny.weights, tiny.args)["logits"]
    assert (ours - theirs).abs().max() / theirs.abs().max() > 1e-2


# --- the conversion itself ---

def test_rotate_half_lists_a_heads_real_parts_then_its_imaginary_parts():
    rows = torch.arange(16.0).reshape(16, 1)  # two heads of d = 8, one column
    assert layout.to_rotate_half(rows, n_heads=2).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7,
                                                                     8, 10, 12, 14, 9, 11, 13, 15]


def test_to_adjacent_pairs_undoes_to_rotate_half():
    w = torch.randn(6 * 14, 84)
    assert torch.equal(layout.to_adjacent_pairs(layout.to_rotate_half(w, 6), 6), w)


def test_hf_query_activations_come_back_in_meta_order():
    H, d, D = 3, 8, 5
    w, x = torch.randn(H * d, D), torch.randn(D)
    hf_q = (layout.to_rotate_half(w, H) @ x).view(H, d)  # what HF's q_proj computes, per head
    assert torch.equal(layout.activation_to_adjacent_pairs(hf_q), (w @ x).view(H, d))


def test_state_dict_round_trips_bit_for_bit(tiny):
    back = layout.hf_to_meta_state_dict(layout.meta_to_hf_state_dict(tiny.weights, tiny.args), tiny.args)
    assert list(back) == list(tiny.weights)
    for name, w in tiny.weights.items():
        assert back[name].dtype == torch.bfloat16 and torch.equal(back[name], w), name


def test_hf_names_and_shapes_are_llama_for_causal_lms(tiny):
    with torch.device("meta"):  # shapes only, no memory
        expected = LlamaForCausalLM(parity.hf_config(tiny.args)).state_dict()
    converted = layout.meta_to_hf_state_dict(tiny.weights, tiny.args)
    assert {n: tuple(w.shape) for n, w in converted.items()} == {n: tuple(w.shape) for n, w in expected.items()}


def test_tied_checkpoint_converts_without_lm_head(tiny):
    weights = {n: w for n, w in tiny.weights.items() if n != "output.weight"}
    converted = layout.meta_to_hf_state_dict(weights, tiny.args)
    assert "lm_head.weight" not in converted
    assert "output.weight" not in layout.hf_to_meta_state_dict(converted, tiny.args)
    assert parity.hf_config(tiny.args, tied=True).tie_word_embeddings


def test_bare_llama_model_names_and_rotary_buffers_are_accepted(tiny):
    converted = layout.meta_to_hf_state_dict(tiny.weights, tiny.args)
    bare = {n.removeprefix("model."): w for n, w in converted.items()}
    bare["layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(8)  # stored by older conversions
    assert set(layout.hf_to_meta_state_dict(bare, tiny.args)) == set(tiny.weights)


@pytest.mark.parametrize("name, message", [
    ("model.layers.0.self_attn.q_norm.weight", "model.layers.0.self_attn.q_norm.weight: not a weight of Hugging Face's"),
    ("model.layers.9.mlp.up_proj.weight", "model.layers.9.mlp.up_proj.weight: layer index out of range"),
])
def test_foreign_hf_weight_is_an_input_error_naming_it(tiny, name, message):
    state = dict(layout.meta_to_hf_state_dict(tiny.weights, tiny.args), **{name: torch.zeros(1)})
    with pytest.raises(InputError, match="^" + message.replace("(", r"\(")):
        layout.hf_to_meta_state_dict(state, tiny.args)


def test_hf_weight_of_the_wrong_shape_is_an_input_error_naming_it(tiny):
    state = layout.meta_to_hf_state_dict(tiny.weights, tiny.args)
    state["model.layers.1.self_attn.k_proj.weight"] = torch.zeros(64, 128)
    with pytest.raises(InputError, match=r"k_proj.weight: has shape \[64, 128\], the config implies \[32, 128\]"):
        layout.hf_to_meta_state_dict(state, tiny.args)


def test_missing_hf_weight_is_an_input_error_naming_it(tiny):
    state = layout.meta_to_hf_state_dict(tiny.weights, tiny.args)
    del state["model.norm.weight"]
    with pytest.raises(InputError, match=r"^model.norm.weight: missing from the state dict"):
        layout.hf_to_meta_state_dict(state, tiny.args)


def test_hf_config_carries_llama3_rope_scaling():
    config = parity.hf_config(PRESETS["llama3.1-8b"])
    assert config.rope_parameters == {"rope_type": "llama3", "rope_theta": 500_000.0, "factor": 8.0,
                                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                      "original_max_position_embeddings": 8192}
    assert (config.intermediate_size, config.num_key_value_heads, config.head_dim) == (14336, 8, 128)


def test_hf_config_names_llama3s_special_tokens_only_where_the_vocabulary_has_them():
    tokenizer = load_tokenizer()
    llama3 = parity.hf_config(PRESETS["llama3-8b"])
    assert (llama3.bos_token_id, llama3.eos_token_id) == (tokenizer.bos_id, tokenizer.eos_id)
    smaller = parity.hf_config(ModelArgs(dim=64, n_layers=1, n_heads=2, n_kv_heads=1, vocab_size=49_152))
    assert (smaller.bos_token_id, smaller.eos_token_id) == (None, None)


def test_hf_model_takes_the_special_token_ids_of_the_tokenizer_it_is_given(small, smollm2):
    ours = smollm2.tokenizer  # SmolLM2's own, read from its GGUF
    assert (ours.bos_id, ours.eos_id) != (load_tokenizer().bos_id, load_tokenizer().eos_id)
    config = parity.hf_model(small.weights, small.args, tied=False, tokenizer=ours).config
    assert (config.bos_token_id, config.eos_token_id) == (ours.bos_id, ours.eos_id)


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_round_trips_through_hf_config(name):
    assert hf.args_from_hf_config(parity.hf_config(PRESETS[name]).to_dict()) == PRESETS[name]


@pytest.mark.parametrize("key", ["hidden_size", "rope_scaling.factor"])
def test_hf_config_without_a_required_key_is_an_input_error_naming_it(key):
    config = parity.hf_config(PRESETS["llama3.1-8b"]).to_dict()
    if key.startswith("rope_scaling."):
        del config["rope_parameters"][key.removeprefix("rope_scaling.")]
    else:
        del config[key]
    with pytest.raises(InputError, match=f"^config: missing key '{key}'"):
        hf.args_from_hf_config(config)


def test_unusual_shapes_round_trip_through_hf_config_to_the_same_sizes():
    args = ModelArgs(dim=84, n_layers=2, n_heads=6, n_kv_heads=2, vocab_size=128_259, multiple_of=1,
                     ffn_dim_multiplier=1.3, norm_eps=1e-6, rope_theta=10_000.0)
    back = hf.args_from_hf_config(parity.hf_config(args))
    assert back.hidden_dim == args.hidden_dim == 291
    assert back.replace(multiple_of=1, ffn_dim_multiplier=1.3) == args


# --- the table the docs show ---

def test_parity_command_prints_and_writes_the_table(tmp_path, capsys):
    out = tmp_path / "parity.md"
    assert main(["parity", "--config", "odd-shapes", "--out", str(out)]) == 0
    table = out.read_text(encoding="utf-8")
    assert table in capsys.readouterr().out
    assert "| tensor | odd-shapes |" in table
    for kind in parity.KINDS:
        assert f"| `{kind}` | " in table
    assert "| `next_token` | 119 = 119 |" in table


def test_parity_command_with_an_unknown_config_is_one_line(capsys):
    assert main(["parity", "--config", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: --config nope: no such configuration (known: tiny, ")
