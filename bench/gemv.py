"""The benchmark's section on one token's bf16 product: what stands between bf16 decode and the bound.

A bf16 decode step is, in time, nothing but one-row products (the profile on the page), so how
fast it can go is how fast a one-row product reads its weight. This measures that rate on the
8B's four matrix shapes, at one thread and at all of them, for reading alone (`torch.sum`,
the most any product that reads each weight once could reach), the product eager PyTorch runs
(oneDNN's, which transformers runs too), oneDNN with the weight prepacked in its own blocked
layout, and the compiled product. Each thread count runs in a process of its own: PyTorch's
thread count is one setting for the whole process. bench.py calls `section`.

    python bench/gemv.py              # the table alone, printed
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import torch

from reference import upcast
from reference.errors import InputError

from harness import child, timed

SHAPES = ((4096, 4096), (1024, 4096), (14336, 4096), (4096, 14336))  # wq/wo, wk/wv, w1/w3, w2
ROWS = {"read": "reading alone: `torch.sum` over as many bytes",
        "onednn": "eager `x @ w.T` (oneDNN; transformers runs the same)",
        "prepacked": "oneDNN, weight prepacked in its blocked layout",
        "compiled": "compiled `(w.float() * x).sum(-1)` (`LLAMA3_REFERENCE_COMPILE=1`)"}


def rates(repeats: int) -> dict:
    """{row: (best, median) GB/s} over one product with each of SHAPES, in this process (and
    "compiled_skipped": why, where torch.compile could not build the compiled product)."""
    g = torch.Generator().manual_seed(0)
    ws = [torch.randn(s, generator=g).bfloat16() for s in SHAPES]
    xs = [torch.randn(1, s[1], generator=g).bfloat16() for s in SHAPES]
    n_bytes = weight_bytes()
    flat = torch.ones(n_bytes // 4)  # as many bytes as the four weights, float32
    sides = {"read": lambda: [flat.sum()],
             "onednn": lambda: [x @ w.T for w, x in zip(ws, xs)]}
    reorder = getattr(torch.ops.mkldnn, "_reorder_linear_weight", None)
    if reorder is not None:
        packed = [reorder(w, 1) for w in ws]  # oneDNN's own layout for a batch of one row
        sides["prepacked"] = lambda: [torch.ops.mkldnn._linear_pointwise(x, p, None, "none", [], "")
                                      for p, x in zip(packed, xs)]
    xf = [x[0].float() for x in xs]
    sides["compiled"] = lambda: [upcast.compiled_product(w, x) for w, x in zip(ws, xf)]
    out = {}
    try:
        sides["compiled"]()  # compiles here (or loads inductor's cached kernels), untimed
    except InputError as e:  # no working C++ compiler: the page says so under the table
        out["compiled_skipped"] = str(e)
        del sides["compiled"]
    for name, run in sides.items():
        fastest, median = timed(run, repeats)
        out[name] = (n_bytes / fastest / 1e9, n_bytes / median / 1e9)
    return out


def onednn_kernel() -> str:
    """oneDNN's own name for the kernel it picks for one row times a [14336, 4096] bf16 weight,
    and the weight's layout, from its verbose log (ONEDNN_VERBOSE=1) in a fresh process."""
    code = ("import torch; w = torch.randn(14336, 4096).bfloat16(); x = torch.randn(1, 4096).bfloat16(); "
            "[x @ w.T for _ in range(2)]")
    log = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "ONEDNN_VERBOSE": "1"}).stdout
    for line in log.splitlines():
        m = re.search(r"primitive,exec,cpu,matmul,([^,]+),.*wei:bf16::blocked:(\w+)", line)
        if m:
            return f"`{m.group(1)}`, weight layout `{m.group(2)}`"
    return "not reported (oneDNN's verbose log had no matmul line)"


def section(repeats: int) -> list[str]:
    """The page's lines: GB/s per row at one thread and at all of them, each in a fresh process."""
    threads = sorted({1, torch.get_num_threads()})
    by_threads = {n: json.loads(child(__file__, "_rates", n, repeats)) for n in threads}
    lines = ["## One token's bf16 product", "",
             "A bf16 decode step is all one-row products, so this is its ceiling: GB/s of weight read by one "
             f"row times each of the 8B's four matrix shapes (wq, wk, w1, w2; {weight_bytes() / 1e6:.0f} MB in all), "
             "best / median "
             f"of {repeats}, one process per thread count. oneDNN's kernel for it: {onednn_kernel()}.", "",
             "| | " + " | ".join(f"{n} thread{'s' * (n > 1)}" for n in threads) + " |",
             "|---|" + "---|" * len(threads)]
    for name, label in ROWS.items():
        cells = [f"{by_threads[n][name][0]:.1f} / {by_threads[n][name][1]:.1f}" if name in by_threads[n] else "—"
                 for n in threads]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    skipped = {by_threads[n].get("compiled_skipped") for n in threads} - {None}
    lines += [f"The compiled row is empty: {why}" for why in skipped] + ([""] if skipped else [])
    return lines


def weight_bytes() -> int:
    return sum(rows * cols * 2 for rows, cols in SHAPES)  # bf16


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_rates":
        torch.set_num_threads(int(sys.argv[2]))
        print(json.dumps(rates(int(sys.argv[3]))))
    else:
        print("\n".join(section(int(sys.argv[1]) if len(sys.argv) > 1 else 5)))
