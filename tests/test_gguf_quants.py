"""K-quants read as llama.cpp's block layouts say (ggml-common.h), checked against this file's
own decoder of each layout — not against gguf.quants, which tests/test_gguf_dequant.py holds the
reader's torch dequantizer to — so a layout misread by both cannot pass unseen in Q4_K, Q5_K or
Q6_K (the types most Llama 3 GGUFs hold)."""

import numpy as np
import pytest

from reference.formats.gguf import GGUFWeights
from reference.formats.gguf.header import read_header

QK = 256  # values per K-quant super-block


def _scale_min(scales: np.ndarray, j: int) -> tuple[int, int]:
    """Q4_K/Q5_K: the j-th 6-bit scale and min, packed into 12 bytes."""
    q = [int(v) for v in scales]
    if j < 4:
        return q[j] & 63, q[j + 4] & 63
    return (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)


def q4_k(rng):
    d, dmin = np.float16(rng.uniform(1e-3, 1e-2)), np.float16(rng.uniform(1e-3, 1e-2))
    scales, qs = rng.integers(0, 256, 12, dtype=np.uint8), rng.integers(0, 256, 128, dtype=np.uint8)
    y = np.zeros(QK)
    for g in range(4):  # 4 groups of 64 values: 32 low nibbles, then 32 high nibbles of 32 bytes
        (s1, m1), (s2, m2) = _scale_min(scales, 2 * g), _scale_min(scales, 2 * g + 1)
        q = qs[32 * g:32 * g + 32].astype(int)
        y[64 * g:64 * g + 32] = float(d) * s1 * (q & 0xF) - float(dmin) * m1
        y[64 * g + 32:64 * g + 64] = float(d) * s2 * (q >> 4) - float(dmin) * m2
    return d.tobytes() + dmin.tobytes() + scales.tobytes() + qs.tobytes(), y


def q5_k(rng):
    d, dmin = np.float16(rng.uniform(1e-3, 1e-2)), np.float16(rng.uniform(1e-3, 1e-2))
    scales = rng.integers(0, 256, 12, dtype=np.uint8)
    qh, qs = rng.integers(0, 256, 32, dtype=np.uint8), rng.integers(0, 256, 128, dtype=np.uint8)
    y = np.zeros(QK)
    for g in range(4):  # as Q4_K, plus a fifth bit per value from qh: bit 2g for the low, 2g+1 for the high
        (s1, m1), (s2, m2) = _scale_min(scales, 2 * g), _scale_min(scales, 2 * g + 1)
        q, h = qs[32 * g:32 * g + 32].astype(int), qh.astype(int)
        y[64 * g:64 * g + 32] = float(d) * s1 * ((q & 0xF) + 16 * ((h >> (2 * g)) & 1)) - float(dmin) * m1
        y[64 * g + 32:64 * g + 64] = float(d) * s2 * ((q >> 4) + 16 * ((h >> (2 * g + 1)) & 1)) - float(dmin) * m2
    return d.tobytes() + dmin.tobytes() + scales.tobytes() + qh.tobytes() + qs.tobytes(), y


def q6_k(rng):
    ql, qh = rng.integers(0, 256, 128, dtype=np.uint8), rng.integers(0, 256, 64, dtype=np.uint8)
    scales, d = rng.integers(-128, 128, 16).astype(np.int8), np.float16(rng.uniform(1e-3, 1e-2))
    y = np.zeros(QK)
    for half in range(2):  # 128 values each: 4 bits from ql, 2 from qh, minus 32; a scale per 16 values
        low, high = ql[64 * half:64 * half + 64].astype(int), qh[32 * half:32 * half + 32].astype(int)
        sc = scales[8 * half:8 * half + 8].astype(int)
        for l in range(32):
            q = [(low[l] & 0xF) | ((high[l] & 3) << 4), (low[l + 32] & 0xF) | (((high[l] >> 2) & 3) << 4),
                 (low[l] >> 4) | (((high[l] >> 4) & 3) << 4), (low[l + 32] >> 4) | (((high[l] >> 6) & 3) << 4)]
            for k in range(4):
                y[128 * half + l + 32 * k] = float(d) * sc[l // 16 + 2 * k] * (q[k] - 32)
    return ql.tobytes() + qh.tobytes() + scales.tobytes() + d.tobytes(), y


@pytest.mark.parametrize("name, encode", [("Q4_K", q4_k), ("Q5_K", q5_k), ("Q6_K", q6_k)])
def test_a_k_quant_tensor_reads_back_as_its_layout_says(tmp_path, name, encode):
    import gguf

    rng, rows, cols = np.random.default_rng(7), 3, 2 * QK
    blocks = [[encode(rng) for _ in range(cols // QK)] for _ in range(rows)]
    raw = b"".join(b for row in blocks for b, _ in row)
    expected = np.array([np.concatenate([y for _, y in row]) for row in blocks])  # [rows, cols]
    path = tmp_path / f"{name}.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("blk.0.attn_q.weight", np.frombuffer(raw, np.uint8).reshape(rows, -1),
                      raw_dtype=gguf.GGMLQuantizationType[name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    (info,) = read_header(path).tensors
    assert info.shape == (rows, cols)
    got = GGUFWeights(path, {"w": info})["w"].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
