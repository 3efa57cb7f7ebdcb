"""The Llama 3 forward pass, one small function per step, in the walk-through's order.

This is the *literal* path: attention loops over heads exactly as the walk-through does, so
each line can be read against the prose. `batched.py` computes the same thing with all heads
at once; `tests/test_batched.py` proves the two agree. The section numbers are the docs
site's pages (1 · Tokens is `text/tokenizer.py`).

Notation (as in ../shared/TRACE.md): T tokens, D = dim, H query heads, K kv heads,
d = head_dim = D / H, F = the SwiGLU hidden size, V = vocab_size.

Weights stay as the checkpoint stores them (bfloat16, memory-mapped). Each function asks for
the one weight it needs through `get_weight(...)`, which upcasts that tensor alone: the model
is never copied to float32 as a whole.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch

from .config import ModelArgs
from .upcast import linear

Weights = Mapping[str, torch.Tensor]
Trace = dict  # name -> tensor, names and shapes as in ../shared/TRACE.md


# --- 2 · token embeddings ---

def embed(tokens: torch.Tensor, tok_embeddings: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Look up one row per token. Only T rows are upcast, never the whole [V, D] table."""
    return tok_embeddings[tokens.to(tok_embeddings.device)].to(dtype)  # [T, D]


# --- 3 · RMSNorm ---

