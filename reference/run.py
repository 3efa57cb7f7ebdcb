"""Running a traced pass: the memory it will need, the pass itself, a stop at the first non-finite
tensor, and the trace written to (and read from) one .npz.

The names and shapes it records are the contract of `trace.py`; this is the part that runs a
pass (`model.forward` or `batched.forward`) to fill them.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from . import batched, model
from .config import ModelArgs
from .errors import InputError
from .files import available_memory, check_out_dir, write_atomic
from .npz import read_npz
from .trace import MASKED_FILL, STEP_WEIGHTS, step, trace_bytes, trace_shapes


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


def first_non_finite(trace: dict[str, torch.Tensor], weights) -> str | None:
    """The first recorded tensor holding NaN or Inf (−inf of the causal mask aside), with what
    its step read, as one sentence; None when every value is finite. A reference whose job is
    numerical truth stops there instead of printing `nan` and a made-up next token."""
    previous = None
    for name, t in trace.items():
        if not t.is_floating_point():
            previous = name
            continue
        masked_as_neginf = MASKED_FILL.get(step(name)) == float("-inf")  # the scores' causal mask
        values = t.masked_fill(torch.isneginf(t), 0) if masked_as_neginf else t
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
