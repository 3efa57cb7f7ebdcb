"""How a bfloat16 weight meets a float32 activation: `linear`, without upcasting a whole matrix.

Weights stay as the checkpoint stores them (bf16, or a GGUF's quantized blocks, memory-mapped);
the pass computes in float32.
The plain way, `x @ w.float().T`, writes a float32 copy of the whole matrix to memory only to
read it back: 235 MB for one [14336, 4096] matrix of the 8B, more time than the product itself.
`linear` upcasts slices of rows into one reused buffer that stays in the core's cache instead;
a GGUF's quantized matrix (formats/gguf/quantized.py) is expanded into that buffer from its blocks
the same way. This is CPU tuning, so it lives here and not in `model.py`, which is meant to be read.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

from .errors import InputError, shown

# Bytes of one upcast slice in `linear`. For up to a few dozen tokens the product is cheap and
# the slice should stay in the cores' caches between the upcast that writes it and the product
# that reads it; for many tokens the product dominates and larger slices make it more efficient.
# Measured (bench/bench.py, docs/performance.md) on a 2-core AMD EPYC (1 MiB L2 a core, 32 MiB
# L3): 4 MiB slices upcast one token's [14336, 4096] product in 8.5 ms, against 14.3 ms for
# float32 weights held in RAM and 18.8 ms with 1 MiB slices; at 512 tokens 16 MiB slices win.
# (A 2-core Intel Xeon with AVX-512 preferred 1 MiB for a few tokens.)
SLICE_BYTES_FEW_TOKENS = 4 << 20
SLICE_BYTES_MANY_TOKENS = 16 << 20
FEW_TOKENS = 64


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
    blocks = in_blocks(w)
    if on_cpu and dtype == torch.bfloat16 and not cpu_has_native_bf16():
        # Without AVX512-BF16/AMX, PyTorch's bf16 matrix product is emulated and many times
        # slower than float32: multiply in float32 (exact products of bf16 values), round once.
        return linear(x.float(), w, torch.float32, device).to(torch.bfloat16)
    if on_cpu and x.shape[0] == 1 and w.dtype == dtype == torch.float32 and w.is_contiguous() and not blocks:
        return one_row(x, w)
    one_bf16_row = on_cpu and x.shape[0] == 1 and w.dtype == torch.bfloat16 and dtype != torch.float64
    if one_bf16_row and compiled_gemv_wanted():
        return compiled_product(w, x[0].float())[None].to(dtype)  # [1, out]: float32 sums, rounded once
    if (w.dtype == dtype and not blocks) or not on_cpu:
        return x @ w.to(device=device).to(dtype).T
    n_out, n_in = w.shape
    slice_bytes = SLICE_BYTES_FEW_TOKENS if x.shape[0] <= FEW_TOKENS else SLICE_BYTES_MANY_TOKENS
    fill = lambda start, stop, chunk: chunk.copy_(w[start:stop])  # noqa: E731 (rows start … stop-1, upcast)
    finish = lambda start, stop, y: y  # noqa: E731
    if blocks:  # a quantized row comes out in the order its bytes lie, and x's columns are put in that order
        rows_of = w.stored_rows(x)
        fill, finish, x = rows_of.fill, rows_of.finish, w.spread(x).T  # x: [T, in]
        slice_bytes = SLICE_BYTES_BLOCKS if x.shape[0] <= FEW_TOKENS else slice_bytes
    rows = max(16, min(n_out, slice_bytes // (n_in * torch.finfo(dtype).bits // 8)))
    buffer = torch.empty(rows, n_in, dtype=dtype, device=device)
    if x.shape[0] > FEW_TOKENS:
        # Each slice's product goes straight into its block of columns of the [T, out] result:
        # a matrix with row stride n_out, which BLAS writes in place, so no [T, out] copy is made
        # (at 2,048 tokens that copy cost as much as a tenth of the products).
        out = torch.empty(x.shape[0], n_out, dtype=dtype, device=device)  # [T, out]
        for start in range(0, n_out, rows):
            chunk = buffer[:min(rows, n_out - start)]
            fill(start, start + len(chunk), chunk)
            torch.mm(x, chunk.T, out=out[:, start:start + rows])
            finish(start, start + len(chunk), out[:, start:start + rows].T)
        return out
    # For a few tokens, slice rows times x is the faster product, and transposing the small result is cheap.
    x_t = x.T.contiguous()  # [in, T] (a spread x is so already)
    out_t = torch.empty(n_out, x.shape[0], dtype=dtype, device=device)  # [out, T]: slices are contiguous
    # one token: a matrix-vector product (see `one_row`); a quantized slice's is MKL's own (SLICE_BYTES_BLOCKS)
    product = per_core if x.shape[0] == 1 and not blocks else torch.mm
    for start in range(0, n_out, rows):
        stop = min(start + rows, n_out)
        chunk = buffer[:stop - start]
        fill(start, stop, chunk)
        product(chunk, x_t, out=out_t[start:stop])
        finish(start, stop, out_t[start:stop])
    return out_t.T.contiguous()  # [T, out]


def in_blocks(w: torch.Tensor) -> bool:
    """Whether `w` is a GGUF's quantized tensor (formats/gguf/quantized.py): blocks that expand where used,
    a slice of rows at a time in the order their bytes lie (`stored_rows`, `spread`)."""
    return hasattr(w, "stored_rows")


# A quantized slice is expanded in several passes (the packed integers copied out of their
# blocks, split into nibbles, converted, scaled), where a bf16 slice takes one; each pass
# reads and writes the slice, so it should stay in the cores' caches between them, while each
# pass also costs a fork and a join of the cores, which larger slices pay less often. Measured
# on the 2-core Intel Xeon (one token through the 8B-shaped GGUFs' output, w2 and w1 matrices):
# 2 MiB slices 186 ms for Q8_0, 272 for Q4_0, 324 for Q4_K; 1 MiB 207, 300, 359; 4 MiB 204,
# 282, 340; 8 MiB 232, 299, 360. (One block of rows per core, each in a thread of its own with
# single-threaded operations, as `per_core` does for the product, was slower on an idle machine:
# Python's lock changes hands at each of a slice's dozen operations.) A slice's one-token product
# is MKL's matrix-vector product, not `per_core`: here MKL's took 20 µs for [128, 4096] rows where
# the batched product took 82, and 20 against 120 for w2's [36, 14336] slices. (bf16 slices keep
# `per_core`, as measured on the AMD EPYC.)
SLICE_BYTES_BLOCKS = 2 << 20


# --- one token, one matrix-vector product per core ---
#
# A decode step multiplies one row by each matrix: a matrix-vector product, which MKL runs on
# one core. On this 2-core AMD EPYC it reads float32 weights at 8-11 GB/s, where a plain sum
# over the same bytes reads at 23. Cut into n = torch.get_num_threads() blocks of rows, the
# same product is a batch of n independent ones, and the batched product gives each core its
# own: SmolLM2's 30 layers took 15.5 ms a token instead of 41-55 (bench/bench.py).
SPLIT_BYTES = 256 << 10  # below this one core is done before a second would have started


def one_row(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x [1, in] @ wᵀ for a contiguous w, one block of w's rows per core."""
    return per_core(w, x.T).T  # [out, 1] → [1, out]


