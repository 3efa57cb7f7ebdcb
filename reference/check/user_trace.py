"""Someone else's trace, as `check` reads it: the file, their names, their dtypes, their layout.

A trace from outside holds any subset of the contract's names (../shared/TRACE.md) as NumPy
arrays, or torch tensors from Python. Their own names are mapped with a small table whose
`{i}` stands for a layer, e.g. {"blocks.{i}.attn.q": "layers.{i}.q"}. A Hugging Face
implementation's queries and keys come in its own row order (formats/layout.py explains why):
`to_meta` undoes it for the four tensors it touches, so everything after compares as Meta's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from ..config import ModelArgs
from ..errors import InputError
from ..files import read_head, read_json
from ..npz import read_npz
from ..formats.layout import activation_to_adjacent_pairs
from .difference import difference, unmask
from .replay import K, K_ROTATED, NEXT_TOKEN, Q, Q_ROTATED, SCORES, TOKENS, ReplayWeights, compute
from ..trace import step, trace_shapes
from ..run import to_numpy

PERMUTED = (Q, K, Q_ROTATED, K_ROTATED)  # the tensors whose last axis Hugging Face's rows reorder
INTEGER = (TOKENS, NEXT_TOKEN)
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # an .npz is a zip archive (the second: an empty one)


def read_trace_file(path: str | Path) -> dict[str, np.ndarray]:
    """An .npz of named arrays, read by `npz.read_npz`, which checks every member before
    inflating it; anything else is one line naming the file (and the member at fault)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory; expected a trace .npz file")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():  # opening a FIFO would wait for a writer
        raise InputError(f"{path}: is not a regular file (a device, FIFO or socket); expected a trace .npz file")
    head = read_head(path, 8)
    if not head:
        raise InputError(f"{path}: is empty; expected a trace .npz file (np.savez of named arrays)")
    if not head.startswith(ZIP_MAGIC):
        what = "a single .npy array" if head.startswith(b"\x93NUMPY") else f"it starts with {head!r}"
        raise InputError(f"{path}: not an .npz file ({what}); write the trace with np.savez(path, **tensors)")
    arrays = read_npz(path, "a trace .npz (np.savez(path, **tensors))")
    if not arrays:
        raise InputError(f"{path}: holds no arrays; a trace holds at least one tensor of TRACE.md")
    return arrays


def as_arrays(tensors: Mapping) -> dict[str, np.ndarray]:
    """torch tensors (bf16 and complex ones too) or anything array-like -> NumPy arrays."""
    return {str(name): to_numpy(t) if isinstance(t, torch.Tensor) else np.asarray(t) for name, t in tensors.items()}


# --- their names -> the contract's ---

def read_names(path: str | Path) -> dict[str, str]:
    """--names MAP.json: a JSON object of their name (with {i} for a layer) -> the contract's."""
    mapping = read_json(Path(path), missing="the --names file")
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise InputError(f"{path}: expected a JSON object of names to names, e.g. "
                         '{"blocks.{i}.attn.q": "layers.{i}.q"}')
    return mapping


def rename(arrays: Mapping[str, np.ndarray], mapping: Mapping[str, str], source: str = "--names") -> dict:
    """Each name that a pattern of `mapping` matches becomes that pattern's contract name.

    Example: {"blocks.{i}.attn.q": "layers.{i}.q"} turns blocks.3.attn.q into layers.3.q.
    """
    patterns = []
    for theirs, ours in mapping.items():
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>\\d+)", re.escape(theirs))
        patterns.append((re.compile(regex + r"\Z"), theirs, ours))
    out: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    for name, array in arrays.items():
        new = name
        for regex, theirs, ours in patterns:
            match = regex.match(name)
            if match:
                try:
                    new = ours.format(**match.groupdict())
                except (KeyError, IndexError, ValueError):
                    raise InputError(f"{source}: {ours!r} uses a placeholder that {theirs!r} does not have") from None
                break
        if new in out:
            raise InputError(f"{source}: both {origin[new]} and {name} become {new}")
        out[new], origin[new] = array, name
    return out


