"""The model's hyper-parameters: one frozen `ModelArgs`, as Meta's `params.json` spells them.

Meta ships each checkpoint with a `params.json` such as Llama 3 8B's:

    {"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256,
     "multiple_of": 1024, "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0}

Every size the forward pass needs is either one of these fields or derived from them here,
in one place (`head_dim`, `hidden_dim`, `n_rep`), so no other file hard-codes a number.
Reading the file itself (and the other formats' hyper-parameters) is `formats/params.py`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import InputError, is_finite_number, is_int

# Meta's params.json keys, in the order Meta writes them.
META_FIELDS = (
    "dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "multiple_of",
    "ffn_dim_multiplier", "norm_eps", "rope_theta", "use_scaled_rope", "max_seq_len",
)


@dataclass(frozen=True)
class ModelArgs:
    dim: int  # D: width of the residual stream (4096 in Llama 3 8B)
    n_layers: int  # number of transformer blocks (32)
    n_heads: int  # H: query heads per layer (32)
    vocab_size: int  # V: rows of the embedding table (128,256 = 128,000 BPE + 256 special)
    n_kv_heads: int | None = None  # K: key/value heads, shared by H/K query heads (8); None means H
    multiple_of: int = 256  # the SwiGLU hidden size is rounded up to a multiple of this
    ffn_dim_multiplier: float | None = None  # scales the SwiGLU hidden size before rounding (1.3)
    norm_eps: float = 1e-5  # added inside RMSNorm's square root, so a zero vector stays finite
    rope_theta: float = 500_000.0  # RoPE base: pair j turns at theta^(-2j/d) radians per position
    use_scaled_rope: bool = False  # Llama 3.1+: stretch the low RoPE frequencies for long context
    max_seq_len: int = 8192  # longest prompt (plus generation) the model is used for
    # Llama 3.1 / 3.2 RoPE scaling. Meta's code hard-codes these for 3.1 (factor 8); 3.2 uses 32.
    rope_scale_factor: float = 8.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_seq_len: int = 8192

    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        problem = _first_problem(self)
        if problem is not None:
            raise InputError(problem)
        for name in REAL_VALUED:  # 1e40 written as 10000…0 in a JSON file is an int: torch takes no int past 2**63
            if getattr(self, name) is not None:
                object.__setattr__(self, name, float(getattr(self, name)))

    # --- derived sizes: computed here and nowhere else ---

    @property
    def head_dim(self) -> int:
        """d = D / H: the width of one attention head (4096 / 32 = 128)."""
        return self.dim // self.n_heads

    @property
    def n_rep(self) -> int:
        """How many query heads share one key/value head (32 / 8 = 4)."""
        return self.n_heads // self.n_kv_heads

    @property
    def hidden_dim(self) -> int:
        """SwiGLU hidden size by Meta's rule: 2/3 of 4·D, times the multiplier, rounded up.

        Llama 3 8B: 4·4096 = 16384 → ·2/3 → 10922 → ·1.3 → 14198 → up to a multiple of 1024 → 14336.
        The 2/3 keeps SwiGLU's three matrices about as large as a plain FFN's two.
        """
        hidden = int(2 * (4 * self.dim) / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)

    def n_params(self) -> int:
        """Number of parameters, counting `output.weight` separately from the embeddings."""
        D, d, H, K, F, V = self.dim, self.head_dim, self.n_heads, self.n_kv_heads, self.hidden_dim, self.vocab_size
        per_layer = D * H * d + 2 * D * K * d + H * d * D + 3 * D * F + 2 * D
        return 2 * V * D + self.n_layers * per_layer + D

    # --- params.json ---

    def to_params(self) -> dict:
        """The fields as Meta's `params.json` spells them (RoPE-scaling extras only when used)."""
        params = {f: getattr(self, f) for f in META_FIELDS}
        if self.ffn_dim_multiplier is None:
            del params["ffn_dim_multiplier"]
        if self.use_scaled_rope:
            params["rope_scaling"] = {
                "factor": self.rope_scale_factor,
                "low_freq_factor": self.rope_low_freq_factor,
                "high_freq_factor": self.rope_high_freq_factor,
                "original_max_position_embeddings": self.rope_original_max_seq_len,
            }
        return params

    def replace(self, **changes) -> "ModelArgs":
        return dataclasses.replace(self, **changes)


