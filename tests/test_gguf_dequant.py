"""formats/gguf/blocks.py and k_quants.py: every quantized type expands bit for bit as llama.cpp's
own `gguf.quants.dequantize` does, on blocks written here: random bytes in each type's layout
(every scale, minimum and q a byte can hold) with float16 scales at their edges (zero, −0,
negative, subnormal, the largest, ±inf, NaN), and weights quantized by gguf where it can."""

import numpy as np
import pytest
import torch

from reference.formats.gguf.quantized import EXPAND, dequantize

# Where each type keeps its float16 scales (d, and dmin or m), in bytes from the start of a block.
SCALES_AT = {"Q8_0": [0], "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q2_K": [80, 82],
             "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}
EDGES = np.array([0x0000, 0x8000,  # ±0
                  0x0001, 0x03FF, 0x8001,  # subnormal: the smallest, the largest, a negative one
                  0x3C00, 0xBC00, 0x1400, 0x7BFF, 0xFBFF,  # ±1, 2^-10, ±65504 (the largest)
                  0x7C00, 0xFC00, 0x7E00, 0x7D01, 0xFE00], np.uint16)  # ±inf, NaN (quiet, signalling, negative)


def random_blocks(qtype: str, rows: int, blocks_a_row: int, seed: int = 0) -> np.ndarray:
    """[rows, bytes a row] of random bytes, half the blocks' float16 scales set to an edge value."""
    _, nbytes, _ = EXPAND[qtype]
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (rows * blocks_a_row, nbytes), dtype=np.uint8)
    for at in SCALES_AT[qtype]:
        edge = rng.choice(EDGES, len(raw)).view(np.uint8).reshape(-1, 2)
        chosen = rng.random(len(raw)) < 0.5
        raw[chosen, at:at + 2] = edge[chosen]
    return raw.reshape(rows, -1)


def gguf_dequantize(raw: np.ndarray, qtype: str) -> np.ndarray:
    from gguf.constants import GGMLQuantizationType
    from gguf.quants import dequantize as theirs

    with np.errstate(invalid="ignore", over="ignore"):  # inf·0 and inf − inf are NaN on both sides
        return theirs(raw, GGMLQuantizationType[qtype])


def assert_bit_identical(ours: np.ndarray, theirs: np.ndarray) -> None:
    """The same float32 bits everywhere but NaN, and NaN in the same places. (Which NaN an
    operation on two NaNs returns is the hardware's choice of operand, not the layout's.)"""
    assert ours.shape == theirs.shape
    nan = np.isnan(theirs)
    np.testing.assert_array_equal(np.isnan(ours), nan)
    differ = np.flatnonzero((ours.view(np.uint32) != theirs.view(np.uint32)) & ~nan)
    assert not len(differ), f"{len(differ)} values differ, first at {np.unravel_index(differ[0], ours.shape)}: " \
                            f"{ours.flat[differ[0]]!r}, gguf {theirs.flat[differ[0]]!r}"


@pytest.mark.parametrize("qtype", list(EXPAND))
def test_random_blocks_with_edge_scales_expand_bit_for_bit_as_gguf_does(qtype):
    raw = random_blocks(qtype, rows=48, blocks_a_row=6)
    assert_bit_identical(dequantize(torch.from_numpy(raw), qtype).numpy(), gguf_dequantize(raw, qtype))


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"])
def test_weights_gguf_quantized_expand_bit_for_bit_as_gguf_does(qtype):
    from gguf.constants import GGMLQuantizationType
    from gguf.quants import quantize

    x = np.random.default_rng(1).standard_normal((40, 256)).astype(np.float32) * np.float32(0.02)
    x[3] = 0  # an all-zero block: d = 0
    raw = quantize(x, GGMLQuantizationType[qtype])
    ours = dequantize(torch.from_numpy(raw), qtype).numpy()
    assert_bit_identical(ours, gguf_dequantize(raw, qtype))
    assert np.abs(ours - x).max() < 0.02  # and they are the weights, give or take a quantization step


@pytest.mark.parametrize("qtype", list(EXPAND))
def test_any_slice_of_rows_expands_to_the_same_rows_of_the_whole(qtype):
    raw = torch.from_numpy(random_blocks(qtype, rows=20, blocks_a_row=2, seed=2))
    whole = dequantize(raw, qtype)
    for start, stop in ((0, 1), (3, 11), (19, 20), (0, 20)):
        out = torch.full((stop - start, whole.shape[1]), 7.0)
        dequantize(raw[start:stop], qtype, out)
        assert torch.equal(out.view(torch.int32), whole[start:stop].view(torch.int32))


def test_a_q8_0_block_is_its_integers_times_its_scale():
    """The docstring's example: d = 0.5, q = 0 … 31 → 0, 0.5, …, 15.5."""
    block = np.concatenate([np.array([0.5], np.float16).view(np.uint8), np.arange(32, dtype=np.int8).view(np.uint8)])
    assert dequantize(torch.from_numpy(block[None]), "Q8_0")[0].tolist() == [q / 2 for q in range(32)]


def test_a_q4_0_block_keeps_low_nibbles_first_and_subtracts_eight():
    """Byte j holds weight j in its low 4 bits and weight j + 16 in its high 4: 0x9F → 15 − 8 and 9 − 8."""
    block = np.concatenate([np.array([2.0], np.float16).view(np.uint8), np.full(16, 0x9F, np.uint8)])
    assert dequantize(torch.from_numpy(block[None]), "Q4_0")[0].tolist() == [14.0] * 16 + [2.0] * 16
