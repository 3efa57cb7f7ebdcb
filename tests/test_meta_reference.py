"""A third reference beside goldens and transformers: Meta's own model code, on our checkpoints.

PyPI's llama-models ships Meta's llama_models/llama3/model.py (the Transformer, built on
fairscale's model-parallel layers) and generation.py (`Llama3.build`, `Llama3.generate`). Here
`Llama3.build` loads a synthesized checkpoint as it stands, on the CPU with torch.distributed on
gloo, world size 1 (and 2, in two processes: tests/test_meta_reference_ranks.py). Every trace
tensor its modules show to hooks (with q_rotated and k_rotated from its apply_rotary_emb, and
freqs_cis, which it keeps) and its greedy tokens are ours in float32, bit for bit.

Meta's build leaves the weights in bfloat16 on the CPU (its loader sets that default dtype); the
model is then run in float32, as our pass runs by default. Its generation.py imports the vision
model, which needs torchvision: where that is missing, that one module is stood in for (a text
checkpoint never builds it). Without fairscale (the test extra) these tests skip.
"""

import contextlib
import importlib.util
import io
import sys
import types
import warnings

import pytest
import torch

fairscale = pytest.importorskip("fairscale", reason="Meta's model.py needs fairscale: pip install fairscale==0.4.13 "
                                                    "(in the test extra)")

from reference.config import PRESETS  # noqa: E402
from reference.formats import load_checkpoint  # noqa: E402
from reference.formats.synthesize import synthesize  # noqa: E402
from reference.generate import generate  # noqa: E402
from reference.model import freqs_cis  # noqa: E402
from reference.run import run_trace  # noqa: E402

PROMPT = "The capital of France is"
VISION = "llama_models.llama3.multimodal.model"


@contextlib.contextmanager
def process_settings_kept():
    """Undo what Llama3.build changes for the whole process: the default dtype (bfloat16 on the
    CPU), the default device, the random seed."""
    dtype, rng = torch.get_default_dtype(), torch.get_rng_state()
    device = getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None)
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)
        torch.set_rng_state(rng)
        torch.set_default_device(None if device is None else device.device)


