"""A quantized GGUF tensor's blocks expanded to float32 in torch, vectorised over blocks.

A quantized row is a run of blocks; each block holds a few float16 scales and small integers
q, one per weight, and says how they make the weight (`d·(q − 8)` for Q4_0). This file reads
the blocks of 32 weights (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1); `k_quants.py` the super-blocks of
256 (Q2_K … Q6_K). Each function takes `blocks` [n, bytes a block] (uint8) and fills `out`
[n, weights a block] (float32), and is bit-identical to `gguf.quants.dequantize`, llama.cpp's
own, which spells the same layouts in NumPy (tests/test_gguf_dequant.py holds them equal on
every type, edge scales included): the same float32 operations in the same order, so the
same roundings. The layouts are ggml-common.h's.

Why not `gguf.quants` itself: it runs on one core and allocates a few arrays a block, about
0.2 GB/s of float32 here; a pass reads a matrix a cache-sized slice of rows at a time
(upcast.linear), so the expansion has to keep up with reading the file. Integers are unpacked
as integers (uint8 wraps, so `q − 8` is a byte that reads as int8), and each block becomes
float32 in two passes: convert, then scale.
"""

from __future__ import annotations

import torch


def f16(blocks: torch.Tensor, at: int) -> torch.Tensor:
    """The float16 at byte `at` of every block, as float32 [n, 1]."""
    return blocks[:, at:at + 2].view(torch.float16).float()  # [n, 1]


def nibbles(packed: torch.Tensor) -> torch.Tensor:
    """Bytes [..., k] → their low 4 bits then their high 4 bits [..., 2k], as ggml packs 4-bit q.

    Example: bytes [0x21, 0x43] → [1, 3, 2, 4]. The bytes are read four (or two) at a time as
    int32 (int16) where the layout allows: the same bits, a quarter of the elements to visit."""
    wide = widest(packed)
    mask = {torch.int32: 0x0F0F0F0F, torch.int16: 0x0F0F, torch.uint8: 0x0F}[wide.dtype]
    out = torch.empty(*packed.shape[:-1], 2, packed.shape[-1], dtype=torch.uint8, device=packed.device)
    halves = out.view(wide.dtype)  # [..., 2, k / width]
    torch.bitwise_and(wide, mask, out=halves[..., 0, :])
    torch.bitwise_right_shift(wide, 4, out=halves[..., 1, :])  # an arithmetic shift: the mask clears what came in
    halves[..., 1, :].bitwise_and_(mask)
    return out.view(*packed.shape[:-1], 2 * packed.shape[-1])  # [..., 2k]


def widest(packed: torch.Tensor) -> torch.Tensor:
    """`packed` (uint8) viewed as int32, else int16, else as it is: whichever its strides allow."""
    for dtype, size in ((torch.int32, 4), (torch.int16, 2)):
        if packed.shape[-1] % size == 0 and all(s % size == 0 for s in packed.stride()[:-1]) \
                and packed.storage_offset() % size == 0:
            return packed.view(dtype)
    return packed


def bits(packed: torch.Tensor, shifts: torch.Tensor, mask: int) -> torch.Tensor:
    """(packed >> s) & mask for each shift s, stacked before the last axis: [..., k] → [..., len(shifts), k]."""
    return torch.bitwise_right_shift(packed.unsqueeze(-2), shifts.view(-1, 1)).bitwise_and_(mask)


def signed(q: torch.Tensor, offset: int) -> torch.Tensor:
    """q − offset (uint8, in place) read as int8: 0 … 15 minus 8 is −8 … 7, as ggml's int8 arithmetic gives."""
    return q.sub_(offset).view(torch.int8)


SHIFT8 = torch.arange(8, dtype=torch.uint8)  # bit i of a byte, for the fifth bit of Q5_*


def high_bits(qh: torch.Tensor) -> torch.Tensor:
    """Q5_0/Q5_1: the 32 bits of qh (little-endian uint32) as the fifth bit of q, ·16: [n, 4] → [n, 32]."""
    return bits(qh, SHIFT8.to(qh.device), 1).transpose(-1, -2).reshape(len(qh), 32).bitwise_left_shift_(4)


def q8_0(blocks: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Q8_0, 34 bytes: d (f16), 32 int8 q. weight = q·d."""
    out.copy_(blocks[:, 2:].view(torch.int8))
    return out.mul_(f16(blocks, 0))


def q4_0(blocks: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Q4_0, 18 bytes: d (f16), 16 bytes of 4-bit q (low nibbles: weights 0-15, high: 16-31). weight = d·(q − 8)."""
    out.copy_(signed(nibbles(blocks[:, 2:]), 8))
    return out.mul_(f16(blocks, 0))


def q4_1(blocks: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Q4_1, 20 bytes: d, m (f16), 16 bytes of 4-bit q as Q4_0's. weight = d·q + m."""
    out.copy_(nibbles(blocks[:, 4:]))
    return out.mul_(f16(blocks, 0)).add_(f16(blocks, 2))


def q5_0(blocks: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Q5_0, 22 bytes: d (f16), qh (32 bits: the fifth bit of weight j is bit j), 16 bytes of low
    nibbles as Q4_0's. weight = d·(q − 16)."""
    q = nibbles(blocks[:, 6:]).bitwise_or_(high_bits(blocks[:, 2:6]))
    out.copy_(signed(q, 16))
    return out.mul_(f16(blocks, 0))


def q5_1(blocks: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Q5_1, 24 bytes: d, m (f16), qh, 16 bytes of low nibbles, as Q5_0's. weight = d·q + m."""
    out.copy_(nibbles(blocks[:, 8:]).bitwise_or_(high_bits(blocks[:, 4:8])))
    return out.mul_(f16(blocks, 0)).add_(f16(blocks, 2))


# type -> (weights a block, bytes a block, the function), as ggml's GGML_QUANT_SIZES says
BLOCKS_OF_32 = {"Q8_0": (32, 34, q8_0), "Q4_0": (32, 18, q4_0), "Q4_1": (32, 20, q4_1), "Q5_0": (32, 22, q5_0),
                "Q5_1": (32, 24, q5_1)}
