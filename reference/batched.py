"""The same forward pass with all heads at once: the path to run, beside the path to read.

Each projection is one matrix product for every head ([T, D] @ [D, H·d]) instead of H small
ones, the kv heads are shared by broadcasting instead of re-projecting, and without a trace
the attention itself is PyTorch's fused `scaled_dot_product_attention`. Every bf16 weight is
upcast in cache-sized slices right before its product (`linear`), so no float32 copy of a
whole matrix, not even of the [V, D] output projection, is ever made.
`tests/test_batched.py` proves it equal to `model.forward`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import model
from .config import ModelArgs
from .model import Trace, Weights, apply_rope, causal_mask, linear, record, softmax

def attention_batched(x: torch.Tensor, layer: int, weights: Weights, args: ModelArgs, cis: torch.Tensor,
                      dtype: torch.dtype, device, trace: Trace | None = None) -> torch.Tensor:
    H, K, d, T = args.n_heads, args.n_kv_heads, args.head_dim, x.shape[0]
    p = f"layers.{layer}."
    q = linear(x, weights[p + "attention.wq.weight"], dtype, device).reshape(T, H, d).transpose(0, 1)  # [H, T, d]
    k = linear(x, weights[p + "attention.wk.weight"], dtype, device).reshape(T, K, d).transpose(0, 1)  # [K, T, d]
    v = linear(x, weights[p + "attention.wv.weight"], dtype, device).reshape(T, K, d).transpose(0, 1)  # [K, T, d]
    q_rot, k_rot = apply_rope(q, cis), apply_rope(k, cis)
    for name, t in (("q", q), ("k", k), ("v", v), ("q_rotated", q_rot), ("k_rotated", k_rot)):
        record(trace, p + name, t)
    if trace is None:
        # Fused kernel; enable_gqa lets query head h read kv head h // n_rep without copies.
        out = F.scaled_dot_product_attention(q_rot, k_rot, v, is_causal=True, enable_gqa=K != H)  # [H, T, d]
    else:
        # The trace needs the scores themselves, so compute them explicitly.
        k_rep = k_rot.repeat_interleave(args.n_rep, dim=0)  # [H, T, d]
        v_rep = v.repeat_interleave(args.n_rep, dim=0)  # [H, T, d]
        scores = q_rot @ k_rep.transpose(1, 2) / math.sqrt(d) + causal_mask(T, T, dtype, device)  # [H, T, T]
        probs = softmax(scores)  # [H, T, T]
        record(trace, p + "scores", scores)
        record(trace, p + "attention_weights", probs)
        out = probs @ v_rep  # [H, T, d]
    attention = out.transpose(0, 1).reshape(T, H * d)  # [T, H·d]
    record(trace, p + "attention", attention)
    return linear(attention, weights[p + "attention.wo.weight"], dtype, device)  # [T, D]


def feed_forward_batched(x: torch.Tensor, layer: int, weights: Weights, dtype: torch.dtype, device) -> torch.Tensor:
    """`model.swiglu` with `linear`: w2(silu(w1·x) ⊙ w3·x)."""
    p = f"layers.{layer}.feed_forward."
    gate = F.silu(linear(x, weights[p + "w1.weight"], dtype, device))  # [T, F]
    return linear(gate * linear(x, weights[p + "w3.weight"], dtype, device), weights[p + "w2.weight"], dtype, device)


def output_logits(x: torch.Tensor, w: torch.Tensor, dtype: torch.dtype, device) -> torch.Tensor:
    """x @ output.weightᵀ: the [V, D] matrix is upcast a slice at a time by `linear`, never whole."""
    return linear(x, w, dtype, device)  # [T, V]


def forward(tokens: torch.Tensor, weights: Weights, args: ModelArgs, *, dtype: torch.dtype = torch.float32,
            device: torch.device | str = "cpu", trace: Trace | None = None, on_layer=None) -> torch.Tensor:
    """Token ids [T] → logits [T, V], as `model.forward`, with every head of a layer at once."""
    return model.forward(tokens, weights, args, dtype=dtype, device=device, trace=trace, on_layer=on_layer,
                         attention=attention_batched, ffn=feed_forward_batched, output=output_logits)
