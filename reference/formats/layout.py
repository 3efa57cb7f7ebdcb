"""Meta's layout and Hugging Face's: the name map and the q/k permutation, pure functions over
tensors. The HF loader (`hf.py`), the parity tests and the checker (`check/`) all import it; it
reads no file.

The two layouts hold the same numbers under different names, with one real difference: the
order of the rows of `wq` and `wk`. That difference is the classic cause of "my output
differs from Hugging Face's", so it is explained here once.

**Why q and k are permuted.** RoPE rotates each query/key head in 2-D pairs of dimensions.
Meta's code (and `model.apply_rope`) pairs *adjacent* dimensions, (0, 1), (2, 3), …,
(d-2, d-1), treating each pair as one complex number. Hugging Face's `rotate_half` pairs
dimension j with dimension j + d/2: (0, d/2), (1, d/2+1), …. Both compute the same rotation
if the head's dimensions are listed in a different order, and the order of a head's output
dimensions is the order of the rows of `wq`/`wk`. So converting Meta → HF reorders the d
rows of every head: the real parts (rows 0, 2, 4, …) first, then the imaginary parts
(rows 1, 3, 5, …). For d = 8:

    Meta rows of one head:  0 1 2 3 4 5 6 7      pairs (0,1) (2,3) (4,5) (6,7)
    HF rows of that head:   0 2 4 6 1 3 5 7      pairs (0,4) (1,5) (2,6) (3,7) = same pairs

Only wq and wk change (they feed RoPE); values, wo and the MLP are untouched, and the
attention scores q·k are identical because q and k are reordered alike. A query or key
*activation* from HF's model is turned back into Meta's order with `to_adjacent_pairs`.

**Names.** `HF_NAMES` maps each of Meta's names to Hugging Face's `LlamaForCausalLM` name:

    tok_embeddings.weight               model.embed_tokens.weight
    layers.N.attention.wq.weight        model.layers.N.self_attn.q_proj.weight   (permuted)
    layers.N.feed_forward.w1.weight     model.layers.N.mlp.gate_proj.weight      (w2: down, w3: up)
    output.weight                       lm_head.weight   (absent when tied, as in Llama 3.2 1B/3B)
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

from ..config import ModelArgs, expected_shapes
from ..errors import InputError

# Meta's name (with N for the layer) -> Hugging Face's name.
HF_NAMES = {
    "tok_embeddings.weight": "model.embed_tokens.weight",
    "layers.N.attention.wq.weight": "model.layers.N.self_attn.q_proj.weight",
    "layers.N.attention.wk.weight": "model.layers.N.self_attn.k_proj.weight",
    "layers.N.attention.wv.weight": "model.layers.N.self_attn.v_proj.weight",
    "layers.N.attention.wo.weight": "model.layers.N.self_attn.o_proj.weight",
    "layers.N.feed_forward.w1.weight": "model.layers.N.mlp.gate_proj.weight",  # the silu gate
    "layers.N.feed_forward.w2.weight": "model.layers.N.mlp.down_proj.weight",  # back to D
    "layers.N.feed_forward.w3.weight": "model.layers.N.mlp.up_proj.weight",  # the value
    "layers.N.attention_norm.weight": "model.layers.N.input_layernorm.weight",
    "layers.N.ffn_norm.weight": "model.layers.N.post_attention_layernorm.weight",
    "norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
META_NAMES = {hf: meta for meta, hf in HF_NAMES.items()}
# Buffers some HF checkpoints carry that are recomputed, never loaded (older Llama conversions).
HF_IGNORED = re.compile(r"(model\.)?layers\.\d+\.self_attn\.rotary_emb\.inv_freq")


def _generic(name: str) -> tuple[str, str | None]:
    """'layers.3.attention.wq.weight' -> ('layers.N.attention.wq.weight', '3')."""
    m = re.match(r"^((?:model\.)?layers\.)(\d+)(\..*)$", name)
    return (m.group(1) + "N" + m.group(3), m.group(2)) if m else (name, None)


def hf_name(meta_name: str) -> str:
    """'layers.3.attention.wq.weight' -> 'model.layers.3.self_attn.q_proj.weight'."""
    generic, layer = _generic(meta_name)
    if generic not in HF_NAMES:
        raise InputError(f"{meta_name}: not a weight of Meta's Llama checkpoint format")
    return HF_NAMES[generic].replace(".N.", f".{layer}.") if layer else HF_NAMES[generic]


def meta_name(hf_name: str) -> str:
    """'model.layers.3.mlp.gate_proj.weight' -> 'layers.3.feed_forward.w1.weight'."""
    generic, layer = _generic(hf_name if hf_name.startswith(("model.", "lm_head.")) else "model." + hf_name)
    if generic not in META_NAMES:
        raise InputError(f"{hf_name}: not a weight of Hugging Face's LlamaForCausalLM "
                         "(expected e.g. model.layers.0.self_attn.q_proj.weight)")
    return META_NAMES[generic].replace(".N.", f".{layer}.") if layer else META_NAMES[generic]


# --- the permutation, for weights [heads·d, D] and for activations [..., d] ---

def to_rotate_half(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder each head's rows from Meta's adjacent pairs to HF's halves: 0 1 2 3 -> 0 2 1 3."""
    rows, cols = w.shape
    d = rows // n_heads
    return w.reshape(n_heads, d // 2, 2, cols).transpose(1, 2).reshape(rows, cols)  # [H·d, D]


def to_adjacent_pairs(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """The inverse of `to_rotate_half`: HF's row order back to Meta's, 0 2 1 3 -> 0 1 2 3."""
    rows, cols = w.shape
    d = rows // n_heads
    return w.reshape(n_heads, 2, d // 2, cols).transpose(1, 2).reshape(rows, cols)  # [H·d, D]


def activation_to_adjacent_pairs(x: torch.Tensor) -> torch.Tensor:
    """A query/key activation [..., d] from HF's model, in Meta's dimension order."""
    return x.unflatten(-1, (2, x.shape[-1] // 2)).transpose(-1, -2).flatten(-2)  # [..., d]


# --- whole state dicts ---

def meta_to_hf_state_dict(weights: Mapping[str, torch.Tensor], args: ModelArgs) -> dict[str, torch.Tensor]:
    """Meta's weights -> a state dict `LlamaForCausalLM(hf_config(args)).load_state_dict` accepts.

    Dtypes are kept (bf16 stays bf16). A tied checkpoint (no output.weight) gives no
    lm_head.weight; build the model with `hf_config(args, tied=True)`.
    """
    out = {}
    for name, w in weights.items():
        if name.endswith("attention.wq.weight"):
            w = to_rotate_half(w, args.n_heads)
        elif name.endswith("attention.wk.weight"):
            w = to_rotate_half(w, args.n_kv_heads)
        out[hf_name(name)] = w
    return out


def hf_to_meta_state_dict(state_dict: Mapping[str, torch.Tensor], args: ModelArgs) -> dict[str, torch.Tensor]:
    """A Hugging Face Llama state dict (e.g. read from model.safetensors) -> Meta's names and layout.

    Accepts `LlamaForCausalLM` names (model.…, lm_head.weight) and bare `LlamaModel` names
    (layers.…). Without lm_head.weight the result has no output.weight: a tied checkpoint.
    Shapes are checked against `args`, so a config that does not fit fails here, by name.
    """
    expected = expected_shapes(args)
    out = {}
    for name, w in state_dict.items():
        if HF_IGNORED.fullmatch(name):
            continue
        meta = meta_name(name)
        if meta not in expected:
            raise InputError(f"{name}: layer index out of range (the config has n_layers={args.n_layers})")
        if list(w.shape) != list(expected[meta]):
            raise InputError(f"{name}: has shape {list(w.shape)}, the config implies {list(expected[meta])}")
        if meta.endswith("attention.wq.weight"):
            w = to_adjacent_pairs(w, args.n_heads)
        elif meta.endswith("attention.wk.weight"):
            w = to_adjacent_pairs(w, args.n_kv_heads)
        out[meta] = w
    missing = [n for n in expected if n not in out and n != "output.weight"]
    if missing:
        raise InputError(f"{hf_name(missing[0])}: missing from the state dict ({len(missing)} weights missing)")
    return out