def stand_in_for_the_vision_model() -> bool:
    """generation.py imports the vision model, which imports torchvision: without torchvision, a
    module holding only the class name it imports (a text checkpoint never builds it). True if so."""
    if importlib.util.find_spec("torchvision") is not None or VISION in sys.modules:
        return False
    sys.modules[VISION] = types.ModuleType(VISION)
    sys.modules[VISION].CrossAttentionTransformer = type("CrossAttentionTransformer", (), {})
    return True


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """`build(ckpt_dir)`: Meta's `Llama3.build` on the CPU, in a gloo group of one process."""
    import torch.distributed as dist
    from fairscale.nn.model_parallel.initialize import destroy_model_parallel

    stand_in = stand_in_for_the_vision_model()
    from llama_models.llama3.generation import Llama3

    def llama3(ckpt_dir, max_seq_len: int = 64):
        with process_settings_kept(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's deprecation of set_default_tensor_type, which Meta calls
            return Llama3.build(str(ckpt_dir), max_seq_len=max_seq_len, max_batch_size=1, world_size=1, device="cpu")

    dist.init_process_group("gloo", init_method=f"file://{tmp_path_factory.mktemp('gloo') / 'store'}", rank=0,
                            world_size=1)
    try:
        yield llama3
    finally:
        destroy_model_parallel()
        dist.destroy_process_group()
        if stand_in:
            sys.modules.pop(VISION, None)


def meta_trace(model, tokens: list[int]) -> dict[str, torch.Tensor]:
    """Meta's Transformer's tensors under TRACE.md's names: hooks on its modules (a pre-hook for
    a module's input: h, attention), its apply_rotary_emb wrapped, its freqs_cis as kept."""
    from llama_models.llama3 import model as meta_model

    d, trace = model.params.dim // model.params.n_heads, {}

    def keep(name, per_head=False, pre=False):  # [T, n·d] -> [n, T, d]: a rank's n heads, all of them on one
        def hook(module, args, result=None):
            t = (args[0] if pre else result)[0].detach()
            trace[name] = t.unflatten(-1, (-1, d)).transpose(0, 1) if per_head else t
        return hook

    hooks = [model.tok_embeddings.register_forward_hook(keep("embeddings")),
             model.norm.register_forward_hook(keep("norm")), model.output.register_forward_hook(keep("logits"))]
    for i, layer in enumerate(model.layers):
        p, attn = f"layers.{i}.", layer.attention
        hooks += [layer.attention_norm.register_forward_hook(keep(p + "attention_norm")),
                  attn.wq.register_forward_hook(keep(p + "q", per_head=True)),
                  attn.wk.register_forward_hook(keep(p + "k", per_head=True)),
                  attn.wv.register_forward_hook(keep(p + "v", per_head=True)),
                  attn.wo.register_forward_pre_hook(keep(p + "attention", pre=True)),
                  attn.wo.register_forward_hook(keep(p + "attention_out")),
                  layer.ffn_norm.register_forward_pre_hook(keep(p + "h", pre=True)),
                  layer.ffn_norm.register_forward_hook(keep(p + "ffn_norm")),
                  layer.feed_forward.register_forward_hook(keep(p + "ffn_out")),
                  layer.register_forward_hook(keep(p + "out"))]
    rotated, original = [], meta_model.apply_rotary_emb

    def recording(xq, xk, freqs_cis):  # [B, T, n, d] each
        q, k = original(xq, xk, freqs_cis)
        rotated.append((q[0].transpose(0, 1), k[0].transpose(0, 1)))
        return q, k

    meta_model.apply_rotary_emb = recording
    try:
        with torch.inference_mode():
            model(torch.tensor([tokens]), 0)
    finally:
        meta_model.apply_rotary_emb = original
        for h in hooks:
            h.remove()
    for i, (q, k) in enumerate(rotated):
        trace[f"layers.{i}.q_rotated"], trace[f"layers.{i}.k_rotated"] = q, k
    trace["freqs_cis"] = torch.view_as_real(model.freqs_cis[:len(tokens)])  # [T, d/2, 2]
    return trace


def greedy(llama, tokens: list[int], n: int) -> list[int]:
    """Meta's Llama3.generate at temperature 0: the new tokens, up to and without a stop token."""
    from llama_models.llama3.chat_format import LLMInput

    ids = []
    for results in llama.generate([LLMInput(tokens=tokens)], temperature=0, max_gen_len=n):
        if results[0].token in llama.tokenizer.stop_tokens:
            break
        ids.append(results[0].token)
    return ids


@pytest.fixture(scope="module")
def tokens(tiny):
    return tiny.tokenizer.encode(PROMPT, bos=True, eos=False)


@pytest.fixture(scope="module")
def meta_tiny(build, tiny_dir):
    """Meta's model of the tiny checkpoint, in float32."""
    llama = build(tiny_dir)
    llama.model.float()
    return llama


HIDDEN = {"tokens", "scores", "attention_weights", "next_token"}  # inside Meta's forward, or no tensor at all


def test_every_tensor_metas_model_shows_equals_our_literal_pass_bit_for_bit_in_float32(meta_tiny, tiny, tokens):
    theirs = meta_trace(meta_tiny.model, tokens)
    ours = run_trace(tokens, tiny.weights, tiny.args, dtype=torch.float32, path="literal")
    assert set(theirs) == {n for n in ours if n.rsplit(".", 1)[-1] not in HIDDEN}
    differ = {n: float((t - ours[n]).abs().max()) for n, t in theirs.items() if not torch.equal(t, ours[n])}
    assert not differ, differ


def test_every_tensor_metas_model_shows_equals_our_batched_pass_within_float32_rounding(meta_tiny, tiny, tokens):
    """The batched pass sums in another order (all heads at once; one block of rows per core), so
    it agrees to float32's rounding, not to the bit: within 1e-5 of each tensor's scale."""
    theirs = meta_trace(meta_tiny.model, tokens)
    ours = run_trace(tokens, tiny.weights, tiny.args, dtype=torch.float32, path="batched")
    errors = {n: float((t - ours[n]).abs().max() / t.abs().max().clamp_min(1e-30)) for n, t in theirs.items()}
    assert max(errors.values()) < 1e-5, max(errors.items(), key=lambda item: item[1])


def test_metas_greedy_tokens_are_ours(meta_tiny, tiny, tokens):
    ours = list(generate(tokens, tiny.weights, tiny.args, max_new_tokens=8, temperature=0,
                         stop_tokens=meta_tiny.tokenizer.stop_tokens))
    assert greedy(meta_tiny, tokens, 8) == ours and len(ours) == 8


def test_a_synthesized_llama32_checkpoint_stores_output_weight_and_metas_loader_takes_it(build, tmp_path):
    """Meta's loader is strict: a tied file without output.weight would fail with a missing key."""
    args = PRESETS["llama3.2-1b"].replace(dim=64, n_layers=1, n_heads=4, n_kv_heads=2, multiple_of=32)
    ckpt = load_checkpoint(synthesize(args, seed=0, out_dir=tmp_path / "c", tied_copy=True))
    llama = build(ckpt.path)
    assert torch.equal(llama.model.output.weight, llama.model.tok_embeddings.weight)
    tokens = ckpt.tokenizer.encode(PROMPT, bos=True, eos=False)
    theirs = meta_trace(llama.model.float(), tokens)
    assert torch.equal(theirs["embeddings"], run_trace(tokens, ckpt.weights, ckpt.args)["embeddings"])


def test_metas_model_py_scales_rope_by_8_whatever_the_checkpoint_says(build, tmp_path):
    """The factor-8 trap: model.py's apply_scaling hard-codes Llama 3.1's scale_factor = 8; Llama
    3.2 1B/3B use 32 (their model card; our preset), so Meta's model.py turns 3.2's slowest pairs
    by other angles than the model was trained with."""
    args = PRESETS["llama3.2-1b"].replace(dim=64, n_layers=1, n_heads=4, n_kv_heads=2, multiple_of=32)
    llama = build(synthesize(args, seed=0, out_dir=tmp_path / "c", tied_copy=True))
    theirs = llama.model.freqs_cis[:100]  # [T, d/2] complex64
    for factor, same in ((8.0, True), (32.0, False)):
        ours = freqs_cis(args.replace(rope_scale_factor=factor), 100, dtype=torch.float32)
        assert torch.allclose(ours, theirs, atol=1e-5) == same, factor
