"""The trace: every intermediate tensor of one forward pass, under the names of ../shared/TRACE.md.

Goldens, tests, the docs and outside tools read these names, so they are listed here once,
in pipeline order, with their shapes: `trace_shapes(args, T)` is the contract in code.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch

from . import batched, model
from .config import ModelArgs
from .errors import InputError
from .files import check_out_dir, read_npz, write_atomic

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
MASKED = {"scores": float("-inf"), "attention_weights": 0.0}


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


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (what can be allocated without swapping); None off Linux."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_trace_fits(args: ModelArgs, n_tokens: int, dtype: torch.dtype) -> None:
    """Refuse, before allocating anything, a trace that cannot fit in memory, with the numbers."""
    need, free = trace_bytes(args, n_tokens, dtype), available_memory()
    if free is not None and need > free:
        raise InputError(f"a trace of {n_tokens:,} tokens records {need / 2**30:,.1f} GiB (every layer's [H, T, T] "
                         f"scores and weights grow as T²), but {free / 2**30:,.1f} GiB of memory is available; "
                         "trace a shorter prompt, or use `generate`, which records nothing")


def run_trace(tokens: list[int] | torch.Tensor, weights, args: ModelArgs, *, dtype=torch.float32, device="cpu",
              path: str = "literal", on_layer=None, check_finite: bool = True, forward=None) -> dict[str, torch.Tensor]:
    """Run the forward pass on `tokens` and return the trace, in pipeline order. A non-finite
    tensor is refused in one line naming it (`first_non_finite`) unless `check_finite` is off,
    for a caller that compares a deliberately broken pass with a golden. `forward` replaces
    the `path`'s pass (a tensor-parallel rank passes `parallel.forward`)."""
    tokens = torch.as_tensor(tokens, dtype=torch.int64)
    check_tokens(tokens, args)
    check_trace_fits(args, len(tokens), dtype)
    forward = forward or {"literal": model.forward, "batched": batched.forward}[path]
    trace: dict[str, torch.Tensor] = {}
    forward(tokens, weights, args, dtype=dtype, device=device, trace=trace, on_layer=on_layer)
    order = trace_shapes(args, len(tokens))
    trace = {name: trace[name] for name in order}
    problem = first_non_finite(trace, weights) if check_finite else None
    if problem:
        raise InputError(problem)
    return trace


# The weights each step reads (layers.{i}. before the layer steps'): where to look when a step
# turns finite inputs into NaN or Inf.
STEP_WEIGHTS = {"embeddings": ["tok_embeddings.weight"], "attention_norm": ["attention_norm.weight"],
                "q": ["attention.wq.weight"], "k": ["attention.wk.weight"], "v": ["attention.wv.weight"],
                "attention_out": ["attention.wo.weight"], "ffn_norm": ["ffn_norm.weight"],
                "ffn_out": ["feed_forward.w1.weight", "feed_forward.w2.weight", "feed_forward.w3.weight"],
                "norm": ["norm.weight"], "logits": ["output.weight", "tok_embeddings.weight"]}


def first_non_finite(trace: dict[str, torch.Tensor], weights) -> str | None:
    """The first recorded tensor holding NaN or Inf (−inf of the causal mask aside), with what
    its step read, as one sentence; None when every value is finite. A reference whose job is
    numerical truth stops there instead of printing `nan` and a made-up next token."""
    previous = None
    for name, t in trace.items():
        if not t.is_floating_point():
            previous = name
            continue
        values = t.masked_fill(torch.isneginf(t), 0) if step(name) == "scores" else t
        bad = ~torch.isfinite(values)
        if bad.any():
            kind = "NaN" if torch.isnan(values).any() else "Inf"
            where = ", ".join(map(str, (bad.nonzero()[0].tolist())))
            layer = name.split(".")[1] + "." if name.startswith("layers.") else ""
            held = []
            for w in STEP_WEIGHTS.get(step(name), []):
                full = ("layers." + layer if layer else "") + w
                if full in weights:
                    n = int((~torch.isfinite(weights[full].float())).sum())
                    held.append(f"{full} holds {n:,} non-finite values" if n else f"{full} finite")
            inputs = "; ".join([f"{previous} finite"] * (previous is not None) + held)
            return (f"{name} is {kind} (first at index [{where}]), so every later value is meaningless; "
                    f"its inputs: {inputs}")
        previous = name
    return None


def check_tokens(tokens: torch.Tensor, args: ModelArgs) -> None:
    """A prompt the model can run: a non-empty 1-d list of ids in the vocabulary, within the context."""
    if tokens.ndim != 1:
        raise InputError(f"expected a list of token ids, got shape {list(tokens.shape)}")
    if len(tokens) == 0:
        raise InputError("the prompt is empty; it needs at least one token (<|begin_of_text|>)")
    if len(tokens) > args.max_seq_len:
        raise InputError(f"the prompt has {len(tokens)} tokens, more than max_seq_len {args.max_seq_len}")
    bad = tokens[(tokens < 0) | (tokens >= args.vocab_size)]
    if len(bad):
        raise InputError(f"token id {int(bad[0])} is outside the vocabulary [0, {args.vocab_size})")


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """NumPy has no bfloat16, so a bf16 pass is stored as float32 (exactly: bf16 ⊂ fp32)."""
    t = t.detach().cpu()
    if t.is_complex():
        t = torch.view_as_real(t)
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.numpy()


def save_trace(trace: dict[str, torch.Tensor], out: str | Path) -> Path:
    """Write one .npz with one array per name (atomically: see `write_atomic`)."""
    out = check_trace_path(out)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: to_numpy(t) for name, t in trace.items()})
    try:
        return write_atomic(out, buffer.getvalue())
    except OSError as e:  # a full disk, or one that became read-only: the old file, if any, is untouched
        raise InputError(f"{out}: could not write the trace ({e.strerror or e}); nothing was written") from None


def check_trace_path(out: str | Path) -> Path:
    """Checked before the pass runs, so a typo does not cost a whole forward pass."""
    out = Path(out)
    if out.suffix != ".npz":
        raise InputError(f"{out}: the trace is written as .npz; give a file name ending in .npz")
    out = check_out_dir(out)
    if out.is_dir():
        raise InputError(f"{out}: is a directory; give the name of the .npz file to write")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise InputError(f"{out.parent}: is not writable, so the trace cannot be written there")
    return out


load_trace = read_npz  # a trace file is a plain .npz, one array per name
