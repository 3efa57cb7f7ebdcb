"""The trace: every intermediate tensor of one forward pass, under the names of ../shared/TRACE.md.

Goldens, tests, the docs and outside tools read these names, so they are listed here once,
in pipeline order, with their shapes: `trace_shapes(args, T)` is the contract in code. This
module is the contract alone, below every pass: running a traced pass is `run.py`.
"""

from __future__ import annotations

import math

import torch

from .config import ModelArgs

# The contract of ../shared/TRACE.md in code: every name in pipeline order, with its shape in
# TRACE.md's letters and what it is, in the words `walk` prints. Everything that lists trace
# names (walk, goldens, parity, the docs) derives its list from these three tables.
STEPS = {
    "tokens": ("T", "tokens: the prompt as BPE token ids, <|begin_of_text|> first"),
    "embeddings": ("T D", "token embeddings: one row of tok_embeddings.weight per token"),
    "freqs_cis": ("T d/2 2", "RoPE: cos and sin of m·θ_j for position m, pair j"),
}
LAYER_STEPS = {  # each recorded as layers.{i}.{step}
    "attention_norm": ("T D", "RMSNorm of the layer input"),
    "q": ("H T d", "queries per head, before RoPE"),
    "k": ("K T d", "keys per kv head, before RoPE"),
    "v": ("K T d", "values per kv head"),
    "q_rotated": ("H T d", "queries after RoPE"),
    "k_rotated": ("K T d", "keys after RoPE"),
    "scores": ("H T T", "q·kᵀ/√d with the causal mask"),
    "attention_weights": ("H T T", "softmax of the scores"),
    "attention": ("T H·d", "all heads' outputs side by side"),
    "attention_out": ("T D", "after wo"),
    "h": ("T D", "residual: layer input + attention"),
    "ffn_norm": ("T D", "RMSNorm of h"),
    "ffn_out": ("T D", "SwiGLU feed-forward: w2(silu(w1·x) ⊙ w3·x)"),
    "out": ("T D", "residual: h + feed-forward = the layer's output"),
}
FINAL_STEPS = {
    "norm": ("T D", "final RMSNorm"),
    "logits": ("T V", "logits: a score for every token of the vocabulary"),
    "next_token": ("", "the next token: argmax of the last row of logits"),
}


# Which page of the docs site explains each step (docs/NAME.md): the explorer links to it.
DOCS_PAGE = {"tokens": "bpe", "embeddings": "embeddings", "freqs_cis": "rope", "attention_norm": "rmsnorm",
             "q": "qkv", "k": "qkv", "v": "qkv", "q_rotated": "rope", "k_rotated": "rope", "scores": "attention",
             "attention_weights": "attention", "attention": "multi-head", "attention_out": "multi-head", "h": "layers",
             "ffn_norm": "rmsnorm", "ffn_out": "swiglu", "out": "layers", "norm": "prediction", "logits": "prediction"}


# What a masked (future) entry of the [H, T, T] tensors holds: a −inf score, a 0 weight.
MASKED_FILL = {"scores": float("-inf"), "attention_weights": 0.0}


# The weights each step reads (layers.{i}. before the layer steps'): where to look when a step
# turns finite inputs into NaN or Inf.
STEP_WEIGHTS = {"embeddings": ["tok_embeddings.weight"], "attention_norm": ["attention_norm.weight"],
                "q": ["attention.wq.weight"], "k": ["attention.wk.weight"], "v": ["attention.wv.weight"],
                "attention_out": ["attention.wo.weight"], "ffn_norm": ["ffn_norm.weight"],
                "ffn_out": ["feed_forward.w1.weight", "feed_forward.w2.weight", "feed_forward.w3.weight"],
                "norm": ["norm.weight"], "logits": ["output.weight", "tok_embeddings.weight"]}


def step(name: str) -> str:
    """'layers.3.q_rotated' -> 'q_rotated'; 'logits' stays 'logits'."""
    return name.rsplit(".", 1)[-1]


def describe_step(name: str) -> str:
    """What a trace name is, in the walk-through's words: 'layers.0.h' -> 'residual: layer input + attention'."""
    for table in (STEPS, LAYER_STEPS, FINAL_STEPS):
        if step(name) in table:
            return table[step(name)][1]
    return ""


def step_letters(name: str) -> str:
    """A trace name's shape in TRACE.md's letters: 'layers.0.q' -> 'H T d'."""
    for table in (STEPS, LAYER_STEPS, FINAL_STEPS):
        if step(name) in table:
            return table[step(name)][0]
    return ""


def trace_shapes(args: ModelArgs, n_tokens: int) -> dict[str, tuple[int, ...]]:
    """Every trace name in pipeline order, with its shape for a prompt of `n_tokens` tokens."""
    H, K, d = args.n_heads, args.n_kv_heads, args.head_dim
    sizes = {"T": n_tokens, "D": args.dim, "H": H, "K": K, "d": d, "d/2": d // 2, "H·d": H * d, "V": args.vocab_size,
             "2": 2}

    def shape(letters: str) -> tuple[int, ...]:
        return tuple(sizes[letter] for letter in letters.split())

    shapes = {name: shape(letters) for name, (letters, _) in STEPS.items()}
    for i in range(args.n_layers):
        shapes.update({f"layers.{i}.{name}": shape(letters) for name, (letters, _) in LAYER_STEPS.items()})
    shapes.update({name: shape(letters) for name, (letters, _) in FINAL_STEPS.items()})
    return shapes


def trace_bytes(args: ModelArgs, n_tokens: int, dtype: torch.dtype = torch.float32) -> int:
    """The bytes a trace of `n_tokens` records. Every layer's [H, T, T] scores and weights grow
    as T², so they dominate long prompts: Llama 3 8B at 8,192 tokens, 2·32·32·8192²·4 B = 512 GiB."""
    itemsize = torch.finfo(dtype).bits // 8
    return sum(math.prod(shape) for shape in trace_shapes(args, n_tokens).values()) * itemsize