def check_names(arrays: Mapping[str, np.ndarray], args: ModelArgs, source: str) -> None:
    """Every name is one of the contract's for this checkpoint, with a dtype it can have."""
    contract = trace_shapes(args, 1)
    for name, array in arrays.items():
        if name not in contract:
            layer = re.match(r"layers\.(\d+)\.(\w+)$", name)
            why = (f"the checkpoint has {args.n_layers} layers (layers.0 … layers.{args.n_layers - 1})"
                   if layer and f"layers.0.{layer.group(2)}" in contract else
                   "not a name of the trace contract (TRACE.md); map your own names with --names MAP.json")
            raise InputError(f"{source}: {name}: {why}")
        kind = step(name)
        if kind in INTEGER and not np.issubdtype(array.dtype, np.integer):
            raise InputError(f"{source}: {name}: dtype {array.dtype}; {kind} holds integer token ids")
        if kind not in INTEGER and array.dtype not in (np.float16, np.float32, np.float64):
            hint = " (store complex values as real pairs [..., 2])" if np.iscomplexobj(array) else ""
            raise InputError(f"{source}: {name}: dtype {array.dtype}; expected float16, float32 or float64{hint}")


# --- their layout -> Meta's ---

def to_float64(name: str, array: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    """Float64 (token ids too), without a leading batch axis of 1; scores' finite mask as −inf."""
    t = torch.from_numpy(np.ascontiguousarray(array)).to(torch.float64)
    if tuple(t.shape) == (1, *shape):
        t = t[0]
    if step(name) == SCORES:
        t = unmask(t)
    return t


def to_meta(name: str, t: torch.Tensor, layout: str) -> torch.Tensor:
    """A Hugging Face q/k/q_rotated/k_rotated [n, T, d] in Meta's order within each head."""
    return activation_to_adjacent_pairs(t) if layout == "hf" and step(name) in PERMUTED and t.ndim == 3 else t


# --- what the reference runs, and in which layout your q and k are ---

def reference_tokens(theirs, tokenizer, prompt: str | None, source: str) -> tuple[list[int], str]:
    """The tokens the reference runs: the prompt's, or the trace's own (with the BOS the tokenizer adds)."""
    if prompt is not None:
        tokens = tokenizer.encode(prompt, bos=True, eos=False)
        return tokens, f"the {len(tokens)} tokens of the prompt"
    if theirs is None:
        raise InputError(f"{source}: holds no tokens; give the text it was made from with --prompt")
    if theirs.ndim == 2 and theirs.shape[0] == 1:  # a batch of one
        theirs = theirs[0]
    if theirs.ndim != 1 or len(theirs) == 0:
        raise InputError(f"{source}: tokens has shape {list(theirs.shape)}; expected a non-empty list of ids [T]")
    tokens = [int(t) for t in theirs]
    bos = tokenizer.encode("", bos=True, eos=False)  # [BOS], or [] for a tokenizer that adds none
    if bos and tokens[0] != bos[0]:
        return bos + tokens, f"the trace's own {len(tokens)} tokens after the BOS token {bos[0]} the tokenizer adds"
    return tokens, f"the trace's own {len(tokens)} tokens"


def decide_layout(yours: dict, env: dict, m: ReplayWeights, order: list[str], layout: str) -> tuple[str, str]:
    """Meta's or Hugging Face's order of q and k within each head, from the first q or k that tells."""
    if layout != "auto":
        return layout, f"{layout} (as asked)"
    for name in [n for n in order if step(n) in PERMUTED and n in yours]:
        try:  # q and k from your own attention_norm where you gave it; the rotated ones as the reference's
            expected = compute(name, {**env, **yours}, m) if step(name) in (Q, K) else env[name]
        except RuntimeError:  # your attention_norm has another shape: compared and reported in order
            expected = env[name]
        if yours[name].shape != expected.shape:
            continue
        meta, hf = (difference(to_meta(name, yours[name], lay), expected).error for lay in ("meta", "hf"))
        if min(meta, hf) * 4 < max(meta, hf):
            choice = "meta" if meta < hf else "hf"
            how = "Meta's adjacent pairs" if choice == "meta" else "Hugging Face's rotate_half order, undone to compare"
            return choice, f"{choice} (decided from {name}: {how})"
    return "meta", "meta (assumed: no q or k of the trace tells one order from the other)"
