"""The K-quants' super-blocks (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) expanded to float32, as `blocks.py`
expands the blocks of 32: the same contract (blocks [n, bytes] uint8 → out [n, 256] float32),
bit-identical to `gguf.quants.dequantize`.

A super-block holds 256 weights in sub-blocks of 16 or 32 that each have their own small
integer scale (and, for Q2_K, Q4_K and Q5_K, a minimum), themselves scaled by the super-block's
float16 `d` (and `dmin`): weight = (d·scale)·q − (dmin·min). Most Llama 3 GGUFs are Q4_K_M:
Q4_K matrices, with Q6_K for the output projection and half of the w2's.
"""

from __future__ import annotations

import torch

from .blocks import f16, nibbles

QK_K = 256  # weights in a super-block


def _shifts(*s: int, device) -> torch.Tensor:
    return torch.tensor(s, dtype=torch.uint8, device=device).view(-1, 1)  # [len(s), 1]: one shift a row


def scale_min_k4(scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q4_K/Q5_K: 12 bytes → 8 six-bit scales and 8 six-bit minimums [n, 8] each (ggml's get_scale_min_k4).

    Bytes 0-3 hold scales 0-3 in their low 6 bits, bytes 4-7 minimums 0-3; bytes 8-11 hold the low
    4 bits of scales 4-7 (low nibble) and minimums 4-7 (high nibble), whose top 2 bits are the
    spare top bits of bytes 0-3 (scales) and 4-7 (minimums)."""
    d, m, m_d = scales[:, 0:4], scales[:, 4:8], scales[:, 8:12]
    sc = torch.cat([d & 0x3F, (m_d & 0x0F) | ((d >> 2) & 0x30)], dim=-1)  # [n, 8]
    mn = torch.cat([m & 0x3F, (m_d >> 4) | ((m >> 2) & 0x30)], dim=-1)  # [n, 8]
    return sc, mn


def q2_k(blocks: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Q2_K, 84 bytes: 16 scale bytes (low nibble: scale, high: min, per 16 weights), 64 bytes of
    2-bit q, d, dmin (f16). Byte l of each 32 holds weights l, l+32, l+64, l+96 of its 128."""
    n = len(blocks)
    scales = blocks[:, :16]
    dl = (f16(blocks, 80) * (scales & 0xF).float()).view(n, 16, 1)
    ml = (f16(blocks, 82) * (scales >> 4).float()).view(n, 16, 1)
    q = torch.bitwise_right_shift(blocks[:, 16:80].reshape(n, 2, 1, 32), _shifts(0, 2, 4, 6, device=blocks.device))
    weights = out.view(n, 16, 16)
    weights.copy_(q.bitwise_and_(3).view(n, 16, 16))  # [n, 2, 4, 32] → 16 sub-blocks of 16
    return weights.mul_(dl).sub_(ml).view(n, QK_K)


def q3_k(blocks: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Q3_K, 110 bytes: hmask (32 bytes: the third bit of q, set meaning "no −4"), 64 bytes of 2-bit
    q as Q2_K's, 12 bytes of sixteen 6-bit scales, d (f16). weight = d·(scale − 32)·q."""
    n, device = len(blocks), blocks.device
    low = torch.bitwise_right_shift(blocks[:, 96:104].reshape(n, 1, 8), _shifts(0, 4, device=device))  # [n, 2, 8]
    high = torch.bitwise_right_shift(blocks[:, 104:108].reshape(n, 1, 4), _shifts(0, 2, 4, 6, device=device))
    scale = (low.reshape(n, 16) & 0x0F) | ((high.reshape(n, 16) & 0x03) << 4)  # [n, 16], 0 … 63
    dl = (f16(blocks, 108) * scale.view(torch.int8).sub(32).float()).view(n, 16, 1)
    ql = torch.bitwise_right_shift(blocks[:, 32:96].reshape(n, 2, 1, 32), _shifts(0, 2, 4, 6, device=device))
    qh = torch.bitwise_right_shift(blocks[:, :32].reshape(n, 1, 1, 32), _shifts(*range(8), device=device))
    minus4 = qh.reshape(n, 16, 16).bitwise_and_(1).bitwise_xor_(1).bitwise_left_shift_(2)  # 4 where the bit is 0
    q = ql.reshape(n, 16, 16).bitwise_and_(3).view(torch.int8).sub_(minus4.view(torch.int8))  # −4 … 3
    weights = out.view(n, 16, 16)
    weights.copy_(q)
    return weights.mul_(dl).view(n, QK_K)


def q4_k(blocks: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Q4_K, 144 bytes: d, dmin (f16), 12 bytes of 6-bit scales and minimums, 128 bytes of 4-bit q:
    each 32 bytes hold two sub-blocks of 32 (low nibbles, then high). weight = (d·scale)·q − dmin·min."""
    n = len(blocks)
    sc, mn = scale_min_k4(blocks[:, 4:16])
    d = (f16(blocks, 0) * sc.float()).view(n, 8, 1)
    dm = (f16(blocks, 2) * mn.float()).view(n, 8, 1)
    weights = out.view(n, 8, 32)
    weights.copy_(nibbles(blocks[:, 16:].view(n, 4, 32)).view(n, 8, 32))
    return weights.mul_(d).sub_(dm).view(n, QK_K)


def q5_k(blocks: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Q5_K, 176 bytes: Q4_K's d, dmin and scales, then qh (32 bytes: bit i of byte l is the fifth
    bit of weight l of sub-block i), then Q4_K's 128 bytes of low nibbles."""
    n = len(blocks)
    sc, mn = scale_min_k4(blocks[:, 4:16])
    d = (f16(blocks, 0) * sc.float()).view(n, 8, 1)
    dm = (f16(blocks, 2) * mn.float()).view(n, 8, 1)
    qh = torch.bitwise_right_shift(blocks[:, 16:48].reshape(n, 1, 32), _shifts(*range(8), device=blocks.device))
    q = nibbles(blocks[:, 48:].view(n, 4, 32)).view(n, 8, 32)
    q.bitwise_or_(qh.bitwise_and_(1).bitwise_left_shift_(4))
    weights = out.view(n, 8, 32)
    weights.copy_(q)
    return weights.mul_(d).sub_(dm).view(n, QK_K)


def q6_k(blocks: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Q6_K, 210 bytes: 128 bytes of the low 4 bits of q, 64 bytes of the high 2, sixteen int8
    scales (one per 16 weights), d (f16). In each half of 128 weights, weight p takes its low
    bits from byte p mod 64 (the low nibble for p < 64) and its high bits from bits 2·(p div 32)
    of byte p mod 32. weight = (d·scale)·(q − 32)."""
    n = len(blocks)
    dl = (f16(blocks, 208) * blocks[:, 192:208].view(torch.int8).float()).view(n, 16, 1)
    low = nibbles(blocks[:, :128].view(n, 2, 64))  # [n, 2, 128]
    high = torch.bitwise_right_shift(blocks[:, 128:192].reshape(n, 2, 1, 32), _shifts(0, 2, 4, 6, device=blocks.device))
    q = low.bitwise_or_(high.bitwise_and_(3).bitwise_left_shift_(4).view(n, 2, 128))  # 0 … 63
    weights = out.view(n, 16, 16)
    weights.copy_(q.sub_(32).view(torch.int8).view(n, 16, 16))  # uint8 wraps: q − 32 read as int8
    return weights.mul_(dl).view(n, QK_K)


# type -> (weights a block, bytes a block, the function), as blocks.BLOCKS_OF_32
K_QUANTS = {"Q2_K": (QK_K, 84, q2_k), "Q3_K": (QK_K, 110, q3_k), "Q4_K": (QK_K, 144, q4_k),
            "Q5_K": (QK_K, 176, q5_k), "Q6_K": (QK_K, 210, q6_k)}
