"""Our pass beside Hugging Face transformers' `LlamaForCausalLM`, tensor by tensor.

Both run in float32 on the same bf16 weights (converted by `formats/layout.py`), HF with eager
attention. Forward hooks on HF's modules catch each intermediate; queries and keys are put
back into Meta's order (`layout.activation_to_adjacent_pairs`) before comparing. The error of a
tensor is max |ours − HF| / max |HF|: relative to its own scale, so one number means the
same for embeddings of size 1 and logits of size 10. The target is 1e-4 everywhere.

`scores` is the one trace tensor HF never materialises outside a function (it is computed
and soft-maxed inside `eager_attention_forward`); `attention_weights`, its softmax, is compared.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import WALKTHROUGH_PROMPT
from ..config import ModelArgs, preset
from ..errors import InputError
from ..formats import layout
from ..trace import FINAL_STEPS, LAYER_STEPS, STEPS

TARGET = 1e-4  # of each tensor's own scale
# The float tensors compared, in pipeline order: not the token ids, and not `scores` (see above).
KINDS = tuple(k for k in (*STEPS, *LAYER_STEPS, *FINAL_STEPS) if k not in ("tokens", "scores", "next_token"))


@dataclass(frozen=True)
class ParityConfig:
    name: str
    args: ModelArgs
    tied: bool  # no output.weight: the logits reuse tok_embeddings (Llama 3.2 1B/3B)
    prompt: str | None  # text, or None for `n_random` random token ids
    n_random: int = 0
    what: str = ""

    def tokens(self, tokenizer) -> list[int]:
        if self.prompt is not None:
            return tokenizer.encode(self.prompt, bos=True, eos=False)
        g = torch.Generator().manual_seed(0)
        return [tokenizer.bos_id] + torch.randint(0, 128_000, (self.n_random - 1,), generator=g).tolist()


CONFIGS = {c.name: c for c in (
    ParityConfig("tiny", preset("tiny"), tied=False, prompt=WALKTHROUGH_PROMPT,
                 what="the built-in tiny model (8 heads, 2 kv heads), the walk-through prompt, 17 tokens"),
    # 6 query heads per 2 kv heads (3 per group), head_dim 14 (7 RoPE pairs), an odd SwiGLU width
    # (291), a vocabulary with 3 unused rows, Llama 2's theta and eps, tied output like Llama 3.2.
    ParityConfig("odd-shapes", ModelArgs(dim=84, n_layers=2, n_heads=6, n_kv_heads=2, vocab_size=128_259, multiple_of=1,
                                         ffn_dim_multiplier=1.3, norm_eps=1e-6, rope_theta=10_000.0),
                 tied=True, prompt="究極の疑問の答えは42。الجواب هو ٤٢. 🙂🚀👩‍💻",
                 what="dim 84, 6 heads / 2 kv heads, head_dim 14, ffn 291, tied, multilingual prompt, 30 tokens"),
    # head_dim 32 has RoPE pairs in all three of Llama 3.1's regimes: kept (wavelength < 2048),
    # blended (2048-8192) and divided by 8 (> 8192).
    ParityConfig("llama3.1-scaled-rope", ModelArgs(dim=256, n_layers=2, n_heads=8, n_kv_heads=2, vocab_size=128_256,
                                                   multiple_of=64, ffn_dim_multiplier=1.3, use_scaled_rope=True,
                                                   rope_scale_factor=8.0, max_seq_len=131_072),
                 tied=False, prompt=None, n_random=300,
                 what="dim 256, head_dim 32, RoPE scaled as Llama 3.1 (factor 8), 300 random tokens"),
)}


LLAMA3_BOS, LLAMA3_EOS = 128000, 128001


def hf_config(args: ModelArgs, tied: bool = False, **overrides):
    """A `transformers.LlamaConfig` for the same model, with Llama 3.1's RoPE scaling if used.

    transformers 5 spells RoPE settings `rope_parameters` (4.x: `rope_theta` + `rope_scaling`);
    rope_type "llama3" is exactly `model.scale_rope_frequencies`.
    """
    from transformers import LlamaConfig

    rope = {"rope_type": "default", "rope_theta": args.rope_theta}
    if args.use_scaled_rope:
        rope.update(rope_type="llama3", factor=args.rope_scale_factor, low_freq_factor=args.rope_low_freq_factor,
                    high_freq_factor=args.rope_high_freq_factor,
                    original_max_position_embeddings=args.rope_original_max_seq_len)
    fields = dict(
        vocab_size=args.vocab_size, hidden_size=args.dim, intermediate_size=args.hidden_dim,
        num_hidden_layers=args.n_layers, num_attention_heads=args.n_heads, num_key_value_heads=args.n_kv_heads,
        head_dim=args.head_dim, hidden_act="silu", max_position_embeddings=args.max_seq_len,
        rms_norm_eps=args.norm_eps, rope_parameters=rope, tie_word_embeddings=tied,
        attention_bias=False, mlp_bias=False,
        # Llama 3's <|begin_of_text|> and <|end_of_text|>; a smaller vocabulary (SmolLM2's 49,152)
        # has other special tokens, so it gets none here rather than ids outside it.
        bos_token_id=LLAMA3_BOS if LLAMA3_BOS < args.vocab_size else None,
        eos_token_id=LLAMA3_EOS if LLAMA3_EOS < args.vocab_size else None,
    )
    fields.update(overrides)
    return LlamaConfig(**fields)


def hf_model(weights, args: ModelArgs, tied: bool, *, attn: str = "eager", dtype: torch.dtype = torch.float32,
             device="cpu", tokenizer=None):
    """transformers' LlamaForCausalLM holding exactly our weights, in `dtype` (a full copy, as
    transformers keeps them); eager attention by default: the plain softmax(q·kᵀ/√d)·v, whose
    weights it can return. The one place that builds it: parity, tests and the benchmark use it.
    With a `tokenizer`, its BOS/EOS ids are the config's (a GGUF's own, e.g. SmolLM2's)."""
    from transformers import LlamaForCausalLM

    ids = {} if tokenizer is None else {"bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.eos_id}
    config = hf_config(args, tied=tied, **ids)
    config._attn_implementation = attn
    try:  # skip the random initialisation (seconds for a 128k vocabulary): every weight is loaded next
        from transformers.initialization import no_init_weights
    except ImportError:
        no_init_weights = contextlib.nullcontext
    with no_init_weights():
        model = LlamaForCausalLM(config).eval()
    state = {name: w.to(device=device, dtype=dtype) for name, w in layout.meta_to_hf_state_dict(weights, args).items()}
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)  # assign: no second copy
    if tied:
        model.tie_weights()  # lm_head.weight = the embeddings just assigned (no_init_weights skipped it)
    if unexpected or set(missing) - ({"lm_head.weight"} if tied else set()):
        raise RuntimeError(f"state dict does not fit LlamaForCausalLM: missing {missing}, unexpected {unexpected}")
    if tied and model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        raise RuntimeError("tie_word_embeddings did not tie lm_head to embed_tokens")
    return model.to(device)  # the buffers (RoPE's inv_freq) too