def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x²) + eps) · weight, per row.

    Example: x = [3, 4] has mean square 12.5, so rms_norm(x, [1, 1], 0) = [0.8485, 1.1314].
    """
    x32 = at_least_fp32(x)
    normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return normed.to(x.dtype) * weight


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """Softmax, RMSNorm's mean of squares and RoPE run in float32 even for a bfloat16 pass:
    bf16 keeps 8 bits of mantissa, too few to sum 8,000 exponentials or squares faithfully."""
    return x if x.dtype == torch.float64 else x.float()


# --- 5 · RoPE ---

def rope_frequencies(args: ModelArgs, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """θ_j = rope_theta^(-2j/d) for pair j = 0 … d/2-1: how fast pair j turns per position."""
    d = args.head_dim
    freqs = 1.0 / (args.rope_theta ** (torch.arange(0, d, 2, dtype=dtype) / d))  # [d/2]
    return scale_rope_frequencies(freqs, args) if args.use_scaled_rope else freqs


def scale_rope_frequencies(freqs: torch.Tensor, args: ModelArgs) -> torch.Tensor:
    """Llama 3.1's context extension: slow pairs (long wavelengths) are divided by the scale
    factor, fast pairs are kept, and those in between are blended smoothly.

    The long-wavelength pairs are the ones that never completed a turn within the original
    8k training context, so positions beyond it would be out of distribution for them.
    """
    old_len = args.rope_original_max_seq_len
    low_freq_wavelen = old_len / args.rope_low_freq_factor
    high_freq_wavelen = old_len / args.rope_high_freq_factor
    wavelen = 2 * math.pi / freqs
    smooth = (old_len / wavelen - args.rope_low_freq_factor) / (args.rope_high_freq_factor - args.rope_low_freq_factor)
    blended = (1 - smooth) * freqs / args.rope_scale_factor + smooth * freqs
    scaled = torch.where(wavelen > low_freq_wavelen, freqs / args.rope_scale_factor, freqs)
    in_between = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return torch.where(in_between, blended, scaled)


def freqs_cis(args: ModelArgs, n_tokens: int, start: int = 0, dtype: torch.dtype = torch.float32,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """e^(i·m·θ_j) for positions m = start … start+T-1: a unit complex number per (position, pair).

    float32 angles, as Meta's and Hugging Face's code use, unless the whole pass is float64.
    """
    freqs = rope_frequencies(args, dtype).to(device)  # [d/2]
    positions = torch.arange(start, start + n_tokens, dtype=dtype, device=device)  # [T]
    angles = torch.outer(positions, freqs)  # [T, d/2]
    return torch.polar(torch.ones_like(angles), angles)  # [T, d/2] complex


def apply_rope(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """Rotate each adjacent pair (x[2j], x[2j+1]) of every position m by the angle m·θ_j.

    Treating the pair as the complex number x[2j] + i·x[2j+1], a rotation is one complex
    multiplication. Works for [T, d] (one head) and [heads, T, d] (all heads) alike.
    """
    pairs = at_least_fp32(x).reshape(*x.shape[:-1], -1, 2)  # [..., T, d/2, 2]
    rotated = torch.view_as_complex(pairs) * freqs_cis  # [..., T, d/2]
    return torch.view_as_real(rotated).flatten(-2).to(x.dtype)  # [..., T, d]


# --- 6 · self-attention ---

def causal_mask(n_queries: int, n_keys: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """-inf where key position > query position, 0 elsewhere: a token sees itself and its past.

    The queries are the *last* n_queries of the n_keys positions (with a KV cache, earlier
    keys come from previous steps), so query i sits at position n_keys - n_queries + i.
    """
    mask = torch.full((n_queries, n_keys), float("-inf"), dtype=dtype, device=device)
    return torch.triu(mask, diagonal=n_keys - n_queries + 1)  # [T, T]


def softmax(scores: torch.Tensor) -> torch.Tensor:
    return torch.softmax(at_least_fp32(scores), dim=-1).to(scores.dtype)


# --- 4 → 7 · attention: q, k, v per head (4), RoPE (5), scores (6), heads side by side (7) ---

def attention_literal(x: torch.Tensor, layer: int, weights: Weights, args: ModelArgs, cis: torch.Tensor,
                      dtype: torch.dtype, device, trace: Trace | None = None) -> torch.Tensor:
    """Multi-head attention with grouped KV heads, one head at a time, as the walk-through does."""
    H, K, d, D, T = args.n_heads, args.n_kv_heads, args.head_dim, args.dim, x.shape[0]
    p = f"layers.{layer}."
    wq = get_weight(weights, p + "attention.wq.weight", dtype, device).view(H, d, D)  # [H, d, D]
    wk = get_weight(weights, p + "attention.wk.weight", dtype, device).view(K, d, D)  # [K, d, D]
    wv = get_weight(weights, p + "attention.wv.weight", dtype, device).view(K, d, D)  # [K, d, D]
    mask = causal_mask(T, T, dtype, device)
    qs, ks, vs, q_rots, k_rots, all_scores, all_probs, outs = ([] for _ in range(8))
    for h in range(H):
        kv = h // args.n_rep  # query head h shares key/value head h // (H / K)
        q = x @ wq[h].T  # [T, d]
        k = x @ wk[kv].T  # [T, d]
        v = x @ wv[kv].T  # [T, d]
        q_rot = apply_rope(q, cis)  # [T, d]
        k_rot = apply_rope(k, cis)  # [T, d]
        scores = q_rot @ k_rot.T / math.sqrt(d) + mask  # [T, T]
        probs = softmax(scores)  # [T, T]
        outs.append(probs @ v)  # [T, d]
        qs.append(q)
        q_rots.append(q_rot)
        all_scores.append(scores)
        all_probs.append(probs)
        if h % args.n_rep == 0:  # the first query head of each group records its kv head
            ks.append(k)
            vs.append(v)
            k_rots.append(k_rot)
    attention = torch.cat(outs, dim=-1)  # [T, H·d]: heads side by side
    if trace is not None:
        stacked = (torch.stack(t) for t in (qs, ks, vs, q_rots, k_rots, all_scores, all_probs))  # [H or K, T, ...]
        record_attention(trace, layer, *stacked, attention)
    return attention @ get_weight(weights, p + "attention.wo.weight", dtype, device).T  # [T, D]


def record_attention(trace: Trace, layer: int, q, k, v, q_rotated, k_rotated, scores, attention_weights,
                     attention) -> None:
    """One layer's attention tensors under their trace names; the fast path records through this too."""
    p = f"layers.{layer}."
    for name, t in (("q", q), ("k", k), ("v", v), ("q_rotated", q_rotated), ("k_rotated", k_rotated),
                    ("scores", scores), ("attention_weights", attention_weights), ("attention", attention)):
        record(trace, p + name, t)


# --- 8 · SwiGLU feed-forward ---

def swiglu(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, w3: torch.Tensor) -> torch.Tensor:
    """w2(silu(w1·x) ⊙ w3·x): w3·x is the value, silu(w1·x) a learned gate on each of F units."""
    gate = torch.nn.functional.silu(x @ w1.T)  # [T, F]
    return (gate * (x @ w3.T)) @ w2.T  # [T, D]


