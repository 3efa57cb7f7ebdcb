"""A slice of a quantized matrix's rows expanded for a product: the fast path beside blocks.py
and k_quants.py, which expand weight by weight into the matrix's own column order.

Where the time goes: torch runs an elementwise operation fast over long contiguous runs and
slowly over short strided ones (a block of Q4_0 is 18 bytes: a loop per block cost more than
the arithmetic), and converting bytes to float32 is only quick between contiguous tensors. So
each step here runs over whole rows at once: the packed integers are first copied out of
their blocks (a plain byte copy), then split into planes (every byte's low 4 bits, then every
byte's high 4 bits), converted to float32 in one pass, and scaled in one pass per scale.

A row comes out in this *stored order*, a fixed permutation of its columns within each block
(Q4_0: the 16 low nibbles of every block, then the 16 high nibbles of every block). The
product does not mind: `upcast.linear` multiplies the stored row by x's columns taken in the
same order (`spread`), the same products of the same numbers, summed in another order.
tests/test_gguf_rows.py holds every stored value bit-identical to the literal expansion's at
its column (`order`). One exception: Q4_K and Q5_K store (d·scale)·q and leave out each
sub-block's minimum, dmin·min, which the product subtracts once per sub-block, times the sum
of x over its 32 columns (`finish`), as llama.cpp's dot products do: Σ (a·q − b)·x =
Σ a·q·x − b·Σ x, one pass over every weight fewer, the same sum up to its rounding.
Q5_0, Q5_1, Q2_K and Q3_K (rare in Llama files) use the literal functions, in column order.

A block's scales (Q4_K's 6-bit ones, unpacked) cost a dozen small operations whatever the
number of blocks, so `StoredRows` computes them for a few million weights at once, and a
slice pays only for the passes over its weights.
"""

from __future__ import annotations

import functools

import torch

from .blocks import BLOCKS_OF_32, f16
from .k_quants import K_QUANTS

EXPAND = {**BLOCKS_OF_32, **K_QUANTS}  # type -> (weights a block, bytes a block, the literal expansion)


def packed(rows: torch.Tensor, nbytes: int, start: int, stop: int) -> torch.Tensor:
    """Bytes start … stop-1 of every block of `rows` [r, bytes], copied out contiguous: [r, blocks, stop - start]."""
    r = rows.shape[0]
    return rows.view(r, -1, nbytes)[:, :, start:stop].contiguous()


def planes(q: torch.Tensor) -> torch.Tensor:
    """Bytes [r, n, k] → their low 4 bits, then their high 4 bits: [r, 2, n, k] uint8 (contiguous). Runs
    of k ≥ 64 bytes (a vector's worth) are read in place; callers copy shorter ones out first (`packed`)."""
    out = torch.empty(q.shape[0], 2, *q.shape[1:], dtype=torch.uint8, device=q.device)
    torch.bitwise_and(q, 0x0F, out=out[:, 0])
    torch.bitwise_right_shift(q, 4, out=out[:, 1])  # uint8: a logical shift, nothing to mask
    return out


# Each type: scales(rows) → what each block's (or sub-block's) weights are multiplied by (and
# offset by), for many rows at once, shaped to broadcast over the stored order; expand(rows,
# out, *scales) → one slice's weights. Shapes: r rows, n blocks a row.

def q8_0_scales(rows):
    return (f16(rows.view(-1, 34), 0).view(rows.shape[0], -1, 1),)  # d: [r, n, 1]


def q8_0(rows, out, d) -> None:
    """Column order: each block's 32 int8, times its d."""
    r = rows.shape[0]
    weights = out.view(r, -1, 32)
    weights.copy_(rows.view(r, -1, 34)[:, :, 2:].view(torch.int8))
    weights.mul_(d)


def q4_0_scales(rows):
    d = f16(rows.view(-1, 18), 0).view(rows.shape[0], 1, -1, 1)
    return (d.expand(-1, 2, -1, -1).contiguous(),)  # [r, plane, n, 1]: once per plane, so a pass sees 16 at a time


def q4_0(rows, out, d) -> None:
    """Stored order [plane, block, 16]: the low nibbles of every block, then the high ones; (q − 8)·d."""
    q = planes(packed(rows, 18, 2, 18)).sub_(8)  # uint8 wraps: q − 8 read as int8
    weights = out.view(rows.shape[0], 2, -1, 16)
    weights.copy_(q.view(torch.int8))
    weights.mul_(d)


