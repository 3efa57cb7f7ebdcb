"""`python -m reference compare A.npz B.npz`: two traces of the same tokens, tensor by tensor.

For float32 against bfloat16, or two quantizations of one model: every tensor's error
(max |B − A| / max |A|, as `check` measures it), laid out by layer, and the first tensor in
pipeline order where the two part beyond a tolerance, by default the lower dtype's
(`difference.DTYPE_TOLERANCE`). `--plot` draws the error by layer, one line per step.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from .difference import DTYPE_TOLERANCE, as_float64, difference, recognise_dtype
from ..errors import InputError
from ..trace import FINAL_STEPS, LAYER_STEPS, STEPS, step
from .user_trace import read_trace_file


@dataclass(frozen=True)
class Comparison:
    errors: dict[str, float]  # trace name -> error of B against A (inf: another shape or non-finite values)
    dtypes: tuple[str, str]  # the dtypes recognised in A and B
    tolerance: float
    first_apart: str | None  # the first name, in pipeline order, whose error is beyond the tolerance


def pipeline_key(name: str, source: str = "the trace") -> tuple[int, int, int]:
    """A contract name's place in the pass: 'layers.2.q' -> (1, 2, 1)."""
    parts = name.split(".")
    if name in STEPS:
        return 0, 0, list(STEPS).index(name)
    if len(parts) == 3 and parts[0] == "layers" and parts[1].isdigit() and parts[2] in LAYER_STEPS:
        return 1, int(parts[1]), list(LAYER_STEPS).index(parts[2])
    if name in FINAL_STEPS:
        return 2, 0, list(FINAL_STEPS).index(name)
    raise InputError(f"{source}: {name}: not a name of the trace contract (TRACE.md)")


def compare_traces(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], tolerance: float | None = None,
                   sources: tuple[str, str] = ("A", "B")) -> Comparison:
    """Every tensor both traces hold, B against A, in pipeline order."""
    for trace, source in zip((a, b), sources):
        for name in trace:
            pipeline_key(name, source)
    common = sorted(set(a) & set(b), key=pipeline_key)
    if not common:
        raise InputError(f"{sources[0]} and {sources[1]} have no tensor name in common")
    if "tokens" in common and not np.array_equal(a["tokens"], b["tokens"]):
        raise InputError(f"{sources[0]} and {sources[1]} were made from different tokens "
                         f"({list(a['tokens'][:6])}… and {list(b['tokens'][:6])}…); compare traces of the same prompt")
    dtypes = (recognise_dtype(a)[0], recognise_dtype(b)[0])
    if tolerance is None:
        tolerance = max(DTYPE_TOLERANCE[d] for d in dtypes)
    errors = {}
    for name in common:
        x, y = as_float64(a[name]), as_float64(b[name])
        errors[name] = difference(y, x).error if x.shape == y.shape else math.inf
    first = next((n for n in common if errors[n] > tolerance), None)
    return Comparison(errors, dtypes, tolerance, first)


def by_layer(errors: Mapping[str, float]) -> dict[str, dict[int, float]]:
    """step -> {layer: error}, for the per-layer tensors."""
    table: dict[str, dict[int, float]] = {}
    for name, e in errors.items():
        if name.startswith("layers."):
            table.setdefault(step(name), {})[int(name.split(".")[1])] = e
    return table


def lines(c: Comparison, sources: tuple[str, str]) -> list[str]:
    """The report: the tensors outside the layers, a table of layer × step, where they part."""
    out = [f"B = {sources[1]} ({c.dtypes[1]}) against A = {sources[0]} ({c.dtypes[0]}): {len(c.errors)} tensors in "
           f"both; error = max |B − A| / max |A|; tolerance {c.tolerance:g}"]
    out += [f"  {name:<12} {_e(e)}" for name, e in c.errors.items() if not name.startswith("layers.")]
    table = by_layer(c.errors)
    if table:
        steps = [s for s in LAYER_STEPS if s in table]
        layers = sorted({i for row in table.values() for i in row})
        width = max(9, *(len(s) + 1 for s in steps))
        out.append("  layer " + "".join(f"{s:>{width}}" for s in steps))
        for i in layers:
            out.append(f"  {i:>5} " + "".join(f"{_e(table[s].get(i)):>{width}}" for s in steps))
    if c.first_apart:
        out.append(f"they first part beyond {c.tolerance:g} at {c.first_apart} (error {_e(c.errors[c.first_apart])})")
    else:
        out.append(f"every tensor agrees within {c.tolerance:g}")
    return out


def _e(e: float | None) -> str:
    return "" if e is None else "shape/inf" if math.isinf(e) else f"{e:.1e}"


def plot(c: Comparison, out: Path, sources: tuple[str, str]) -> Path:
    """Error by layer (log scale), one line per step, the tolerance dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import write_atomic

    fig, ax = plt.subplots(figsize=(9, 5))
    for s, row in by_layer(c.errors).items():
        layers = sorted(row)
        ax.plot(layers, [max(row[i], 1e-12) if math.isfinite(row[i]) else np.nan for i in layers], marker="o",
                markersize=3, label=s)
    ax.axhline(c.tolerance, color="black", linestyle="--", linewidth=1, label=f"tolerance {c.tolerance:g}")
    ax.set(yscale="log", xlabel="layer", ylabel="max |B − A| / max |A|",
           title=f"{Path(sources[1]).name} against {Path(sources[0]).name}")
    ax.legend(fontsize=7, ncol=2)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return write_atomic(out, buffer.getvalue())


def compare_files(a: str, b: str, tolerance: float | None = None, plot_to: str | None = None) -> int:
    """`compare A B`: print the comparison (and draw it to `plot_to`); 0 within the tolerance, 1 apart."""
    from ..files import check_out_dir

    out = check_out_dir(plot_to) if plot_to else None
    if out is not None and out.suffix != ".png":
        raise InputError(f"{out}: the plot is written as PNG; give a file name ending in .png")
    if tolerance is not None and not (tolerance > 0 and math.isfinite(tolerance)):
        raise InputError(f"--tolerance {tolerance}: expected a positive number")
    sources = (a, b)
    c = compare_traces(read_trace_file(a), read_trace_file(b), tolerance, sources)
    print("\n".join(lines(c, sources)))
    if out is not None:
        print(f"wrote {plot(c, out, sources)}")
    return 0 if c.first_apart is None else 1
