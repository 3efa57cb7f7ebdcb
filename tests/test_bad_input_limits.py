"""Bad input (#14 class 4): memory that would grow with what the user could ask is estimated
first, and a request that cannot fit is refused in one line with the numbers."""

import pytest
import torch

from helpers import one_line_error
from reference.errors import InputError
from reference.trace import available_memory, run_trace, trace_bytes, trace_shapes


def test_the_trace_estimate_counts_every_recorded_tensor(tiny):
    shapes = trace_shapes(tiny.args, 17)
    elements = sum(torch.Size(s).numel() for s in shapes.values())
    assert trace_bytes(tiny.args, 17) == 4 * elements
    assert trace_bytes(tiny.args, 17, torch.float64) == 8 * elements


def test_the_scores_make_a_long_trace_grow_as_the_square_of_its_length(tiny):
    a = tiny.args
    scores_and_weights = 2 * a.n_layers * a.n_heads * 4  # bytes per (query, key) pair, float32
    growth = trace_bytes(a, 2000) - 2 * trace_bytes(a, 1000) + trace_bytes(a, 0)
    assert growth == scores_and_weights * (2000**2 - 2 * 1000**2)


def test_a_trace_that_cannot_fit_in_memory_is_refused_before_anything_is_allocated(tiny):
    """A long prompt on a checkpoint whose context allows it (max_seq_len 131,072): tiny's 4
    layers of 8 heads at 40,000 tokens would record 400 GB of scores."""
    args = tiny.args.replace(max_seq_len=131_072)
    tokens = torch.full((40_000,), 100, dtype=torch.int64)
    assert trace_bytes(args, len(tokens)) > available_memory()
    with pytest.raises(InputError) as excinfo:
        run_trace(tokens, tiny.weights, args)
    message = one_line_error(excinfo, "40,000 tokens", "GiB", "of memory is available", "generate")
    assert f"{trace_bytes(args, 40_000) / 2**30:,.1f} GiB" in message