def expected_shapes(args: ModelArgs) -> dict[str, tuple[int, ...]]:
    """Every tensor name in Meta's checkpoint, in Meta's order, with its shape.

    Llama 3 8B: tok_embeddings.weight (128256, 4096), layers.0.attention.wk.weight (1024, 4096), ...
    """
    D, H, K, d, F, V = args.dim, args.n_heads, args.n_kv_heads, args.head_dim, args.hidden_dim, args.vocab_size
    shapes = {"tok_embeddings.weight": (V, D)}
    for i in range(args.n_layers):
        shapes.update({
            f"layers.{i}.attention.wq.weight": (H * d, D),
            f"layers.{i}.attention.wk.weight": (K * d, D),
            f"layers.{i}.attention.wv.weight": (K * d, D),
            f"layers.{i}.attention.wo.weight": (D, H * d),
            f"layers.{i}.feed_forward.w1.weight": (F, D),
            f"layers.{i}.feed_forward.w2.weight": (D, F),
            f"layers.{i}.feed_forward.w3.weight": (F, D),
            f"layers.{i}.attention_norm.weight": (D,),
            f"layers.{i}.ffn_norm.weight": (D,),
        })
    shapes["norm.weight"] = (D,)
    shapes["output.weight"] = (V, D)  # absent when tied to tok_embeddings (Llama 3.2 1B/3B)
    return shapes


# Upper bounds far above any released Llama (405B: 126 layers, dim 16,384, 128 heads, 128,256
# tokens, 131,072 positions), checked before any size is derived from them.
PLAUSIBLE = {"n_layers": 1024, "dim": 1 << 17, "n_heads": 1024, "n_kv_heads": 1024, "vocab_size": 1 << 22,
             "max_seq_len": 1 << 24, "multiple_of": 1 << 20}


REAL_VALUED = ("norm_eps", "rope_theta", "rope_scale_factor", "rope_low_freq_factor", "rope_high_freq_factor",
               "ffn_dim_multiplier")


