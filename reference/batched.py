"""The same forward pass with all heads at once, and with a KV cache: the path to run.

Each projection is one matrix product for every head ([T, D] @ [D, H·d]) instead of H small
ones, the kv heads are shared by broadcasting instead of re-projecting, and without a trace
the attention itself is PyTorch's fused `scaled_dot_product_attention`, with or without a KV
cache, so no [heads, T, T] tensor is ever held. Every bf16 weight is upcast in cache-sized
slices right before its product (`upcast.linear`), so no float32 copy of a whole matrix, not
even of the [V, D] output projection, is ever made.
`tests/test_batched.py` proves it equal to `model.forward`.

Generation (`generate.py`) runs this pass with a `KVCache`: the first call (the "prefill")
runs the whole prompt and stores every layer's rotated keys and values; every later call
runs one new token at its own position (`start`) and attends to the cache. A token's keys
and values never change once computed, because the causal mask stops it from seeing
anything after it, so the cache makes each new token cost one position, not the whole prefix.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import model
from .config import ModelArgs
from .model import Trace, Weights, apply_rope, causal_mask, softmax
from .upcast import linear


@dataclass(frozen=True)
class KVCache:
    """Every layer's keys (after RoPE) and values so far, in one preallocated tensor each."""

    k: torch.Tensor  # [n_layers, K, max_len, d]
    v: torch.Tensor  # [n_layers, K, max_len, d]

    @classmethod
    def allocate(cls, args: ModelArgs, max_len: int, dtype: torch.dtype, device="cpu",
                 kv_heads: int | None = None) -> "KVCache":
        """Zeros for `max_len` positions: Llama 3 8B in float32 needs 2·32·8·128·4 = 256 KiB a position.
        A tensor-parallel rank holds only its `kv_heads` (K/N) of the K."""
        shape = (args.n_layers, kv_heads or args.n_kv_heads, max_len, args.head_dim)
        return cls(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))

    @staticmethod
    def nbytes(args: ModelArgs, max_len: int, dtype: torch.dtype, kv_heads: int | None = None) -> int:
        """What `allocate` would hold, keys and values: 2·L·K·max_len·d elements."""
        return 2 * args.n_layers * (kv_heads or args.n_kv_heads) * max_len * args.head_dim * dtype.itemsize

    def update(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the keys and values [K, T, d] of positions start … start+T-1; return all of 0 … start+T-1."""
        end = start + k.shape[1]
        self.k[layer, :, start:end] = k
        self.v[layer, :, start:end] = v
        return self.k[layer, :, :end], self.v[layer, :, :end]  # [K, S, d], S = start + T


def attention_batched(x: torch.Tensor, layer: int, weights: Weights, args: ModelArgs, cis: torch.Tensor,
                      dtype: torch.dtype, device, trace: Trace | None = None, *, cache: KVCache | None = None,
                      start: int = 0, last_query: bool = False) -> torch.Tensor:
    """`model.attention_literal` with every head at once; with a `cache`, for T new tokens at
    positions start … start+T-1 (cis holds those positions), attending to all earlier ones too.
    With `last_query`, every position gives its key and value but only the last one asks: the
    output is that position's row alone, [1, D] (see `next_token_block`)."""
    d, T = args.head_dim, x.shape[0]
    Tq = 1 if last_query else T  # the positions that ask a query: the last Tq of the T
    p = f"layers.{layer}."
    # The head counts come from the weights, not from args: a tensor-parallel rank
    # (parallel/split.py) holds H/N query and K/N kv heads and runs this same code on them.
    q = linear(x[T - Tq:], weights[p + "attention.wq.weight"], dtype, device).reshape(Tq, -1, d)  # [Tq, H, d]
    k = linear(x, weights[p + "attention.wk.weight"], dtype, device).reshape(T, -1, d)  # [T, K, d]
    v = linear(x, weights[p + "attention.wv.weight"], dtype, device).reshape(T, -1, d)  # [T, K, d]
    # RoPE in the projections' own [T, heads, d] layout (cis broadcast over the heads) reads
    # them in place; then a transpose, a view, gives every head its [T, d] rows.
    q_rot, k_rot = apply_rope(q, cis[T - Tq:, None]).transpose(0, 1), apply_rope(k, cis[:, None]).transpose(0, 1)
    q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [H, Tq, d], [K, T, d], [K, T, d]
    H, n_rep = q.shape[0], q.shape[0] // k.shape[0]
    keys, values = (k_rot, v) if cache is None else cache.update(layer, start, k_rot, v)  # [K, S, d]
    if trace is None:
        out = fused_attention(q_rot, keys, values, start + T - Tq)  # [H, Tq, d]
    else:
        # The trace needs the scores themselves, so they are computed explicitly. The one subtle
        # thing is the mask with a cache. The scores are [T, S]: T new queries against all
        # S = start + T keys. Query i is the token at position start + i, so it may see keys
        # 0 … start + i: the mask is -inf only where key j > start + i, i.e. above the diagonal
        # shifted right by `start` (causal_mask(T, S) does that). A square mask would align the
        # diagonal top-left instead and hide the cached keys from the queries.
        S = keys.shape[1]
        keys = keys.repeat_interleave(n_rep, dim=0)  # [H, S, d]: query head h reads kv head h // n_rep
        values = values.repeat_interleave(n_rep, dim=0)  # [H, S, d]
        scores = q_rot @ keys.transpose(1, 2) / math.sqrt(d) + causal_mask(T, S, dtype, device)  # [H, T, S]
        probs = softmax(scores)  # [H, T, S]
        out = probs @ values  # [H, T, d]
    attention = out.transpose(0, 1).reshape(Tq, H * d)  # [Tq, H·d]
    if trace is not None:
        model.record_attention(trace, layer, q, k, v, q_rot, k_rot, scores, probs, attention)
    return linear(attention, weights[p + "attention.wo.weight"], dtype, device)  # [Tq, D]


def fused_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, start: int) -> torch.Tensor:
    """softmax(q·kᵀ/√d + mask)·v in PyTorch's fused kernel, which never holds the [H, T, S]
    scores (a 4,096-token prompt would need 2 GiB of them per layer in float32).

    q [H, T, d] sits at positions start … start+T-1; keys and values [K, S, d] at 0 … S-1.
    enable_gqa lets query head h read kv head h // n_rep without copies. `is_causal` aligns
    the mask's diagonal top-left, right only when there is no cached prefix (start = 0);
    chunks after a prefix get the shifted [T, S] mask of `causal_mask`, O(T·S) and not per
    head. A single new token sees every key and needs no mask at all.
    """
    T, S, gqa = q.shape[1], keys.shape[1], keys.shape[0] != q.shape[0]
    if T == 1:
        # One new token (a decode step): its scores are only [H, 1, S], and the fused kernel's
        # set-up on the CPU costs more than they do. The query heads of a group are the rows of
        # one product with their kv head, so the kv heads are read in place, never repeated.
        K, d = keys.shape[0], q.shape[2]
        scores = q.reshape(K, -1, d) @ keys.transpose(1, 2) / math.sqrt(d)  # [K, H/K, S]
        return (softmax(scores) @ values).reshape(q.shape)  # [H, 1, d]
    # [1, heads, T, d]: with a batch axis, as the CPU's flash kernel needs; without one PyTorch
    # falls back to the plain math and holds the scores (1.2 GB more at 2,048 tokens, 4× slower).
    q, keys, values = q[None], keys[None], values[None]
    if start == 0:
        out = F.scaled_dot_product_attention(q, keys, values, is_causal=True, enable_gqa=gqa)
    else:
        mask = causal_mask(T, S, q.dtype, q.device)  # [T, S]
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, enable_gqa=gqa)
    return out[0]  # [H, T, d]


