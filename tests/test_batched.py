"""The batched path computes what the literal path computes."""

import pytest
import torch

from reference import batched, model, upcast
from reference.upcast import linear
from reference.run import run_trace

PROMPT = [128000, 1820, 4320, 311, 279, 17139, 3488, 315, 2324, 11, 279, 15861, 11, 323, 4395, 374, 220]
# Same math, different order of summation: agreement to rounding error of each dtype.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 5e-2}


def assert_traces_agree(a, b, tol):
    assert list(a) == list(b)
    for name in a:
        scale = max(1.0, float(a[name].double().abs().nan_to_num(posinf=0, neginf=0).max()))
        torch.testing.assert_close(b[name].double(), a[name].double(), atol=tol * scale, rtol=tol,
                                   msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_batched_trace_equals_literal_trace(tiny, dtype):
    literal = run_trace(PROMPT, tiny.weights, tiny.args, dtype=dtype, path="literal")
    fast = run_trace(PROMPT, tiny.weights, tiny.args, dtype=dtype, path="batched")
    assert_traces_agree(literal, fast, TOLERANCE[dtype])


def test_batched_fused_attention_without_trace_gives_the_literal_logits(tiny):
    tokens = torch.tensor(PROMPT)
    literal = model.forward(tokens, tiny.weights, tiny.args)
    fused = batched.forward(tokens, tiny.weights, tiny.args)
    torch.testing.assert_close(fused, literal, atol=1e-5, rtol=1e-5)
    assert int(fused[-1].argmax()) == int(literal[-1].argmax())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_the_next_token_pass_gives_the_literal_last_row_of_logits(tiny, dtype):
    tokens = torch.tensor(PROMPT)
    literal = model.forward(tokens, tiny.weights, tiny.args, dtype=dtype)[-1:]  # [1, V]
    next_only = batched.forward(tokens, tiny.weights, tiny.args, dtype=dtype, last_only=True)  # [1, V]
    torch.testing.assert_close(next_only, literal, atol=TOLERANCE[dtype], rtol=TOLERANCE[dtype])
    assert int(next_only.argmax()) == int(literal.argmax())


def test_the_next_token_pass_still_caches_every_positions_keys_and_values(tiny):
    """The last layer skips the other rows' queries and feed-forward, never their keys and values."""
    tokens = torch.tensor(PROMPT)
    caches = {}
    for last_only in (False, True):
        caches[last_only] = batched.KVCache.allocate(tiny.args, len(PROMPT), torch.float64)
        batched.forward(tokens, tiny.weights, tiny.args, dtype=torch.float64, cache=caches[last_only],
                        last_only=last_only)
    torch.testing.assert_close(caches[True].k, caches[False].k, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(caches[True].v, caches[False].v, rtol=1e-12, atol=1e-12)
    assert caches[True].k[-1].abs().sum(-1).gt(0).all()  # every position of the last layer was written


def test_the_next_token_pass_runs_the_last_layers_queries_and_feed_forward_on_one_row(tiny, monkeypatch):
    rows = {}  # weight name -> rows of the activation multiplied by it
    names = {id(w): name for name, w in tiny.weights.items()}

    def spy(x, w, dtype, device):
        rows[names.get(id(w), "?")] = x.shape[0]
        return linear(x, w, dtype, device)

    monkeypatch.setattr(batched, "linear", spy)
    batched.forward(torch.tensor(PROMPT), tiny.weights, tiny.args, last_only=True)
    last, T = f"layers.{tiny.args.n_layers - 1}.", len(PROMPT)
    assert rows[last + "attention.wk.weight"] == rows[last + "attention.wv.weight"] == T
    assert rows[last + "attention.wq.weight"] == rows[last + "attention.wo.weight"] == 1
    assert rows[last + "feed_forward.w1.weight"] == rows[last + "feed_forward.w2.weight"] == 1
    assert rows["layers.0.feed_forward.w2.weight"] == T  # the layers before it need every row


@pytest.mark.parametrize("n_tokens", [1, 17, upcast.FEW_TOKENS + 1, 300])  # rows times x; x times columns
def test_linear_upcasting_slice_by_slice_equals_one_product(n_tokens, monkeypatch):
    monkeypatch.setattr(upcast, "SLICE_BYTES_FEW_TOKENS", 64 * 4 * 16)  # 16 rows a slice: many slices
    monkeypatch.setattr(upcast, "SLICE_BYTES_MANY_TOKENS", 64 * 4 * 16)
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(n_tokens, 64, generator=g), torch.randn(1000, 64, generator=g).bfloat16()
    out = linear(x, w, torch.float32, "cpu")
    assert out.shape == (n_tokens, 1000) and out.dtype == torch.float32
    torch.testing.assert_close(out, x @ w.float().T, atol=1e-5, rtol=1e-5)


def test_linear_in_the_weights_dtype_multiplies_directly():
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 8, generator=g).bfloat16(), torch.randn(5, 8, generator=g).bfloat16()
    assert torch.equal(linear(x, w, torch.bfloat16, "cpu"), x @ w.T)


@pytest.mark.parametrize("native", [True, False], ids=["native-bf16", "emulated-bf16"])
def test_bfloat16_linear_is_the_float32_product_rounded_with_or_without_native_bf16(native, monkeypatch):
    monkeypatch.setattr(upcast, "cpu_has_native_bf16", lambda: native)
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(3, 256, generator=g).bfloat16(), torch.randn(40, 256, generator=g).bfloat16()
    out = linear(x, w, torch.bfloat16, "cpu")
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), x.float() @ w.float().T, atol=0.05, rtol=1 / 128)