def _first_problem(a: ModelArgs) -> str | None:
    """The first thing wrong with `a`, as a sentence naming the field, or None."""
    for name in ("dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "multiple_of",
                 "max_seq_len", "rope_original_max_seq_len"):
        value = getattr(a, name)
        if not is_int(value) or value < 1:
            return f"{name} must be a positive integer, got {value!r}"
    for name, most in PLAUSIBLE.items():  # a few bytes must not cost minutes or gigabytes
        if getattr(a, name) > most:
            return f"{name} {getattr(a, name):,} is not a plausible model (at most {most:,})"
    for name in ("norm_eps", "rope_theta", "rope_scale_factor", "rope_low_freq_factor",
                 "rope_high_freq_factor"):
        value = getattr(a, name)
        if not (is_finite_number(value) and value > 0):
            return f"{name} must be a positive finite number, got {value!r}"
    if a.rope_theta <= 1:  # θ^(−2j/d) would grow with j: angles past float32's range, cos and sin NaN
        return f"rope_theta must be larger than 1 (Llama 3: 500,000), got {a.rope_theta!r}"
    if a.norm_eps >= 1:  # eps would swamp mean(x²) for any normal activation: every output near 0
        return f"norm_eps must be below 1 (Llama 3: 1e-05), got {a.norm_eps!r}"
    m = a.ffn_dim_multiplier
    if m is not None and not (is_finite_number(m) and 0 < m <= 64):  # 1e308 would overflow the hidden size
        return f"ffn_dim_multiplier must be a number in (0, 64] or null (Llama 3: 1.3), got {m!r}"
    if a.hidden_dim < 1:
        return f"ffn_dim_multiplier {m!r} leaves no SwiGLU hidden units (hidden size {a.hidden_dim})"
    if not isinstance(a.use_scaled_rope, bool):
        return f"use_scaled_rope must be true or false, got {a.use_scaled_rope!r}"
    if a.dim % a.n_heads:
        return f"dim {a.dim} is not divisible by n_heads {a.n_heads}"
    if (a.dim // a.n_heads) % 2:
        return f"head_dim = dim / n_heads = {a.dim // a.n_heads} must be even: RoPE rotates pairs of dimensions"
    if a.n_kv_heads > a.n_heads or a.n_heads % a.n_kv_heads:
        return f"n_heads {a.n_heads} is not a multiple of n_kv_heads {a.n_kv_heads}"
    if a.use_scaled_rope and a.rope_high_freq_factor <= a.rope_low_freq_factor:
        return (f"rope_scaling high_freq_factor {a.rope_high_freq_factor} must be larger "
                f"than low_freq_factor {a.rope_low_freq_factor}")
    return None


# --- presets: the published models, and the built-in tiny one ---

_LLAMA3_8B = ModelArgs(dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, vocab_size=128_256,
                       multiple_of=1024, ffn_dim_multiplier=1.3, norm_eps=1e-5, rope_theta=500_000.0)

PRESETS: dict[str, ModelArgs] = {
    # The built-in model for walk, tests and docs: the real vocabulary and tokenizer, small
    # dims, and grouped-query attention with 4 query heads per kv head, like the 8B.
    "tiny": ModelArgs(dim=128, n_layers=4, n_heads=8, n_kv_heads=2, vocab_size=128_256,
                      multiple_of=64, ffn_dim_multiplier=1.3, norm_eps=1e-5, rope_theta=500_000.0,
                      max_seq_len=2048),
    "llama3-8b": _LLAMA3_8B,
    "llama3-70b": ModelArgs(dim=8192, n_layers=80, n_heads=64, n_kv_heads=8, vocab_size=128_256,
                            multiple_of=4096, ffn_dim_multiplier=1.3, norm_eps=1e-5, rope_theta=500_000.0),
    "llama3.1-8b": _LLAMA3_8B.replace(use_scaled_rope=True, max_seq_len=131_072, rope_scale_factor=8.0),
    "llama3.1-405b": ModelArgs(dim=16384, n_layers=126, n_heads=128, n_kv_heads=8, vocab_size=128_256,
                               multiple_of=4096, ffn_dim_multiplier=1.2, norm_eps=1e-5, rope_theta=500_000.0,
                               use_scaled_rope=True, max_seq_len=131_072, rope_scale_factor=8.0),
    "llama3.2-1b": ModelArgs(dim=2048, n_layers=16, n_heads=32, n_kv_heads=8, vocab_size=128_256,
                             multiple_of=256, ffn_dim_multiplier=1.5, norm_eps=1e-5, rope_theta=500_000.0,
                             use_scaled_rope=True, max_seq_len=131_072, rope_scale_factor=32.0),
    "llama3.2-3b": ModelArgs(dim=3072, n_layers=28, n_heads=24, n_kv_heads=8, vocab_size=128_256,
                             multiple_of=256, ffn_dim_multiplier=1.0, norm_eps=1e-5, rope_theta=500_000.0,
                             use_scaled_rope=True, max_seq_len=131_072, rope_scale_factor=32.0),
}


# Llama 3.2 1B and 3B tie their output projection to the embeddings. Meta's consolidated.00.pth
# stores output.weight all the same, a copy of tok_embeddings.weight, and synthesize() writes it so;
# Hugging Face's and GGUF's files leave it out (a checkpoint without one is tied, whatever its name).
TIED_PRESETS = frozenset({"llama3.2-1b", "llama3.2-3b"})


def preset(name: str, n_layers: int | None = None) -> ModelArgs:
    """A preset by name, e.g. `preset("llama3-8b", n_layers=2)` for an 8B-shaped benchmark model."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    args = PRESETS[name]
    return args if n_layers is None else args.replace(n_layers=n_layers)
