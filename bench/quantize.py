"""One matrix in the bytes of a GGUF type, for the benchmark's GGUF files (harness.gguf_file).

gguf's writer quantizes Q8_0 and Q4_0 (gguf.quants.quantize, llama.cpp's rounding) but no
K-quant, so Q4_K is quantized here: each super-block of 256 weights is 8 sub-blocks of 32,
each with a 6-bit scale and a 6-bit minimum under the super-block's float16 `d` and `dmin`
(ggml-common.h's block_q4_K), chosen the plain way: scale = (max − min) / 15 per sub-block,
no search. llama.cpp's quantizer searches for slightly better scales; the layout, the bytes a
pass reads and the work to expand them are the same. BF16 and F16 are the bits themselves.

Everything goes a few thousand rows at a time, so an 8B-shaped output matrix (2 GiB in float32)
is never held in float32 whole.
"""

from __future__ import annotations

import numpy as np
import torch

ROWS_AT_ONCE = 2048
QK_K = 256


def encoded(tensor: torch.Tensor, qtype: str) -> tuple[np.ndarray, object]:
    """(the array to hand gguf's writer, its raw_dtype) for a 2-D `tensor` stored as `qtype`."""
    import gguf
    from gguf.quants import quantize

    kind = gguf.GGMLQuantizationType[qtype]
    if qtype == "BF16" and tensor.dtype == torch.bfloat16:
        return tensor.contiguous().view(torch.int16).numpy().view(np.uint8), kind  # the same bits
    if qtype == "F16":
        return tensor.to(torch.float16).numpy(), None  # gguf's writer types a float16 array F16
    parts = []
    for start in range(0, tensor.shape[0], ROWS_AT_ONCE):
        rows = tensor[start:start + ROWS_AT_ONCE].float().numpy()
        parts.append(q4_k(rows) if qtype == "Q4_K" else quantize(rows, kind))
    return np.concatenate(parts), kind


def q4_k(x: np.ndarray) -> np.ndarray:
    """float32 rows [R, C] (C a multiple of 256) → their Q4_K blocks [R, C / 256 · 144] uint8."""
    rows = x.shape[0]
    sub = x.reshape(-1, 8, 32).astype(np.float32)  # [n, 8, 32]: super-blocks of 8 sub-blocks
    low = np.minimum(sub.min(-1), 0)  # [n, 8]: a sub-block's minimum, or 0
    scale = (sub.max(-1) - low) / 15
    d = (scale.max(-1) / 63).astype(np.float16)  # [n]
    dmin = (-low.min(-1) / 63).astype(np.float16)
    sc = _six_bits(scale, d)
    mn = _six_bits(-low, dmin)
    step = d.astype(np.float32)[:, None] * sc  # the scale and minimum a pass will use
    floor = dmin.astype(np.float32)[:, None] * mn
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(step[..., None] > 0, np.rint((sub + floor[..., None]) / step[..., None]), 0)
    q = np.clip(q, 0, 15).astype(np.uint8)  # [n, 8, 32]
    qs = (q[:, 0::2] | (q[:, 1::2] << 4)).reshape(-1, 128)  # sub-blocks 2g (low nibble) and 2g+1 (high)
    packed = np.empty((len(sub), 12), np.uint8)  # ggml's get_scale_min_k4, the other way
    packed[:, 0:4] = sc[:, :4] | ((sc[:, 4:] >> 4) << 6)
    packed[:, 4:8] = mn[:, :4] | ((mn[:, 4:] >> 4) << 6)
    packed[:, 8:12] = (sc[:, 4:] & 0xF) | ((mn[:, 4:] & 0xF) << 4)
    head = np.stack([d, dmin], axis=-1).view(np.uint8)  # [n, 4]
    return np.concatenate([head, packed, qs], axis=-1).reshape(rows, -1)


def _six_bits(value: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """round(value / unit) in 0 … 63 per sub-block [n, 8], 0 where the unit is 0."""
    unit = unit.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(np.where(unit > 0, np.rint(value / unit), 0), 0, 63).astype(np.uint8)
