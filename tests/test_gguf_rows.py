"""formats/gguf/stored_rows.py, the fast path: a slice of a quantized matrix's rows expanded in the
order its bytes lie. Taken back to their columns, the values are the literal expansion's, bit
for bit, for every type and any slice; `upcast.linear` on a quantized matrix is its float32
expansion times x, for one token, a few and many, in float32, float64 and bfloat16."""

import numpy as np
import pytest
import torch

from reference import upcast
from reference.formats.gguf.stored_rows import EXPAND, SCALES_AT_ONCE, StoredRows, order
from reference.formats.gguf.quantized import Quantized, dequantize

from test_gguf_dequant import SCALES_AT, assert_bit_identical, random_blocks


def in_column_order(stored_rows: torch.Tensor, qtype: str) -> torch.Tensor:
    which = order(stored_rows.shape[1], qtype)
    return stored_rows if which is None else torch.empty_like(stored_rows).index_copy_(1, which, stored_rows)


def expanded(rows: StoredRows, start: int, stop: int) -> torch.Tensor:
    """Rows start … stop-1 as fill stores them, put back in column order, with the minimum fill left
    to the product (Q4_K, Q5_K) subtracted as the literal expansion subtracts it."""
    values = in_column_order(rows.fill(start, stop, torch.full((stop - start, rows.columns), 7.0)), rows.qtype)
    low = rows.minimums(start, stop)
    return values if low is None else (values.view(stop - start, -1, 32) - low[:, :, None]).view(stop - start, -1)