def test_fused_attention_after_a_cached_prefix_equals_the_explicit_scores(tiny):
    """Without a trace, a chunk after a cached prefix runs PyTorch's fused attention with the
    shifted mask; with a trace, the scores are computed one by one. Both give the same logits."""
    tokens = torch.tensor(PROMPT)
    logits = {}
    for traced in (False, True):
        cache = batched.KVCache.allocate(tiny.args, len(PROMPT), torch.float64)
        batched.forward(tokens[:12], tiny.weights, tiny.args, dtype=torch.float64, cache=cache)
        logits[traced] = batched.forward(tokens[12:], tiny.weights, tiny.args, dtype=torch.float64, cache=cache,
                                         start=12, trace={} if traced else None)
    torch.testing.assert_close(logits[False], logits[True], rtol=1e-12, atol=1e-12)


def test_a_small_model_is_upcast_once_and_gives_the_same_logits(tiny):
    weights = upcast.resident(tiny.weights, torch.float32)
    assert all(w.dtype == torch.float32 for w in weights.values())
    tokens = torch.tensor(PROMPT)
    torch.testing.assert_close(batched.forward(tokens, weights, tiny.args),
                               batched.forward(tokens, tiny.weights, tiny.args), rtol=1e-6, atol=1e-6)


def test_resident_weights_are_contiguous_float32_with_the_values_unchanged(tiny):
    weights = upcast.resident(tiny.weights, torch.float32)
    for name, w in weights.items():
        stored = tiny.weights[name]
        assert w.shape == stored.shape and w.is_contiguous(), f"{name}: {w.shape}, strides {w.stride()}"
        assert torch.equal(w, stored.float()), f"{name}: values changed"


@pytest.mark.parametrize("threads", [1, 2, 3])  # 3 does not divide 1536 rows: one product
@pytest.mark.parametrize("shape", [(1536, 576), (16, 8)], ids=["split", "below SPLIT_BYTES"])
def test_one_row_through_a_float32_matrix_is_its_row_dot_products(shape, threads, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)  # the blocks follow the thread count
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(1, shape[1], generator=g), torch.randn(*shape, generator=g)
    out = linear(x, w, torch.float32, "cpu")
    exact = x.double() @ w.double().T  # [1, out]
    assert out.shape == (1, shape[0]) and out.dtype == torch.float32
    # Any float32 sum of n products, in any order, is within n·u·Σ|x_i·w_i| of the exact dot
    # product (u = 2⁻²⁴): a row computed against the wrong block or the wrong row is far outside.
    n, u = shape[1], 2.0 ** -24
    bound = n * u * (x.double().abs() @ w.double().abs().T)  # [1, out]
    assert ((out.double() - exact).abs() <= bound).all()


