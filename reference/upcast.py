"""How a bfloat16 weight meets a float32 activation: `linear`, without upcasting a whole matrix.

Weights stay as the checkpoint stores them (bf16, memory-mapped); the pass computes in float32.
The plain way, `x @ w.float().T`, writes a float32 copy of the whole matrix to memory only to
read it back: 235 MB for one [14336, 4096] matrix of the 8B, more time than the product itself.
`linear` upcasts slices of rows into one reused buffer that stays in the core's cache instead.
This is CPU tuning, so it lives here and not in `model.py`, which is meant to be read.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

# Bytes of one upcast slice in `linear`. For one or a few tokens the product is cheap and the
# slice should stay in the core's cache between the upcast that writes it and the product that
# reads it; for many tokens the product dominates and larger slices make it more efficient.
# (Measured on a 2-core AVX-512 Xeon: bench/bench.py and docs/performance.md.)
SLICE_BYTES_FEW_TOKENS = 1 << 20
SLICE_BYTES_MANY_TOKENS = 16 << 20
FEW_TOKENS = 4


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (x86 AVX512-BF16 or AMX; Linux only)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def linear(x: torch.Tensor, w: torch.Tensor, dtype: torch.dtype, device) -> torch.Tensor:
    """x @ wᵀ for a weight stored in another dtype (bf16), without upcasting all of it at once.

    The result is the same numbers as upcasting first: the upcast is exact and each output
    element is still one dot product over the whole input dimension.
    """
    on_cpu = torch.device(device).type == "cpu"
    if on_cpu and dtype == torch.bfloat16 and not cpu_has_native_bf16():
        # Without AVX512-BF16/AMX, PyTorch's bf16 matrix product is emulated and many times
        # slower than float32: multiply in float32 (exact products of bf16 values), round once.
        return linear(x.float(), w, torch.float32, device).to(torch.bfloat16)
    if w.dtype == dtype or not on_cpu:
        return x @ w.to(device=device).to(dtype).T
    n_out, n_in = w.shape
    slice_bytes = SLICE_BYTES_FEW_TOKENS if x.shape[0] <= FEW_TOKENS else SLICE_BYTES_MANY_TOKENS
    rows = max(16, min(n_out, slice_bytes // (n_in * torch.finfo(dtype).bits // 8)))
    x_t = x.T.contiguous()  # [in, T]
    out_t = torch.empty(n_out, x.shape[0], dtype=dtype, device=device)  # [out, T]: slices are contiguous
    buffer = torch.empty(rows, n_in, dtype=dtype, device=device)
    for start in range(0, n_out, rows):
        stop = min(start + rows, n_out)
        chunk = buffer[:stop - start]
        chunk.copy_(w[start:stop])
        torch.mm(chunk, x_t, out=out_t[start:stop])
    return out_t.T.contiguous()  # [T, out]