@pytest.mark.parametrize("qtype", list(EXPAND))
def test_every_stored_value_taken_back_to_its_column_is_the_literal_expansion(qtype):
    size = EXPAND[qtype][0]
    raw = torch.from_numpy(random_blocks(qtype, rows=24, blocks_a_row=max(1, 512 // size), seed=3))
    n = raw.shape[1] // EXPAND[qtype][1] * size
    literal = dequantize(raw, qtype).numpy()
    for start, stop in ((0, 24), (5, 6), (7, 19)):
        assert_bit_identical(expanded(StoredRows(raw, qtype, torch.zeros(1, n)), start, stop).numpy(),
                             literal[start:stop])


@pytest.mark.parametrize("qtype", list(EXPAND))
def test_the_stored_order_is_a_permutation_of_the_columns(qtype):
    n = EXPAND[qtype][0] * 3
    which = order(n, qtype)
    assert which is None or sorted(which.tolist()) == list(range(n))


def test_scales_computed_for_later_slices_are_the_ones_they_need(monkeypatch):
    """fill keeps the scales of the next rows; slices that run past them, or go back, get their own."""
    import reference.formats.gguf.stored_rows as rows

    monkeypatch.setattr(rows, "SCALES_AT_ONCE", 256 * 3)  # three rows of 256 at a time
    raw = torch.from_numpy(random_blocks("Q4_K", rows=10, blocks_a_row=1, seed=4))
    literal = dequantize(raw, "Q4_K")
    rows = StoredRows(raw, "Q4_K", torch.zeros(1, 256))
    for start, stop in ((0, 2), (2, 5), (5, 6), (1, 3), (6, 10)):
        torch.testing.assert_close(expanded(rows, start, stop), literal[start:stop], rtol=0, atol=0, equal_nan=True)
    assert SCALES_AT_ONCE > 256 * 3


@pytest.mark.parametrize("qtype", ["Q4_K", "Q5_K"])
def test_scales_unpacked_once_and_kept_fill_the_same_bits_as_unpacking_them_per_slice(qtype, monkeypatch):
    """Quantized keeps Q4_K/Q5_K's scales as bytes (20 a super-block); the floats made from them per slice
    are those computed from the blocks, edge scales included, whichever rows the kept chunks hold."""
    import reference.formats.gguf.stored_rows as rows

    monkeypatch.setattr(rows, "SCALES_AT_ONCE", 256 * 7)  # kept in chunks of 7 rows, used by slices of others
    raw = torch.from_numpy(random_blocks(qtype, rows=30, blocks_a_row=1, seed=5))
    kept = rows.unpacked_scales(raw, qtype)
    assert sum(k.nbytes for k in kept) == 30 * 20
    plain, unpacked = StoredRows(raw, qtype, torch.zeros(1, 256)), StoredRows(raw, qtype, torch.zeros(1, 256), kept)
    for start, stop in ((0, 3), (3, 12), (12, 30), (5, 9)):
        a, b = (r.fill(start, stop, torch.full((stop - start, 256), 7.0)) for r in (plain, unpacked))
        assert_bit_identical(b.numpy(), a.numpy())
        assert_bit_identical(unpacked.minimums(start, stop).numpy(), plain.minimums(start, stop).numpy())


def quantized_matrix(qtype: str, rows: int, cols: int, seed: int = 0) -> Quantized:
    """Random blocks with finite, small scales: a matrix whose products are numbers."""
    size, nbytes, _ = EXPAND[qtype]
    raw = np.random.default_rng(seed).integers(0, 256, (rows * cols // size, nbytes), dtype=np.uint8)
    for at in SCALES_AT[qtype]:
        raw[:, at:at + 2] = np.array([0.01], np.float16).view(np.uint8)
    return Quantized(torch.from_numpy(raw.reshape(rows, -1)), qtype, (rows, cols))


@pytest.mark.parametrize("qtype", list(EXPAND))
@pytest.mark.parametrize("tokens", [1, 5, 70])
def test_linear_on_a_quantized_matrix_is_its_expansion_times_x(qtype, tokens):
    w = quantized_matrix(qtype, rows=300, cols=512)
    x = torch.randn(tokens, 512, generator=torch.Generator().manual_seed(1))
    weights = w.expanded().double()
    got = upcast.linear(x, w, torch.float32, "cpu")
    # n·u·Σ|x|·|w| bounds any order of the sum; Q4_K and Q5_K sum (d·scale)·q·x and dmin·min·x apart:
    # terms of up to |w| + dmin·min, and dmin·min
    rows = StoredRows(w.blocks, qtype, x)
    rows.fill(0, 300, torch.empty(300, 512))
    minimum = rows.minimums(0, 300)
    apart = torch.zeros_like(weights) if minimum is None else minimum.double().repeat_interleave(32, dim=1)
    bound = 512 * 2 ** -23 * (x.double().abs() @ (weights.abs() + 2 * apart).T)
    assert got.shape == (tokens, 300) and bool(((got.double() - x.double() @ weights.T).abs() <= bound).all())


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_linear_in_another_dtype_is_that_of_the_float32_expansion_held_in_ram(dtype):
    """As a float32 weight: float64 sums of the float32 values; bf16 as this CPU multiplies bf16."""
    w = quantized_matrix("Q4_K", rows=64, cols=256)
    x = torch.randn(3, 256, generator=torch.Generator().manual_seed(2)).to(dtype)
    torch.testing.assert_close(upcast.linear(x, w, dtype, "cpu"), upcast.linear(x, w.expanded(), dtype, "cpu"))


def test_linear_never_expands_a_quantized_matrix_whole(monkeypatch):
    w = quantized_matrix("Q8_0", rows=4096, cols=512)
    monkeypatch.setattr(Quantized, "expanded", lambda self: pytest.fail("a whole matrix was expanded"))
    for tokens in (1, 17, 100):
        upcast.linear(torch.randn(tokens, 512), w, torch.float32, "cpu")


def test_a_quantized_product_on_two_threads_is_the_one_thread_product():
    """The slices' passes and the one-token product (`upcast.per_core`) split across the cores."""
    w = quantized_matrix("Q4_K", rows=4096, cols=512)
    threads, products = torch.get_num_threads(), []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            products.append([upcast.linear(torch.ones(t, 512), w, torch.float32, "cpu") for t in (1, 3)])
    finally:
        torch.set_num_threads(threads)
    for alone, shared in zip(*products):
        torch.testing.assert_close(alone, shared, rtol=1e-6, atol=1e-5)  # the same slices; BLAS may group rows apart
