"""What expanding a GGUF's blocks to float32 costs, per type, against llama.cpp's own NumPy and
against reading the blocks' bytes (bench/gguf_types.py puts the table on the page).

    python bench/gguf_expand.py        # the table alone

Three ways are timed on 16 Mi weights [4096 × 4096] of each type: the literal expansion of a
whole tensor (formats/gguf/blocks.py, k_quants.py), the product's way (stored_rows.py: the slices
of rows `upcast.linear` expands, on one core and on every core), and `gguf.quants.dequantize`.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from harness import read_bandwidth, timed

TYPES = ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")


def blocks_of(qtype: str, rows: int, cols: int = 4096) -> torch.Tensor:
    """[rows, bytes a row] of `qtype` blocks: gguf-quantized (Q4_K: quantize.py) normal weights, or for the
    K-quants gguf cannot write, random bytes with the float16 scales of such weights (no subnormals)."""
    import gguf
    from gguf.quants import quantize

    from quantize import q4_k
    from reference.formats.gguf.quantized import EXPAND

    weights = np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32) * np.float32(0.02)
    if qtype == "Q4_K":
        return torch.from_numpy(q4_k(weights))
    size, nbytes, _ = EXPAND[qtype]
    if qtype in ("Q2_K", "Q3_K", "Q5_K", "Q6_K"):
        raw = np.random.default_rng(1).integers(0, 256, (rows, cols // size, nbytes), dtype=np.uint8)
        for at in {"Q2_K": (80, 82), "Q3_K": (108,), "Q5_K": (0, 2), "Q6_K": (208,)}[qtype]:
            raw[:, :, at:at + 2] = np.array([1e-3], np.float16).view(np.uint8)
        return torch.from_numpy(raw.reshape(rows, -1))
    return torch.from_numpy(quantize(weights, gguf.GGMLQuantizationType[qtype]))


def expansion_rows(repeats: int) -> list[str]:
    """One line per type: float32 GB/s expanded (literal, the product's slices on 1 and all cores, gguf's)."""
    from gguf.constants import GGMLQuantizationType
    from gguf.quants import dequantize as gguf_dequantize

    from reference import upcast
    from reference.formats.gguf.quantized import Quantized, dequantize

    read = read_bandwidth("cpu", repeats)
    lines = []
    for qtype in TYPES:
        raw = blocks_of(qtype, rows=4096)  # 16 Mi weights
        n, f32 = raw.shape[0], raw.shape[0] * 4096 * 4
        w = Quantized(raw, qtype, (n, 4096))
        rows = upcast.SLICE_BYTES_BLOCKS // (4096 * 4)

        def slices() -> None:  # as upcast.linear expands them for one token, without the products
            stored, buffer = w.stored_rows(torch.zeros(1, 4096)), torch.empty(rows, 4096)
            for first in range(0, n, rows):
                stored.fill(first, min(first + rows, n), buffer[:min(rows, n - first)])

        times = {"literal": best(lambda: dequantize(raw, qtype), repeats),
                 "one core": one_thread(lambda: best(slices, repeats)), "all cores": best(slices, repeats),
                 "gguf": best(lambda: gguf_dequantize(raw[:256].numpy(), GGMLQuantizationType[qtype]), 1) * n / 256}
        bits = raw.shape[1] * 8 / 4096
        lines.append(f"| {qtype} | {bits:.2f} | " + " | ".join(f"{f32 / t / 1e9:.1f}" for t in times.values())
                     + f" | {read * 32 / bits / 1e9:.0f} |")
    return lines


def one_thread(fn):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def best(fn, repeats: int) -> float:
    """The fastest of `repeats` calls, after a warm-up (harness.timed)."""
    return timed(fn, repeats)[0]


def table(repeats: int) -> list[str]:
    return ["| type | bits a weight | literal | slices, one core | slices, all cores | gguf.quants | "
            "reading the bytes |", "|---|---|---|---|---|---|---|", *expansion_rows(repeats)]


if __name__ == "__main__":
    print("\n".join(table(int(sys.argv[1]) if len(sys.argv) > 1 else 3)))