def feed_forward(x: torch.Tensor, layer: int, weights: Weights, dtype: torch.dtype, device) -> torch.Tensor:
    p = f"layers.{layer}.feed_forward."
    w1, w2, w3 = (get_weight(weights, p + f"{w}.weight", dtype, device) for w in ("w1", "w2", "w3"))
    return swiglu(x, w1, w2, w3)  # [T, D]


# --- 9 · one transformer block ---

def transformer_block(x: torch.Tensor, layer: int, weights: Weights, args: ModelArgs, cis: torch.Tensor,
                      dtype: torch.dtype, device, trace: Trace | None, attention=attention_literal,
                      ffn=feed_forward) -> torch.Tensor:
    """x + attention(norm(x)), then h + ffn(norm(h)): the pre-norm residual block."""
    p = f"layers.{layer}."
    normed = rms_norm(x, get_weight(weights, p + "attention_norm.weight", dtype, device), args.norm_eps)
    record(trace, p + "attention_norm", normed)
    attention_out = attention(normed, layer, weights, args, cis, dtype, device, trace)
    record(trace, p + "attention_out", attention_out)
    h = x + attention_out  # [T, D]
    record(trace, p + "h", h)
    normed = rms_norm(h, get_weight(weights, p + "ffn_norm.weight", dtype, device), args.norm_eps)
    record(trace, p + "ffn_norm", normed)
    ffn_out = ffn(normed, layer, weights, dtype, device)
    record(trace, p + "ffn_out", ffn_out)
    out = h + ffn_out  # [T, D]
    record(trace, p + "out", out)
    return out


# --- 10 · the prediction ---

def output_projection(x: torch.Tensor, w: torch.Tensor, dtype: torch.dtype, device) -> torch.Tensor:
    """Scores for every vocabulary entry: x @ output.weightᵀ. The [V, D] matrix is the model's
    largest (2 GiB in float32 for the 8B), so `linear` upcasts it a slice at a time, never whole."""
    return linear(x, w, dtype, device)  # [T, V]


def output_weight_name(weights: Weights) -> str:
    """Llama 3.2 1B/3B tie the output projection to the embeddings and ship no `output.weight`."""
    return "output.weight" if "output.weight" in weights else "tok_embeddings.weight"


# --- 1 → 10 · the whole pass ---

def forward(tokens: torch.Tensor, weights: Weights, args: ModelArgs, *, dtype: torch.dtype = torch.float32,
            device: torch.device | str = "cpu", trace: Trace | None = None, on_layer=None, start: int = 0,
            embed=embed, attention=attention_literal, ffn=feed_forward, output=output_projection,
            block=transformer_block) -> torch.Tensor:
    """Token ids [T] → logits [T, V]. Pass a dict as `trace` to record every intermediate.

    `attention`, `ffn` and `output` are the steps the fast path does differently: by default the
    literal per-head loop and plain matrix products; `batched.forward` passes its own, and
    `start`, the position of the first token when a KV cache holds the ones before it.
    `parallel.forward` also passes its own `embed`: a rank holds only part of the vocabulary,
    and `batched.forward` its own `block` when only the next token is wanted.
    `on_layer(i)` is called after each layer (the CLI uses it for a progress bar).
    """
    record(trace, "tokens", tokens)
    x = embed(tokens, weights["tok_embeddings.weight"], dtype).to(device)  # [T, D]
    record(trace, "embeddings", x)
    rope_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    cis = freqs_cis(args, len(tokens), start=start, dtype=rope_dtype, device=device)  # [T, d/2] complex
    record(trace, "freqs_cis", torch.view_as_real(cis))  # [T, d/2, 2]
    for layer in range(args.n_layers):
        x = block(x, layer, weights, args, cis, dtype, device, trace, attention, ffn)
        if on_layer is not None:
            on_layer(layer)
    x = rms_norm(x, get_weight(weights, "norm.weight", dtype, device), args.norm_eps)  # [T, D]
    record(trace, "norm", x)
    logits = output(x, weights[output_weight_name(weights)], dtype, device)  # [T, V]
    record(trace, "logits", logits)
    record(trace, "next_token", logits[-1].argmax())
    return logits


# --- helpers ---

def get_weight(weights: Weights, name: str, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """One weight on `device` in `dtype`. Moved first, then cast: bf16 is half the bytes to move."""
    return weights[name].to(device=device).to(dtype)


def record(trace: Trace | None, name: str, tensor: torch.Tensor) -> None:
    if trace is not None:
        trace[name] = tensor.detach()