def feed_forward_batched(x: torch.Tensor, layer: int, weights: Weights, dtype: torch.dtype, device) -> torch.Tensor:
    """`model.swiglu` with `linear`: w2(silu(w1·x) ⊙ w3·x)."""
    p = f"layers.{layer}.feed_forward."
    # In place: at 4,096 tokens each [T, F] float32 activation of the 8B is 224 MiB.
    gate = F.silu(linear(x, weights[p + "w1.weight"], dtype, device), inplace=True)  # [T, F]
    gated = gate.mul_(linear(x, weights[p + "w3.weight"], dtype, device))  # [T, F]
    return linear(gated, weights[p + "w2.weight"], dtype, device)  # [T, D]


def next_token_block(x: torch.Tensor, layer: int, weights: Weights, args: ModelArgs, cis: torch.Tensor,
                     dtype: torch.dtype, device, trace: Trace | None, attention, ffn) -> torch.Tensor:
    """`model.transformer_block` for a pass that wants only the next token: the last layer
    finishes the last row alone, [T, D] → [1, D].

    Its keys and values are still computed for every position (the last query attends to all
    of them, and the cache keeps them for the tokens to come), but the other rows' queries,
    attention outputs, wo and feed-forward would feed no later layer and no logit. For the 8B
    that is 96 % of a layer's products (wq, wo and the three of the feed-forward; wk and wv are
    the small ones): 3 % of a 32-layer prompt, nearly half of the bench's 2-layer one.
    llama.cpp skips the same rows (after its attention; here the queries are skipped too)."""
    if layer < args.n_layers - 1 or trace is not None or x.shape[0] == 1:
        return model.transformer_block(x, layer, weights, args, cis, dtype, device, trace, attention, ffn)
    p = f"layers.{layer}."
    normed = model.rms_norm(x, model.get_weight(weights, p + "attention_norm.weight", dtype, device), args.norm_eps)
    h = x[-1:] + attention(normed, layer, weights, args, cis, dtype, device, last_query=True)  # [1, D]
    normed = model.rms_norm(h, model.get_weight(weights, p + "ffn_norm.weight", dtype, device), args.norm_eps)
    return h + ffn(normed, layer, weights, dtype, device)  # [1, D]


def last_row_logits(x: torch.Tensor, w: torch.Tensor, dtype: torch.dtype, device) -> torch.Tensor:
    """Only the last position predicts the next token: project that row alone onto the vocabulary."""
    return model.output_projection(x[-1:], w, dtype, device)  # [1, V]


def forward(tokens: torch.Tensor, weights: Weights, args: ModelArgs, *, dtype: torch.dtype = torch.float32,
            device: torch.device | str = "cpu", trace: Trace | None = None, on_layer=None,
            cache: KVCache | None = None, start: int = 0, last_only: bool = False) -> torch.Tensor:
    """Token ids [T] → logits [T, V], as `model.forward`, with every head of a layer at once; with
    a `cache`, `tokens` sit at positions start … start+T-1. With `last_only`, the next token's
    logits alone, [1, V]: the last layer and the output projection take only the last position."""
    attention = attention_batched if cache is None else functools.partial(attention_batched, cache=cache, start=start)
    return model.forward(tokens, weights, args, dtype=dtype, device=device, trace=trace, on_layer=on_layer,
                         start=start, attention=attention, ffn=feed_forward_batched,
                         output=last_row_logits if last_only else model.output_projection,
                         block=next_token_block if last_only else model.transformer_block)
