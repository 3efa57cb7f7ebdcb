"""The Llama 3 family: every preset and every published params.json / config.json loads and
traces; Llama 3.1's scaled RoPE and Llama 3.2's tied embeddings match transformers.

Full-size models are never synthesized here: each preset is shrunk to a few dozen dims and one
or two layers, keeping what makes it itself (RoPE settings, context length, norm eps, query
heads per kv head, tied or not, sharded or not).
"""

import json

import pytest
import torch
from transformers import LlamaForCausalLM
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from reference import batched, config
from reference.verify import parity
from reference.formats import load_checkpoint
from reference.formats.synthesize import synthesize
from reference.config import PRESETS, TIED_PRESETS, ModelArgs
from reference.formats.params import load_params
from reference.formats.hf import args_from_hf_config
from reference.verify.parity import hf_config
from reference.model import rope_frequencies
from reference.run import run_trace
from reference.trace import trace_shapes

PROMPT = [128000, 1820, 4320, 311, 279, 17139, 3488, 315, 2324, 11, 279, 15861, 11, 323, 4395, 374, 220]
SCALED_31 = dict(use_scaled_rope=True, max_seq_len=131_072, rope_scale_factor=8.0)

# Meta's params.json of each published model (original/params.json on the Hub), and what it means.
META_PARAMS = {
    "3-8b": ({"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256, "multiple_of": 1024,
              "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0}, PRESETS["llama3-8b"]),
    "3-70b": ({"dim": 8192, "n_layers": 80, "n_heads": 64, "n_kv_heads": 8, "vocab_size": 128256, "multiple_of": 4096,
               "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0}, PRESETS["llama3-70b"]),
    "3.1-8b": ({"dim": 4096, "ffn_dim_multiplier": 1.3, "multiple_of": 1024, "n_heads": 32, "n_kv_heads": 8,
                "n_layers": 32, "norm_eps": 1e-05, "rope_theta": 500000.0, "use_scaled_rope": True,
                "vocab_size": 128256}, PRESETS["llama3.1-8b"]),
    "3.1-70b": ({"dim": 8192, "ffn_dim_multiplier": 1.3, "multiple_of": 4096, "n_heads": 64, "n_kv_heads": 8,
                 "n_layers": 80, "norm_eps": 1e-05, "rope_theta": 500000.0, "use_scaled_rope": True,
                 "vocab_size": 128256}, PRESETS["llama3-70b"].replace(**SCALED_31)),
    "3.1-405b": ({"dim": 16384, "ffn_dim_multiplier": 1.2, "multiple_of": 4096, "n_heads": 128, "n_kv_heads": 8,
                  "n_layers": 126, "norm_eps": 1e-05, "rope_theta": 500000.0, "use_scaled_rope": True,
                  "vocab_size": 128256},
                 ModelArgs(dim=16384, n_layers=126, n_heads=128, n_kv_heads=8, vocab_size=128256, multiple_of=4096,
                           ffn_dim_multiplier=1.2, **SCALED_31)),
    "3.2-1b": ({"dim": 2048, "ffn_dim_multiplier": 1.5, "multiple_of": 256, "n_heads": 32, "n_kv_heads": 8,
                "n_layers": 16, "norm_eps": 1e-05, "rope_theta": 500000.0, "use_scaled_rope": True,
                "vocab_size": 128256}, PRESETS["llama3.2-1b"]),
    "3.2-3b": ({"dim": 3072, "ffn_dim_multiplier": 1.0, "multiple_of": 256, "n_heads": 24, "n_kv_heads": 8,
                "n_layers": 28, "norm_eps": 1e-05, "rope_theta": 500000.0, "use_scaled_rope": True,
                "vocab_size": 128256}, PRESETS["llama3.2-3b"]),
    # Our own spelling (what synthesize writes): every scaling parameter explicit.
    "explicit-rope-scaling": ({"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256,
                               "multiple_of": 1024, "ffn_dim_multiplier": 1.3, "use_scaled_rope": True,
                               "max_seq_len": 32768, "rope_scaling": {
                                   "factor": 4.0, "low_freq_factor": 2.0, "high_freq_factor": 8.0,
                                   "original_max_position_embeddings": 4096, "rope_type": "llama3"}},
                              PRESETS["llama3-8b"].replace(use_scaled_rope=True, max_seq_len=32768, rope_scale_factor=4.0,
                                                           rope_low_freq_factor=2.0, rope_high_freq_factor=8.0,
                                                           rope_original_max_seq_len=4096)),
}

# Hugging Face's config.json of each published model (transformers 4 spelling), as the preset it is.
_HF_COMMON = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
              "rms_norm_eps": 1e-05, "vocab_size": 128256, "rope_theta": 500000.0, "bos_token_id": 128000,
              "torch_dtype": "bfloat16", "attention_bias": False, "mlp_bias": False}
_ROPE_31 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}
HF_CONFIGS = {
    "Meta-Llama-3-8B": ({**_HF_COMMON, "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
                         "num_hidden_layers": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192,
                         "rope_scaling": None, "tie_word_embeddings": False}, PRESETS["llama3-8b"]),
    "Meta-Llama-3-70B": ({**_HF_COMMON, "hidden_size": 8192, "intermediate_size": 28672, "num_attention_heads": 64,
                          "num_hidden_layers": 80, "num_key_value_heads": 8, "max_position_embeddings": 8192,
                          "rope_scaling": None, "tie_word_embeddings": False}, PRESETS["llama3-70b"]),
    "Llama-3.1-8B": ({**_HF_COMMON, "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
                      "num_hidden_layers": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072,
                      "rope_scaling": _ROPE_31, "tie_word_embeddings": False}, PRESETS["llama3.1-8b"]),
    "Llama-3.2-1B": ({**_HF_COMMON, "hidden_size": 2048, "intermediate_size": 8192, "num_attention_heads": 32,
                      "num_hidden_layers": 16, "num_key_value_heads": 8, "head_dim": 64, "max_position_embeddings": 131072,
                      "rope_scaling": {**_ROPE_31, "factor": 32.0}, "tie_word_embeddings": True}, PRESETS["llama3.2-1b"]),
    "Llama-3.2-3B": ({**_HF_COMMON, "hidden_size": 3072, "intermediate_size": 8192, "num_attention_heads": 24,
                      "num_hidden_layers": 28, "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 131072,
                      "rope_scaling": {**_ROPE_31, "factor": 32.0}, "tie_word_embeddings": True}, PRESETS["llama3.2-3b"]),
}


def shrunk(args: ModelArgs, n_layers: int = 1) -> ModelArgs:
    """`args` with head_dim 8 and 2 kv heads (query heads per kv head kept), so it fits in a test."""
    n_heads = 2 * args.n_rep
    return args.replace(dim=8 * n_heads, n_layers=n_layers, n_heads=n_heads, n_kv_heads=2, multiple_of=32)


def hf_model(ckpt) -> LlamaForCausalLM:
    """transformers' LlamaForCausalLM (float32, eager attention) holding `ckpt`'s weights."""
    return parity.hf_model(ckpt.weights, ckpt.args, ckpt.tied)


# --- every variant loads ---


@pytest.mark.parametrize("name", list(META_PARAMS))
def test_published_params_json_loads_as_its_model(name, tmp_path):
    params, expected = META_PARAMS[name]
    (tmp_path / "params.json").write_text(json.dumps(params))
    assert load_params(tmp_path / "params.json") == expected


@pytest.mark.parametrize("name", list(HF_CONFIGS))
def test_published_hf_config_json_reads_as_its_model(name):
    hf, expected = HF_CONFIGS[name]
    args = args_from_hf_config(hf)
    # HF stores the SwiGLU width itself; any multiple_of/ffn_dim_multiplier that rebuilds it is the same model
    assert args.hidden_dim == expected.hidden_dim
    assert args.replace(multiple_of=expected.multiple_of, ffn_dim_multiplier=expected.ffn_dim_multiplier) == expected


def test_llama32_presets_are_tied_and_the_rest_are_not():
    assert TIED_PRESETS == {"llama3.2-1b", "llama3.2-3b"} and TIED_PRESETS <= set(PRESETS)


def test_synthesizing_a_tied_preset_stores_output_weight_as_a_copy_of_the_embeddings(monkeypatch, tmp_path):
    """As Meta's own 3.2 consolidated.00.pth does, so that Meta's loader takes it as it is."""
    monkeypatch.setitem(config.PRESETS, "llama3.2-1b", shrunk(PRESETS["llama3.2-1b"]))  # its settings, small
    ckpt = load_checkpoint(synthesize("llama3.2-1b", seed=0, out_dir=tmp_path / "c"))
    assert torch.equal(ckpt.weights["output.weight"], ckpt.weights["tok_embeddings.weight"])


# --- every variant traces ---

TRACED = {**{name: (args, name in TIED_PRESETS, 2 if name == "llama3-70b" else 1) for name, args in PRESETS.items()},
          "params 3.1-70b": (META_PARAMS["3.1-70b"][1], False, 2),
          "params explicit-rope-scaling": (META_PARAMS["explicit-rope-scaling"][1], False, 1)}


@pytest.mark.parametrize("name", list(TRACED))
def test_every_variant_loads_and_traces_in_its_own_layout(name, tmp_path):
    full, tied, n_shards = TRACED[name]
    args = shrunk(full)
    ckpt = load_checkpoint(synthesize(args, seed=0, out_dir=tmp_path / "c", tied=tied, n_shards=n_shards))
    assert ckpt.args == args and ckpt.tied == tied
    trace = run_trace(PROMPT, ckpt.weights, ckpt.args)
    assert {k: tuple(v.shape) for k, v in trace.items()} == trace_shapes(args, len(PROMPT))
    assert all(torch.isfinite(t).all() for name, t in trace.items() if t.is_floating_point() and "scores" not in name)
    torch.testing.assert_close(trace["freqs_cis"][1, :, 0], torch.cos(rope_frequencies(args)))  # position 1: cos θ_j


# --- parity with transformers ---


@pytest.mark.parametrize("name", [n for n in PRESETS if n != "tiny"])
def test_rope_frequencies_equal_transformers_for_every_preset(name):
    args = PRESETS[name]
    rotary = LlamaRotaryEmbedding(hf_config(args))
    assert rotary.rope_type == ("llama3" if args.use_scaled_rope else "default")
    torch.testing.assert_close(rope_frequencies(args), rotary.inv_freq, rtol=1e-6, atol=0)


def test_scaled_rope_checkpoint_matches_transformers_llama3_rope_over_500_tokens(tmp_path):
    args = shrunk(PRESETS["llama3.2-1b"], n_layers=2)  # 3.2's scaling: factor 32
    ckpt = load_checkpoint(synthesize(args, seed=0, out_dir=tmp_path / "c", tied=True))
    tokens = torch.randint(0, 128000, (500,), generator=torch.Generator().manual_seed(0))
    ours = batched.forward(tokens, ckpt.weights, ckpt.args)  # [T, V]
    with torch.no_grad():
        theirs = hf_model(ckpt)(tokens[None]).logits[0]  # [T, V]
    assert (ours - theirs).abs().max() < 1e-4
    assert torch.equal(ours.argmax(-1), theirs.argmax(-1))  # the next token, at every one of 500 positions
    unscaled = batched.forward(tokens, ckpt.weights, ckpt.args.replace(use_scaled_rope=False), last_only=True)[0]  # [V]
    assert (unscaled - theirs[-1]).abs().max() > 1e-2  # so the scaling matters over these positions


def test_tied_checkpoint_matches_transformers_with_tied_embeddings(tmp_path):
    args = shrunk(PRESETS["llama3.2-3b"], n_layers=2)
    ckpt = load_checkpoint(synthesize(args, seed=1, out_dir=tmp_path / "c", tied=True))
    model = hf_model(ckpt)
    assert model.config.tie_word_embeddings and model.lm_head.weight is model.model.embed_tokens.weight
    tokens = torch.tensor(PROMPT)
    with torch.no_grad():
        theirs = model(tokens[None]).logits[0]
    ours = batched.forward(tokens, ckpt.weights, ckpt.args)
    assert (ours - theirs).abs().max() < 1e-4 and torch.equal(ours.argmax(-1), theirs.argmax(-1))