def q4_1_scales(rows):
    dm = f16(rows.view(-1, 20), 0), f16(rows.view(-1, 20), 2)
    return tuple(v.view(rows.shape[0], 1, -1, 1).expand(-1, 2, -1, -1).contiguous() for v in dm)


def q4_1(rows, out, d, m) -> None:
    """Q4_0's stored order; d·q + m."""
    weights = out.view(rows.shape[0], 2, -1, 16)
    weights.copy_(planes(packed(rows, 20, 4, 20)))
    weights.mul_(d).add_(m)


def k4_scales(rows, nbytes: int):
    """Q4_K/Q5_K: (d·scale [r, h, n, g, 1] for sub-block 2g + h; dmin·min [r, n·8] in column order), both
    as k_quants.q4_k computes them: `k4_unpacked`, then `k4_floats`."""
    return k4_floats(*k4_unpacked(rows, nbytes))


def k4_unpacked(rows, nbytes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q4_K/Q5_K's packed scales as bytes: the 6-bit scales [r, h, n, g] (uint8, sub-block 2g + h), the
    6-bit minimums [r, n·8] (uint8, column order), and d, dmin [r, n, 2] (float16): 20 bytes a super-block
    of 256 weights, which `Quantized` keeps (unpacking is a third of expanding Q4_K, the rest is cheap).
    Everything is done on int32 words holding four 6-bit values, never one small value at a time:
    torch's loops over tiny dimensions cost more than the rest."""
    r = rows.shape[0]
    head = rows.view(r, -1, nbytes).view(torch.int32)[:, :, :4].permute(2, 0, 1).contiguous()  # [4, r, n]
    d, m, m_d = head[1], head[2], head[3]  # the 12 bytes of scales, as k_quants.scale_min_k4 names them
    six = torch.empty(2, 2, *d.shape, dtype=torch.int32, device=rows.device)  # [(scale, min), w, r, n]: 4w … 4w+3
    torch.bitwise_and(d, 0x3F3F3F3F, out=six[0, 0])
    torch.bitwise_and(m_d, 0x0F0F0F0F, out=six[0, 1]).bitwise_or_(d.bitwise_right_shift(2).bitwise_and_(0x30303030))
    torch.bitwise_and(m, 0x3F3F3F3F, out=six[1, 0])
    torch.bitwise_right_shift(m_d, 4, out=six[1, 1]).bitwise_and_(0x0F0F0F0F)
    six[1, 1].bitwise_or_(m.bitwise_right_shift(2).bitwise_and_(0x30303030))
    # Byte k of word w is sub-block 4w + k = 2g + h with g = 2w + k div 2, h = k mod 2: the even bytes
    # (h = 0) and the odd ones, as 16-bit lanes, go to [r, h, n, w] words, i.e. [r, h, n, g] lanes.
    lanes = torch.empty(r, 2, d.shape[1], 2, dtype=torch.int32, device=rows.device)  # [r, h, n, w]
    for w in range(2):
        torch.bitwise_and(six[0, w], 0x00FF00FF, out=lanes[:, 0, :, w])
        torch.bitwise_right_shift(six[0, w], 8, out=lanes[:, 1, :, w])
    scale = lanes.bitwise_and_(0x00FF00FF).view(torch.int16).to(torch.uint8)  # [r, h, n, g], 0 … 63
    low = six[1].view(2, -1).T.contiguous().view(torch.uint8).view(r, -1)  # [r, n·8]: min of sub-block 0 … 7
    return scale, low, head[0].view(torch.float16).view(r, -1, 2).clone()  # d, dmin: [r, n, 2]


def k4_floats(scale: torch.Tensor, low: torch.Tensor, dd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`k4_unpacked`'s bytes → (d·scale [r, h, n, g, 1], dmin·min [r, n·8]) float32, as k_quants.q4_k
    computes them (float16 to float32 is exact; each product is rounded once, there and here)."""
    r, n = dd.shape[:2]
    d, dmin = dd.float().unbind(-1)  # [r, n] each
    return (scale.float().mul_(d.view(r, 1, n, 1)).unsqueeze(-1),
            low.float().view(r, n, 8).mul_(dmin.view(r, n, 1)).view(r, -1))


def q4_k(rows, out, scale, low) -> None:
    """Stored order [h, block, g, 32]: sub-block 2g + h is the low (h = 0) or high nibbles of the
    g-th 32 bytes of q; (d·scale)·q. The minimum is left to the product (`StoredRows.finish`)."""
    weights = out.view(rows.shape[0], 2, -1, 4, 32)
    weights.copy_(planes(rows.view(rows.shape[0], -1, 144)[:, :, 16:]).view(weights.shape))
    weights.mul_(scale)


def q5_k(rows, out, scale, low) -> None:
    """Q4_K's stored order over the 128 bytes at 48 …, with bit 2g + h of qh byte l as the fifth bit."""
    r = rows.shape[0]
    q = planes(rows.view(r, -1, 176)[:, :, 48:]).view(r, 2, -1, 4, 32)  # [r, h, n, g, 32]
    qh = packed(rows, 176, 16, 48).view(torch.int64)  # [r, n, 4]: 32 bytes as 4 int64, so a shift runs on 8 at once
    fifth = torch.empty_like(q)
    wide = fifth.view(torch.int64)  # [r, h, n, g, 4]
    for h in range(2):
        for g in range(4):  # bits that cross into the byte below are masked off next
            torch.bitwise_right_shift(qh, 2 * g + h, out=wide[:, h, :, g])
    q.bitwise_or_(fifth.bitwise_and_(1).bitwise_left_shift_(4))
    weights = out.view(q.shape)
    weights.copy_(q)
    weights.mul_(scale)


def q6_k_scales(rows):
    """d·scale [r, plane, n, half, 4, 1]: scale 8·half + 4·plane + i covers stored values (plane, half, 16i …)."""
    r = rows.shape[0]
    d = f16(rows.view(-1, 210), 208).view(r, -1, 1)
    scale = d * rows.view(r, -1, 210)[:, :, 192:208].view(torch.int8).float()  # [r, n, 16]
    return (scale.view(r, -1, 2, 2, 4).permute(0, 3, 1, 2, 4).contiguous().unsqueeze(-1),)


def q6_k(rows, out, scale) -> None:
    """Stored order [plane, block, half, 64]: the low 4 bits are plane (low or high nibble) of ql byte
    64·half + k; the high 2 are bits 2·(2·plane + k div 32) of qh byte 32·half + k mod 32; (q − 32)·d·scale."""
    r = rows.shape[0]
    q = planes(rows.view(r, -1, 210)[:, :, :128])  # [r, plane, n, 128 = (half, 64)]
    qh = packed(rows, 210, 128, 192).view(torch.int64).view(r, -1, 2, 4)  # [r, n, half, 32 bytes as 4 int64]
    high = torch.empty(r, 2, qh.shape[1], 2, 2, 4, dtype=torch.int64, device=rows.device)  # [r, plane, n, half, kk, 4]
    for plane in range(2):
        for kk in range(2):  # 8 bytes a shift: bits that cross into the byte below are masked off next
            torch.bitwise_right_shift(qh, 2 * (2 * plane + kk), out=high[:, plane, :, :, kk])
    high = high.view(torch.uint8)
    q.bitwise_or_(high.bitwise_and_(3).bitwise_left_shift_(4).view(q.shape)).sub_(32)  # q − 32 as int8
    weights = out.view(r, 2, -1, 2, 4, 16)
    weights.copy_(q.view(torch.int8).view(weights.shape))
    weights.mul_(scale)


# type -> (scales, expand); `order` says which column each stored value is
FAST = {"Q8_0": (q8_0_scales, q8_0), "Q4_0": (q4_0_scales, q4_0), "Q4_1": (q4_1_scales, q4_1),
        "Q4_K": (lambda rows: k4_scales(rows, 144), q4_k), "Q5_K": (lambda rows: k4_scales(rows, 176), q5_k),
        "Q6_K": (q6_k_scales, q6_k)}
SCALES_AT_ONCE = 1 << 24  # weights whose scales are computed together: large enough for their operations to use every core


class StoredRows:
    """A quantized matrix's rows [rows, bytes a row] expanded slice after slice in stored order, for
    one product with x [T, columns]: `fill(start, stop, out)` the rows, then, once their product
    with spread(x) is in y, `finish(start, stop, y)`."""

    def __init__(self, blocks: torch.Tensor, qtype: str, x: torch.Tensor, unpacked: tuple | None = None):
        """`unpacked`: Q4_K/Q5_K's scales for every row as `k4_unpacked` gives them, kept by the caller."""
        self.blocks, self.qtype, self.x, self.columns, self.unpacked = blocks, qtype, x, x.shape[1], unpacked
        self.at, self.scales, self.lows = 0, None, None  # for rows at … at + len - 1: scales, and minimums · x

    def fill(self, start: int, stop: int, out: torch.Tensor) -> torch.Tensor:
        """Rows start … stop-1 into `out` [stop - start, columns], float32 (or rounded to its dtype)."""
        if out.dtype != torch.float32:
            return out.copy_(self.fill(start, stop, torch.empty(out.shape, device=out.device)))
        if self.qtype not in FAST:  # the literal expansion: stored order is column order
            size, nbytes, expand = EXPAND[self.qtype]
            expand(self.blocks[start:stop].reshape(-1, nbytes), out.view(-1, size))
            return out
        scales, expand = FAST[self.qtype]
        if self.scales is None or start < self.at or stop > self.at + len(self.scales[0]):
            self.at, self.lows, end = start, None, max(stop, start + SCALES_AT_ONCE // self.columns)
            if self.unpacked is not None:
                self.scales = k4_floats(*(u[start:end] for u in self.unpacked))
            else:
                self.scales = scales(self.blocks[start:end])
        expand(self.blocks[start:stop], out, *(v[start - self.at:stop - self.at] for v in self.scales))
        return out

    def minimums(self, start: int, stop: int) -> torch.Tensor | None:
        """What `fill` left out of rows start … stop-1 (after filling them): Q4_K's and Q5_K's dmin·min
        [stop - start, columns / 32], one per sub-block in column order; None for the other types."""
        return self.scales[1][start - self.at:stop - self.at] if self.qtype in ("Q4_K", "Q5_K") else None

    def finish(self, start: int, stop: int, y: torch.Tensor) -> torch.Tensor:
        """y [stop - start, T], rows start … stop-1 times x: each sub-block's minimum times the sum of
        x over its 32 columns subtracted (worked out once for all the rows whose scales are at hand)."""
        if self.qtype not in ("Q4_K", "Q5_K"):
            return y
        if self.lows is None:
            sums = self.x.view(self.x.shape[0], -1, 32).sum(-1).T  # [columns / 32, T]
            self.lows = self.scales[1].to(y.dtype) @ sums.to(y.dtype)  # [rows at hand, T]
        return y.sub_(self.lows[start - self.at:stop - self.at])


KEPT = {"Q4_K": 144, "Q5_K": 176}  # types whose unpacked scales a `Quantized` keeps: bytes a super-block


def unpacked_scales(blocks: torch.Tensor, qtype: str) -> tuple[torch.Tensor, ...]:
    """`k4_unpacked` for every row of a Q4_K/Q5_K matrix, a few million weights at a time: 20 bytes a
    super-block of 256 weights (0.08 bytes a weight, 1/50 of the float32 expansion)."""
    step = max(1, SCALES_AT_ONCE // (blocks.shape[1] // KEPT[qtype] * 256))
    parts = [k4_unpacked(blocks[i:i + step], KEPT[qtype]) for i in range(0, blocks.shape[0], step)]
    return tuple(torch.cat(p) for p in zip(*parts))


@functools.cache
def order(n: int, qtype: str) -> torch.Tensor | None:
    """Which column each stored value of a row of `n` weights is [n] (int64): stored[:, i] is
    row[:, order[i]]; None where stored order is column order."""
    size = EXPAND[qtype][0]
    c = torch.arange(n).view(n // size, size)  # [block, weight of the block]
    if qtype in ("Q4_0", "Q4_1"):  # [plane, block, 16]
        return c.view(-1, 2, 16).permute(1, 0, 2).reshape(-1)
    if qtype in ("Q4_K", "Q5_K"):  # [h, block, g, 32], sub-block 2g + h
        return c.view(-1, 4, 2, 32).permute(2, 0, 1, 3).reshape(-1)
    if qtype == "Q6_K":  # [plane, block, half, 64]
        return c.view(-1, 2, 2, 64).permute(2, 0, 1, 3).reshape(-1)
    return None


def spread(x: torch.Tensor, qtype: str) -> torch.Tensor:
    """x [T, columns] → [columns, T] in stored order: row_stored · spread(x) = row · xᵀ."""
    which = order(x.shape[1], qtype)
    return (x.T if which is None else x.T[which.to(x.device)]).contiguous()  # [columns, T]
