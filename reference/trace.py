"""The trace: every intermediate tensor of one forward pass, under the names of ../shared/TRACE.md.

Goldens, tests, the docs and outside tools read these names, so they are listed here once,
in pipeline order, with their shapes: `trace_shapes(args, T)` is the contract in code.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from . import batched, model
from .config import ModelArgs
from .errors import InputError

LAYER_STEPS = ("attention_norm", "q", "k", "v", "q_rotated", "k_rotated", "scores", "attention_weights",
               "attention", "attention_out", "h", "ffn_norm", "ffn_out", "out")


def trace_shapes(args: ModelArgs, n_tokens: int) -> dict[str, tuple[int, ...]]:
    """Every trace name in pipeline order, with its shape for a prompt of `n_tokens` tokens."""
    T, H, K, D, d, V = n_tokens, args.n_heads, args.n_kv_heads, args.dim, args.head_dim, args.vocab_size
    layer_shapes = {"attention_norm": (T, D), "q": (H, T, d), "k": (K, T, d), "v": (K, T, d),
                    "q_rotated": (H, T, d), "k_rotated": (K, T, d), "scores": (H, T, T),
                    "attention_weights": (H, T, T), "attention": (T, H * d), "attention_out": (T, D),
                    "h": (T, D), "ffn_norm": (T, D), "ffn_out": (T, D), "out": (T, D)}
    shapes = {"tokens": (T,), "embeddings": (T, D), "freqs_cis": (T, d // 2, 2)}
    for i in range(args.n_layers):
        shapes.update({f"layers.{i}.{step}": layer_shapes[step] for step in LAYER_STEPS})
    shapes.update({"norm": (T, D), "logits": (T, V), "next_token": ()})
    return shapes


def run_trace(tokens: list[int] | torch.Tensor, weights, args: ModelArgs, *, dtype=torch.float32, device="cpu",
              path: str = "literal", on_layer=None) -> dict[str, torch.Tensor]:
    """Run the forward pass on `tokens` and return the trace, in pipeline order."""
    tokens = torch.as_tensor(tokens, dtype=torch.int64)
    check_tokens(tokens, args)
    forward = {"literal": model.forward, "batched": batched.forward}[path]
    trace: dict[str, torch.Tensor] = {}
    forward(tokens, weights, args, dtype=dtype, device=device, trace=trace, on_layer=on_layer)
    order = trace_shapes(args, len(tokens))
    return {name: trace[name] for name in order}


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
    return write_atomic(out, buffer.getvalue())


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write beside `path`, then rename over it: an interrupted write leaves the old file whole."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; ours are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_trace_path(out: str | Path) -> Path:
    """Checked before the pass runs, so a typo does not cost a whole forward pass."""
    out = Path(out)
    if out.suffix != ".npz":
        raise InputError(f"{out}: the trace is written as .npz; give a file name ending in .npz")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: no such directory")
    return out


def load_trace(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {name: f[name] for name in f.files}
