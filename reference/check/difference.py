"""How far one tensor is from another, and where: what `check` and `compare` report.

The error of a tensor is max |yours − expected| / max |expected|, relative to its own scale
(as verify/parity.py measures), so one number means the same for embeddings of size 1 and logits of
size 10. Non-finite values (the causal mask's −inf) must be the same non-finite value in the
same place; anything else there is an infinite error. The tolerance is the dtype's: what its
rounding leaves after one step of the pass (`DTYPE_TOLERANCE`, measured on both built-in models).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from ..trace import step, step_letters

# Scale-relative error that rounding in each dtype may leave in one step, recomputed from the
# step's own inputs. float32 gets verify/parity.py's target; bfloat16 and float16 ten times the worst
# step measured (our pass and transformers' in that dtype, tiny and SmolLM2, 5 to 47 tokens:
# 8e-3 and 2e-3). A trace that skips layers is compared with √(layers recomputed) times this.
DTYPE_TOLERANCE = {"float64": 1e-9, "float32": 1e-4, "float16": 2e-2, "bfloat16": 8e-2}
# The dtypes a trace may really have been computed in, finest first. A trace stored in float64
# may hold a float32 pass's values, one stored in float32 a bfloat16 pass's: when no known
# mistake explains a difference, `check` steps through these in this order and settles on the
# first whose tolerance covers it (of float16 and bfloat16, the one whose numbers the values are).
LEVELS = ("float32", "float16", "bfloat16")
# Entries at or below this are the causal mask, whatever the code wrote there: −inf, or the
# dtype's most negative number as Hugging Face adds (float16's is −65504).
MASK_FLOOR = -6e4


@dataclass(frozen=True)
class Difference:
    error: float  # max |yours − expected| / max |expected|; inf where non-finite values differ
    index: tuple[int, ...]  # the worst element (the first differing non-finite one if any)
    non_finite: int  # elements where one side is non-finite and the other is not the same


def as_float64(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(torch.float64)


def difference(yours: torch.Tensor, expected: torch.Tensor) -> Difference:
    """Both float64 of the same shape; integers compare exactly (any difference counts as 1)."""
    fy, fe = torch.isfinite(yours), torch.isfinite(expected)
    same = (yours == expected) | (torch.isnan(yours) & torch.isnan(expected))
    wrong = ~(fy & fe) & ~same  # [same shape]: a non-finite value on one side only, or another one
    both = fy & fe
    scale = float(expected[fe].abs().max()) if fe.any() else 1.0
    err = torch.where(both, (yours - expected).abs(), torch.zeros_like(yours))
    if wrong.any():
        first = tuple(int(i) for i in torch.nonzero(wrong)[0])
        return Difference(float("inf"), first, int(wrong.sum()))
    if err.numel() == 0:
        return Difference(0.0, (), 0)
    index = tuple(int(i) for i in np.unravel_index(int(err.argmax()), tuple(err.shape)))
    return Difference(float(err.max()) / (scale or 1.0), index, 0)


def unmask(x: torch.Tensor) -> torch.Tensor:
    """Scores with a finite mask (finfo.min, −65504) read as −inf, as the contract writes them."""
    return torch.where(x <= MASK_FLOOR, torch.full_like(x, float("-inf")), x)


# --- where: the worst element in the trace's own words ---

_LABELS = {"H": "head", "K": "kv head", "T": "position", "d": "index", "D": "index", "V": "token id",
           "d/2": "pair", "2": "cos/sin"}


def where(name: str, index: tuple[int, ...], head_dim: int) -> dict:
    """{'layer': 2, 'head': 5, 'position': 3, 'index': 7, 'element': [5, 3, 7]} for layers.2.q.

    A [T, H·d] tensor's column is split into its head and the index within it; scores' second
    position is the key's."""
    out: dict = {"layer": int(name.split(".")[1])} if name.startswith("layers.") else {}
    letters = step_letters(name).split()
    if len(letters) != len(index):
        return {**out, "element": list(index)}
    for letter, i in zip(letters, index):
        if letter == "H·d":
            out.update(head=i // head_dim, index=i % head_dim)
        elif letter == "T" and "position" in out:
            out["key"] = i
        else:
            out.setdefault(_LABELS.get(letter, letter), i)
    return {**out, "element": list(index)}


def where_text(place: dict) -> str:
    """'layer 2, head 5, position 3, index 7'."""
    return ", ".join(f"{k} {v}" for k, v in place.items() if k != "element")


# --- the dtype the user computed in, from the values ---

def representable(x: np.ndarray, dtype: str, sample: int = 1 << 14) -> bool:
    """Every finite value of an array (of its first `sample`) is a `dtype` number: float32 (a
    float64 array holding a float32 pass's values), float16, or bfloat16 (the low 16 of float32's
    bits are 0). A float32 result is a bf16 number by chance once in 65,536 values, so 16,384 tell."""
    x = np.asarray(x).reshape(-1)[:sample]
    x = x[np.isfinite(x)]
    with np.errstate(over="ignore"):
        if not np.array_equal(x.astype(np.float32), x):  # not even float32 numbers
            return False
    x = np.ascontiguousarray(x, dtype=np.float32)
    if dtype == "float32":
        return True
    if dtype == "bfloat16":
        return bool(np.all((x.view(np.uint32) & 0xFFFF) == 0))
    with np.errstate(over="ignore"):
        return bool(np.all(x.astype(np.float16).astype(np.float32) == x))


def recognise_dtype(arrays: Mapping[str, np.ndarray]) -> tuple[str, str]:
    """(dtype, why): float64 or float16 as stored; float32 arrays holding only bfloat16 (or
    float16) numbers were computed in that dtype: NumPy has no bfloat16, so bf16 arrives as
    float32. The embeddings (rows of a bf16 table) and freqs_cis (float32 even in a bf16 pass)
    say nothing about it and are left out; the majority of the other tensors decides."""
    floats = {n: a for n, a in arrays.items() if np.issubdtype(a.dtype, np.floating)}
    telling = {n: a for n, a in floats.items() if step(n) not in ("embeddings", "freqs_cis")} or floats
    if not telling:
        return "float32", "float32 (the trace holds no computed float tensor to tell otherwise)"
    stored = {str(a.dtype) for a in telling.values()}
    if len(stored) == 1 and stored <= {"float64", "float16"}:
        dtype = stored.pop()
        return dtype, f"{dtype} (as stored)"
    for low in ("bfloat16", "float16"):
        n = sum(representable(a, low) for a in telling.values())
        if n * 2 > len(telling):
            return low, (f"{low} (recognised from the values: {n} of the {len(telling)} computed tensors hold only "
                         f"{low} numbers)")
    return "float32", "float32 (the values are not those of a lower dtype)"


# --- the pattern of a difference no known mistake explains ---

def pattern(yours: torch.Tensor, expected: torch.Tensor, letters: str, tol: float) -> str:
    """Which heads and positions differ, a constant factor, or a permutation along an axis."""
    both = torch.isfinite(yours) & torch.isfinite(expected)
    y, e = torch.where(both, yours, 0.0), torch.where(both, expected, 0.0)
    scale = float(e.abs().max()) or 1.0
    c = float((y * e).sum() / (e * e).sum()) if float((e * e).sum()) else 0.0
    if abs(c - 1) > tol and float((y - c * e).abs().max()) / scale <= tol:
        return f"it is the expected tensor times a constant factor {c:.6g}"
    parts = []
    for axis, letter in enumerate(letters.split()[:2]):
        if letter not in ("H", "K", "T") or yours.shape[axis] < 2:
            continue
        label = _LABELS[letter]
        err = (y - e).abs().movedim(axis, 0).flatten(1).amax(1) / scale  # [n] per head or position
        bad = [i for i, v in enumerate(err.tolist()) if v > tol]
        perm = permutation(y.movedim(axis, 0), e.movedim(axis, 0), tol * scale)
        if perm is not None:
            parts.append(f"its {label}s are the expected ones in another order: {perm}")
        elif len(bad) == 1:
            parts.append(f"only {label} {bad[0]} differs (of {len(err)})")
        elif bad and len(bad) < len(err):
            parts.append(f"{label}s {spans(bad)} differ, the other {len(err) - len(bad)} match")
        elif bad:
            parts.append(f"every one of its {len(err)} {label}s differs")
    return "; ".join(parts) or "no constant factor, permutation, head or position explains it"


def permutation(y: torch.Tensor, e: torch.Tensor, atol: float) -> list[int] | None:
    """The order of e's slices (axis 0) that y holds, when it is another order; else None."""
    n = y.shape[0]
    if n > 256:
        return None
    d = torch.cdist(y.flatten(1), e.flatten(1), p=float("inf"))  # [n, n] max abs difference
    found = [int(j) for j in d.argmin(1)]
    if sorted(found) == list(range(n)) and found != list(range(n)) and float(d.min(1).values.max()) <= atol:
        return found
    return None


def spans(ids: list[int]) -> str:
    """[0, 1, 2, 5] -> '0–2, 5'."""
    out, start = [], None
    for a, b in zip(ids, ids[1:] + [None]):
        start = a if start is None else start
        if b != a + 1:
            out.append(f"{start}–{a}" if a > start else f"{a}")
            start = None
    return ", ".join(out)
