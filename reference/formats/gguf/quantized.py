"""A quantized GGUF tensor as torch sees it: its blocks, memory-mapped, standing in for the
float32 matrix they expand to, which is never held whole unless a caller asks for it whole.

`GGUFWeights` hands out a `Quantized` for every Q8_0 … Q6_K tensor. It has the float32 shape
and dtype, so the pass reads it like any weight, and it holds no values: each use expands
what it needs, with the torch dequantizers of `blocks.py` and `k_quants.py`:

- `stored_rows(x)` and `spread(x)`, for `upcast.linear`: one cache-sized slice of rows at a
  time, right before that slice's product, as it upcasts a bf16 matrix, in the order the
  bytes lie (`stored_rows.py`, the fast path): a decode step of the 8B reads the file's
  blocks and never holds a float32 matrix.
- `w[rows]` (a slice of rows, or token ids as `model.embed` looks them up): those rows alone.
- anything else (`get_weight`'s `.to(dtype)`, `.view`, `.T`, `torch.equal`, …): the whole
  tensor expanded (`expanded`), then the operation on it, as the literal path upcasts a bf16
  matrix whole.

Nothing is written to disk and no weight is kept: the file is the only copy, so a file replaced
in place gives its new values at the next load. Two things are kept in RAM: a Q4_K or Q5_K
matrix's scales, unpacked at its first product (20 bytes a super-block of 256 weights:
`stored_rows.unpacked_scales`), and, by `upcast.resident`, a whole model expanded when its
float32 weights fit the memory budget (SmolLM2-135M's 0.5 GiB).
"""

from __future__ import annotations

import math

import torch
from torch.utils._pytree import tree_map

from .stored_rows import EXPAND, KEPT, StoredRows, spread, unpacked_scales  # EXPAND: type -> (size, bytes, expansion)


WEIGHTS_AT_ONCE = 1 << 22  # the literal expansion's own scratch (nibbles, scales) is for this many weights at most


def dequantize(blocks: torch.Tensor, qtype: str, out: torch.Tensor | None = None) -> torch.Tensor:
    """Rows of a quantized tensor [rows, bytes a row] (uint8) → their weights [rows, columns] float32, into `out`.

    Example: one Q8_0 row of one block, d = 0.5 and q = 0, 1, …, 31 → [[0.0, 0.5, 1.0, …, 15.5]]."""
    size, nbytes, expand = EXPAND[qtype]
    rows, columns = blocks.shape[0], blocks.shape[1] // nbytes * size
    if out is None:
        out = torch.empty(rows, columns, dtype=torch.float32, device=blocks.device)
    step = max(1, WEIGHTS_AT_ONCE // max(columns, 1))  # a few rows at a time: the 8B's w1 is 235 MB expanded
    for start in range(0, rows, step):
        expand(blocks[start:start + step].reshape(-1, nbytes), out[start:start + step].view(-1, size))  # blocks → weights
    return out


class Quantized(torch.Tensor):
    """A quantized tensor's blocks [rows, bytes a row] (uint8), seen as its float32 values of `shape`."""

    @staticmethod
    def __new__(cls, blocks: torch.Tensor, qtype: str, shape: tuple[int, ...]):
        return torch.Tensor._make_wrapper_subclass(cls, shape, dtype=torch.float32, device=blocks.device)

    def __init__(self, blocks: torch.Tensor, qtype: str, shape: tuple[int, ...]):
        self.blocks, self.qtype = blocks, qtype  # [rows, bytes a row]: rows = every axis but the last
        self.unpacked = None  # Q4_K/Q5_K: the scales unpacked at the first product, kept (stored_rows.KEPT)
        assert blocks.shape[0] == math.prod(shape[:-1]), (blocks.shape, shape)

    # --- for a product (upcast.linear): rows in the order their bytes lie, x spread to match ---

    def spread(self, x: torch.Tensor) -> torch.Tensor:
        """x [T, columns] → [columns, T], its columns in the stored order of the rows (stored_rows.py)."""
        return spread(x, self.qtype)

    def stored_rows(self, x: torch.Tensor) -> StoredRows:
        """For one product with x [T, columns]: `.fill(start, stop, out)` expands rows start … stop-1
        in stored order, `.finish(start, stop, y)` completes their product y with spread(x)."""
        if self.qtype in KEPT and self.unpacked is None:
            self.unpacked = unpacked_scales(self.blocks, self.qtype)
        return StoredRows(self.blocks, self.qtype, x, self.unpacked)

    # --- for anything else: the weights in their own order ---

    def expanded(self) -> torch.Tensor:
        """Every value, float32, in a tensor of its own (4 bytes a weight: 235 MB for one of the 8B's w1)."""
        return dequantize(self.blocks, self.qtype).view(self.shape)

    def __repr__(self) -> str:
        return f"Quantized({self.qtype}, shape={list(self.shape)})"

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in DESCRIBING or getattr(func, "__name__", "") == "__get__":  # shape, dtype, numel, …: no values
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **kwargs)
        if func is torch.Tensor.__getitem__ and len(args) == 2 and not kwargs:
            rows = _rows(args[0], args[1])
            if rows is not None:
                return rows
        return func(*tree_map(_values, args), **tree_map(_values, kwargs))

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        # An operation that reached torch's dispatcher without passing __torch_function__ (from C++).
        return func(*tree_map(_values, args), **tree_map(_values, kwargs or {}))


DESCRIBING = {torch.Tensor.size, torch.Tensor.dim, torch.Tensor.numel, torch.Tensor.nelement,
              torch.Tensor.element_size, torch.Tensor.is_contiguous, torch.Tensor.stride, torch.Tensor.__len__,
              torch.Tensor.is_floating_point, torch.Tensor.is_complex}


def _values(x):
    return x.expanded() if isinstance(x, Quantized) else x


def _rows(w: Quantized, index) -> torch.Tensor | None:
    """`w[index]` for the indices that pick whole rows of a matrix (a slice of rows, an int, token ids), expanding
    those rows alone; None for any other index."""
    if w.dim() != 2:
        return None
    if isinstance(index, slice) and index.step in (None, 1):
        start, stop, _ = index.indices(w.shape[0])
        return dequantize(w.blocks[start:max(start, stop)], w.qtype)  # [stop - start, columns]
    if isinstance(index, int) and not isinstance(index, bool):
        return dequantize(w.blocks[index:index + 1 or None], w.qtype)[0]
    if isinstance(index, torch.Tensor) and index.dtype in (torch.int64, torch.int32) and index.dim() == 1:
        return dequantize(w.blocks[index.to(w.blocks.device)], w.qtype)  # [T, columns]: the rows looked up
    return None