def per_core(w: torch.Tensor, x_t: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """w [out, in] @ x_t [in, 1] as n products of n blocks of w's rows; into `out` if given."""
    n = torch.get_num_threads()
    if n == 1 or w.shape[0] % n or w.numel() * w.element_size() < SPLIT_BYTES:
        return torch.mm(w, x_t, out=out)  # [out, 1]
    blocks = w.view(n, w.shape[0] // n, w.shape[1])  # [n, out/n, in]: a view, nothing copied
    # The column with strides (1, in), as x [1, in] transposed has them: bmm takes a column with
    # strides (1, 1) (what x_t.contiguous() and a transposed [1, out] result have) through a plain
    # loop that adds one term after another, 3-8× slower and with a running sum's rounding.
    column = x_t.reshape(-1).unsqueeze(0).T  # [in, 1]
    result = torch.bmm(blocks, column.expand(n, *column.shape), out=None if out is None else out.view(n, -1, 1))
    return result.view(w.shape[0], 1)  # [n, out/n, 1] → [out, 1]


# --- one token, compiled: the upcast fused into the product ---
#
# Decoding one token in float32 from bf16 weights is a matrix-vector product that should cost
# reading the bf16 bytes once. Eager PyTorch cannot fuse the upcast into the product: `linear`
# above writes each slice as float32 and reads it back (about a thousand copies a token for
# the 8B), and where the cache is small that loses to transformers' float32 weights in RAM. torch.compile
# writes one loop that reads bf16, upcasts in registers and sums, so a token reads half the
# bytes transformers reads. (A bf16 pass uses it too: float32 sums, rounded once, as the bf16
# product does.) Compiling costs ~17 s the first time for the 8B's shapes (one kernel per weight
# shape; inductor caches them on disk, 3-4 s after), so it is opt-in: LLAMA3_REFERENCE_COMPILE=1.

def compiled_gemv_wanted() -> bool:
    return os.environ.get("LLAMA3_REFERENCE_COMPILE") == "1"


def compiled_product(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`compiled_gemv()(w, x)`; a compiler that cannot build it (inductor needs a working C++
    compiler) is the user's setup, said in one line that names the switch, not a traceback."""
    from torch._dynamo.exc import BackendCompilerFailed  # InductorError is one
    try:
        return compiled_gemv()(w, x)
    except BackendCompilerFailed as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"LLAMA3_REFERENCE_COMPILE=1: torch.compile could not build the one-token product "
                         f"({shown(first, 400)}); install a C++ compiler (g++ or clang), or unset "
                         "LLAMA3_REFERENCE_COMPILE to decode without compiling") from None


@functools.cache
def compiled_gemv():
    """w [out, in] (bf16) · x [in] (float32) → [out] float32, upcast and product in one loop."""
    return torch.compile(lambda w, x: (w.float() * x).sum(-1), dynamic=False)


# The 8B's tricks (bf16 kept on disk, upcast a slice at a time) save memory at a cost of time on
# every token. A model whose upcast weights fit this budget is upcast once instead: SmolLM2-135M
# is 0.5 GiB in float32, the built-in `tiny` 0.13 GiB, Llama 3 8B 30 GiB (never resident).
RESIDENT_BYTES = 1 << 30


def resident(weights, dtype: torch.dtype, device="cpu", budget: int = RESIDENT_BYTES):
    """`weights` in `dtype` on `device` once and for all, contiguous (as `one_row` needs), in RAM
    when that fits `budget` bytes; otherwise `weights` itself, upcast per product as before.
    Weights already so (float32 in RAM) are used as they are; a GGUF's quantized tensors are
    expanded (SmolLM2-135M: 0.5 GiB) or, past the budget, left in their blocks (an 8B: 30 GiB).
    The numbers are the same either way: an upcast is exact, once or at every product."""
    # A Meta checkpoint's `meta` holds its shapes and dtypes without merging shards; a GGUF's
    # tensors read nothing until used, so sizing the model expands nothing either.
    described = getattr(weights, "meta", weights)
    on_cpu = torch.device(device).type == "cpu"
    if on_cpu and all(w.dtype == dtype and w.is_contiguous() and not in_blocks(w) for w in described.values()):
        return weights  # resident already
    if sum(w.numel() for w in described.values()) * torch.finfo(dtype).bits // 8 > budget:
        return weights

    def values(w):  # one tensor's values: a quantized one expanded to float32 (exact), then cast
        return (w.expanded() if in_blocks(w) else w).to(device=device, dtype=dtype)

    return {name: values(weights[name]).contiguous() for name in described}