def _batch_item(output) -> torch.Tensor:
    """The tensor of batch item 0 from a module's output (a tensor, or a tuple starting with one)."""
    return (output[0] if isinstance(output, tuple) else output)[0].detach()


def hf_trace(model, tokens: list[int]) -> dict[str, torch.Tensor]:
    """HF's tensors under our trace names and in our layouts, caught with forward hooks."""
    from transformers.models.llama import modeling_llama

    c = model.config
    H, K, d = c.num_attention_heads, c.num_key_value_heads, c.head_dim
    trace: dict[str, torch.Tensor] = {}

    def heads(n, permuted):  # [T, n·d] -> [n, T, d], queries/keys back in Meta's pair order
        def f(t):
            t = t.unflatten(-1, (n, d)).transpose(0, 1)
            return layout.activation_to_adjacent_pairs(t) if permuted else t
        return f

    def after(module, name, f=lambda t: t):
        return module.register_forward_hook(lambda m, args, out: trace.__setitem__(name, f(_batch_item(out))))

    def before(module, name):
        return module.register_forward_pre_hook(lambda m, args: trace.__setitem__(name, args[0][0].detach()))

    cos_sin = lambda m, args, out: trace.__setitem__(  # noqa: E731 - HF repeats the d/2 angles twice
        "freqs_cis", torch.stack([out[0][0, :, : d // 2], out[1][0, :, : d // 2]], dim=-1))
    hooks = [
        after(model.model.embed_tokens, "embeddings"),
        model.model.rotary_emb.register_forward_hook(cos_sin),
        after(model.model.norm, "norm"),
        after(model.lm_head, "logits"),
    ]
    for i, layer in enumerate(model.model.layers):
        p, attn = f"layers.{i}.", layer.self_attn
        hooks += [
            after(layer.input_layernorm, p + "attention_norm"),
            after(attn.q_proj, p + "q", heads(H, True)),
            after(attn.k_proj, p + "k", heads(K, True)),
            after(attn.v_proj, p + "v", heads(K, False)),
            before(attn.o_proj, p + "attention"),
            after(attn.o_proj, p + "attention_out"),
            before(layer.post_attention_layernorm, p + "h"),
            after(layer.post_attention_layernorm, p + "ffn_norm"),
            after(layer.mlp, p + "ffn_out"),
            after(layer, p + "out"),
        ]
    rotated = []  # apply_rotary_pos_emb is a plain function, not a module: wrap it to see its output
    original = modeling_llama.apply_rotary_pos_emb

    def recording(*args, **kwargs):
        q, k = original(*args, **kwargs)
        rotated.append((q[0].detach(), k[0].detach()))
        return q, k

    modeling_llama.apply_rotary_pos_emb = recording
    try:
        with torch.no_grad():
            out = model(torch.tensor([tokens]), output_attentions=True)
    finally:
        modeling_llama.apply_rotary_pos_emb = original
        for h in hooks:
            h.remove()
    if len(rotated) != c.num_hidden_layers:
        raise RuntimeError(f"apply_rotary_pos_emb was called {len(rotated)} times for {c.num_hidden_layers} "
                           "layers; this transformers version applies RoPE some other way")
    for i, ((q, k), probs) in enumerate(zip(rotated, out.attentions)):
        trace[f"layers.{i}.q_rotated"] = layout.activation_to_adjacent_pairs(q)  # [H, T, d]
        trace[f"layers.{i}.k_rotated"] = layout.activation_to_adjacent_pairs(k)  # [K, T, d]
        trace[f"layers.{i}.attention_weights"] = probs[0].detach()  # [H, T, T]
    trace["next_token"] = trace["logits"][-1].argmax()
    return trace


def relative_errors(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> dict[str, float]:
    """max |ours − theirs| / max |theirs| for every float tensor both have, by trace name."""
    errors = {}
    for name, t in theirs.items():
        if t.is_floating_point():
            a, b = ours[name], t
            if a.shape != b.shape:
                raise RuntimeError(f"{name}: our shape {list(a.shape)}, transformers' {list(b.shape)}")
            # in float32: a difference of two nearby float32 numbers is exact (Sterbenz)
            errors[name] = float((a - b).abs().max()) / float(b.abs().max())
    return errors


def worst_by_kind(errors: dict[str, float]) -> dict[str, float]:
    """The worst error over layers for each kind: 'layers.3.q' and 'layers.0.q' are both 'q'."""
    worst: dict[str, float] = {}
    for name, err in errors.items():
        kind = name.rsplit(".", 1)[-1]
        worst[kind] = max(worst.get(kind, 0.0), err)
    return {k: worst[k] for k in KINDS}


@dataclass
class Result:
    config: ParityConfig
    n_tokens: int
    errors: dict[str, float]  # trace name -> relative error
    next_token: tuple[int, int]  # (ours, transformers')

    @property
    def worst(self) -> dict[str, float]:
        return worst_by_kind(self.errors)


def measure(config: ParityConfig, ckpt_dir: str | Path | None = None) -> Result:
    """Synthesize (seed 0) or load the config's checkpoint, run both, and compare."""
    from ..formats import load_checkpoint
    from ..formats.synthesize import synthesize
    from ..run import run_trace

    with contextlib.ExitStack() as stack:
        if ckpt_dir is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="llama3-parity-"))
            ckpt_dir = synthesize(config.args, seed=0, out_dir=Path(tmp) / config.name, tied=config.tied)
        ckpt = load_checkpoint(ckpt_dir)
        tokens = config.tokens(ckpt.tokenizer)
        ours = run_trace(tokens, ckpt.weights, ckpt.args, dtype=torch.float32, path="literal")
        theirs = hf_trace(hf_model(ckpt.weights, ckpt.args, config.tied), tokens)
        errors = relative_errors(ours, theirs)
        return Result(config, len(tokens), errors, (int(ours["next_token"]), int(theirs["next_token"])))


def measure_all(names: list[str] | None = None) -> list[Result]:
    unknown = [n for n in names or [] if n not in CONFIGS]
    if unknown:
        raise InputError(f"--config {unknown[0]}: no such configuration (known: {', '.join(CONFIGS)})")
    try:
        import transformers  # noqa: F401
    except ModuleNotFoundError:
        raise InputError("parity needs transformers: pip install -e '.[test]'") from None
    return [measure(CONFIGS[n]) for n in names or CONFIGS]


def markdown_table(results: list[Result]) -> str:
    """The worst error of each tensor kind per configuration, as a Markdown table."""
    import transformers

    lines = [f"Worst max |ours − transformers| / max |transformers| over all layers; float32, eager attention "
             f"(transformers {transformers.__version__}, torch {torch.__version__.split('+')[0]}). "
             f"Target: below {TARGET:.0e}.".replace("e-0", "e-"), ""]
    for r in results:
        lines.append(f"- **{r.config.name}**: {r.config.what}")
    lines += ["", "| tensor | " + " | ".join(r.config.name for r in results) + " |",
              "| --- |" + " ---: |" * len(results)]
    for kind in KINDS:
        lines.append(f"| `{kind}` | " + " | ".join(f"{r.worst[kind]:.1e}" for r in results) + " |")
    lines.append("| `scores` | " + " | ".join("not exposed by HF" for _ in results) + " |")
    lines.append("| `next_token` | " + " | ".join(
        f"{a} {'=' if a == b else '≠'} {b}" for a, b in (r.next_token for r in results)) + " |")
    return "\n".join(lines) + "\n"
