"""Where a trace first goes wrong: two traces compared name by name, in pipeline order, each
tensor within its tolerance; the first that is not is described, every later one only counted
(it inherits the error). `goldens.py` compares against its recorded goldens with these rules.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import numpy as np

from ..trace import LAYER_STEPS


class Tolerance(NamedTuple):
    atol: float
    rtol: float
    why: str


_EXACT_INT = Tolerance(0.0, 0.0, "integers: any difference is a different token, position or id")
_ROUNDED = Tolerance(1e-9, 2.5e-7, "a float64 result rounded to float32: another machine's float64 "
                                   "result rounds to the same float32 or its neighbour (1 ulp = "
                                   "1.2e-7 of the value); 2 ulps, plus 1e-9 for values near 0")

# Comparison tolerance per tensor kind (the last part of the name), |obtained - golden| <=
# atol + rtol·|golden| element-wise; non-finite values (the causal mask's -inf) must be identical.
GOLDEN_TOLERANCES: dict[str, Tolerance] = {
    "tokens": _EXACT_INT,
    "positions": _EXACT_INT,
    "embeddings": Tolerance(0.0, 0.0, "rows of the bf16 table, exact in float32: a lookup never rounds"),
    "freqs_cis": _ROUNDED,
    **{step: _ROUNDED for step in LAYER_STEPS},
    "norm": _ROUNDED,
    "logits.column_ids": _EXACT_INT,
    "logits.columns": _ROUNDED,
    "logits.top_ids": _EXACT_INT,
    "logits.top_values": _ROUNDED,
    "next_token": _EXACT_INT,
}


def kind(name: str) -> str:
    """'layers.3.q_rotated' -> 'q_rotated'; 'logits.top_ids' stays whole."""
    return name if name.startswith("logits.") else name.rsplit(".", 1)[-1]


# --- comparison: the first tensor, in pipeline order, that went wrong ---

def first_divergence(golden: Mapping[str, np.ndarray], obtained: Mapping[str, np.ndarray]) -> str | None:
    """None if `obtained` matches `golden`; else one paragraph about the first tensor that does not.

    Names are compared in the golden's (pipeline) order, so the tensor named is where the
    computation first went wrong; every later one inherits the error and is only counted.
    """
    problems = [(name, _problem(name, golden[name], obtained.get(name))) for name in golden]
    extra = [name for name in obtained if name not in golden]
    bad = [(name, why) for name, why in problems if why]
    if not bad:
        return f"unexpected tensor {extra[0]} (not in the golden)" if extra else None
    name, why = bad[0]
    index = list(golden).index(name)
    later = len(bad) - 1
    return (f"{name}: {why}. The {index} tensors before it match; "
            f"{later} of the {len(golden) - index - 1} after it differ too.")


def _problem(name: str, golden: np.ndarray, obtained: np.ndarray | None, brief: bool = False) -> str | None:
    """What is wrong with `obtained` as `name`, or None; `brief`: no position, no tolerance."""
    if obtained is None:
        return "missing from the obtained trace"
    if obtained.dtype != golden.dtype:  # np.isclose would happily compare float64 with float32
        return f"dtype {obtained.dtype}, golden {golden.dtype}"
    if obtained.shape != golden.shape:
        return f"shape {list(obtained.shape)}, golden {list(golden.shape)}"
    if kind(name) not in GOLDEN_TOLERANCES:
        raise KeyError(f"{name}: no tolerance for tensors of kind {kind(name)!r}; add one to tolerances.GOLDEN_TOLERANCES")
    tol = GOLDEN_TOLERANCES[kind(name)]
    if not np.issubdtype(golden.dtype, np.floating):
        wrong = np.argwhere(obtained != golden)
        if not len(wrong):
            return None
        at = tuple(int(i) for i in wrong[0])
        return (f"{len(wrong)} of {golden.size} values differ, first at {list(at)}: "
                f"{obtained[at]} (golden {golden[at]})")
    e, o = golden.astype(np.float64), obtained.astype(np.float64)
    finite = np.isfinite(e) & np.isfinite(o)
    nonfinite_wrong = np.argwhere(~finite & ~((e == o) | (np.isnan(e) & np.isnan(o))))
    if len(nonfinite_wrong):
        at = tuple(int(i) for i in nonfinite_wrong[0])
        return (f"{len(nonfinite_wrong)} non-finite values differ, first at {list(at)}: "
                f"{o[at]:.6g} (golden {e[at]:.6g})")
    err = _abs_err(o, e)
    outside = err > tol.atol + tol.rtol * np.abs(np.where(finite, e, 0.0))
    if not outside.any():
        return None
    at = np.unravel_index(int(err.argmax()), err.shape)
    rel = err / np.where(finite & (e != 0), np.abs(e), np.inf)
    if brief:
        return f"max abs err {err[at]:.1e}, max rel err {rel.max():.1e} ({int(outside.sum())} of {e.size} values)"
    return (f"max abs err {err[at]:.1e} at {[int(i) for i in at]} (obtained {o[at]:.6g}, golden {e[at]:.6g}), "
            f"max rel err {rel.max():.1e}; {int(outside.sum())} of {e.size} values outside "
            f"atol {tol.atol:g} + rtol {tol.rtol:g}·|golden|")


def _abs_err(o: np.ndarray, e: np.ndarray) -> np.ndarray:
    """|o - e| where both are finite, 0 elsewhere (non-finite values are compared for identity)."""
    finite = np.isfinite(e) & np.isfinite(o)
    err = np.zeros(e.shape)
    err[finite] = np.abs(o[finite] - e[finite])
    return err


def changes(golden: Mapping[str, np.ndarray], obtained: Mapping[str, np.ndarray]) -> list[str]:
    """Every tensor that differs beyond tolerance, one line each: what regeneration prints."""
    lines = [f"{name}: removed" for name in golden if name not in obtained]
    for name in obtained:
        why = "new" if name not in golden else _problem(name, golden[name], obtained[name], brief=True)
        if why:
            lines.append(f"{name}: {why}")
    return lines