@pytest.mark.parametrize("stored", [torch.float32, torch.bfloat16], ids=str)  # one_row; a slice at a time
def test_one_token_product_does_not_depend_on_how_the_row_is_laid_out(stored, monkeypatch):
    """A [1, in] row with strides (1, 1), as a one-token product returns its [1, out] result and
    the next product (w2 after SwiGLU) receives it, gets the contiguous row's product: bmm would
    take that column through a plain running-sum loop, 3-8× slower and less exact."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(1, 1536, generator=g), torch.randn(576, 1536, generator=g).to(stored)
    strided = x.reshape(1536, 1).T  # the same values, strides (1, 1)
    assert strided.stride() == (1, 1)
    assert torch.equal(linear(strided, w, torch.float32, "cpu"), linear(x, w, torch.float32, "cpu"))


def test_one_token_upcast_slice_by_slice_is_split_per_core_into_the_same_product(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(upcast, "SPLIT_BYTES", 0)  # every slice split, the last (shorter) one too
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(1, 4096, generator=g), torch.randn(1030, 4096, generator=g).bfloat16()
    exact = x.double() @ w.double().T  # [1, 1030]: 4 MiB slices of 256 rows, then 6
    out = linear(x, w, torch.float32, "cpu")
    assert (out.double() - exact).abs().max() <= 2 * ((x @ w.float().T).double() - exact).abs().max()


def test_one_token_through_resident_weights_equals_the_stored_weights(tiny):
    weights = upcast.resident(tiny.weights, torch.float32)
    tokens = torch.tensor(PROMPT)
    cached = {}
    for name, w in (("resident", weights), ("stored", tiny.weights)):
        cache = batched.KVCache.allocate(tiny.args, len(PROMPT), torch.float32)
        batched.forward(tokens[:-1], w, tiny.args, cache=cache)
        cached[name] = batched.forward(tokens[-1:], w, tiny.args, cache=cache, start=len(PROMPT) - 1, last_only=True)
    torch.testing.assert_close(cached["resident"], cached["stored"], rtol=1e-5, atol=1e-5)
    assert cached["resident"].argmax() == cached["stored"].argmax()


def test_a_model_over_the_budget_stays_as_stored(tiny):
    assert upcast.resident(tiny.weights, torch.float32, budget=1 << 20) is tiny.weights


def test_weights_already_in_the_compute_dtype_are_not_copied(tiny):
    weights = upcast.resident(tiny.weights, torch.float32)
    assert upcast.resident(weights, torch.float32) is weights


def has_cpp_compiler() -> bool:
    """Whether torch.compile's CPU backend (inductor) finds a working C++ compiler."""
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception:
        return False
    return True


@pytest.mark.skipif(not has_cpp_compiler(), reason="torch.compile needs a C++ compiler (g++ or clang); none found")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch's own, compiling
def test_the_compiled_one_token_product_equals_the_upcast_product(monkeypatch):
    # Compiles one [3000, 512] kernel: about 11 s the first time, cached on disk after.
    monkeypatch.setenv("LLAMA3_REFERENCE_COMPILE", "1")
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(1, 512, generator=g), torch.randn(3000, 512, generator=g).bfloat16()
    exact = x.double() @ w.double().T  # [1, 3000]: both sum 512 products, in different orders
    compiled, eager = linear(x, w, torch.float32, "cpu").double(), (x @ w.float().T).double()
    assert (compiled - exact).abs().max() <= 2 * (eager - exact).abs().max()
