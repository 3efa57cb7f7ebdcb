"""Each step of the pass computed the way a known mistake computes it (the ids of causes.py).

`mistakes(name, …)` lists the mistaken versions of the step that makes trace tensor `name`,
each a `replay.Step` of the same inputs. `check` recomputes the divergent tensor under each
and names the one that reproduces the user's. Where the user's own tensor of that step is at
hand, the RoPE base, its first position and the scores' factor are fitted from it, so the
report can say which θ fits rather than only that θ is wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import model
from ..formats.layout import activation_to_adjacent_pairs as to_pairs
from .replay import (ATTENTION, ATTENTION_NORM, ATTENTION_OUT, ATTENTION_WEIGHTS, FFN_NORM, FFN_OUT, FREQS_CIS, H, K,
                     K_ROTATED, NORM, OUT, Q, Q_ROTATED, SCORES, V, Env, ReplayWeights, Step, at, cis, ffn, heads,
                     layer_input, layer_of, masked, raw_scores, weighted_values)
from ..trace import step

COMMON_THETAS = (10_000.0, 500_000.0, 1_000_000.0, 100_000.0, 50_000.0)  # Llama 2, Llama 3, and others
COMMON_STARTS = (1, -1, 2)


@dataclass(frozen=True)
class Mistake:
    cause: str  # an id of causes.CAUSES
    what: str  # how the tensor was computed; "{p}" stands for the layer's prefix, e.g. "layers.2."
    fn: Step
    meaning: str = ""  # what that says about the code, where it is not plain from `what`


def mistakes(name: str, m: ReplayWeights, env: Env, yours: torch.Tensor | None = None) -> list[Mistake]:
    """The known mistakes of the step that computes `name`; `yours`: the user's tensor of it, if given."""
    kind, i = step(name), layer_of(name)
    made = _BY_KIND.get(kind)
    return made(i, m, env, yours) if made else []


# --- RoPE: the base θ, the first position, the pairing ---

def to_halves(x: torch.Tensor) -> torch.Tensor:
    """[..., d] in Meta's order -> Hugging Face's (real parts, then imaginary): the inverse of `to_pairs`."""
    return x.unflatten(-1, (-1, 2)).transpose(-1, -2).flatten(-2)  # [..., d]


def rotate_half_rope(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Hugging Face's RoPE: x·cos + rotate_half(x)·sin, pairing dimension j with j + d/2."""
    cos, sin = torch.cat([c.real, c.real], -1), torch.cat([c.imag, c.imag], -1)  # [T, d]
    x1, x2 = x.chunk(2, dim=-1)  # [..., T, d/2] each
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin  # [..., T, d]


def rope_angles(kind: str, i: int, env: Env, yours: torch.Tensor) -> torch.Tensor:
    """The angle the user turned each (position, pair) by: [T, d/2]."""
    if kind == FREQS_CIS:
        return torch.atan2(yours[..., 1], yours[..., 0])  # [T, d/2]
    source = env[at(i, Q if kind == Q_ROTATED else K)]
    pairs = lambda x: torch.view_as_complex(x.unflatten(-1, (-1, 2)).contiguous())  # noqa: E731 [n, T, d/2]
    return torch.angle((pairs(yours) * pairs(source).conj()).sum(0))  # [T, d/2], summed over heads


def fit_rope(angles: torch.Tensor, d: int) -> tuple[list[float], list[int]]:
    """The bases θ and first positions that fit the angles m·θ^(-2j/d).

    Between positions 0 and 1 pair j turns by θ^(-2j/d) < 1 radian, so θ = turn^(-d/2j);
    at the first position the slowest pair has turned start·turn, far less than π.
    Example: angles of θ = 10000, d = 8, positions 1, 2, … -> ([10000.0, 10000.0, 10000.0], [1]).
    """
    if angles.shape[0] < 2:
        return [], []
    turn = torch.remainder(angles[1] - angles[0] + math.pi, 2 * math.pi) - math.pi  # [d/2]
    j = torch.arange(len(turn), dtype=turn.dtype)
    ok = (j >= 1) & (turn > 1e-12) & (turn < 1)
    thetas = []
    if ok.any():
        base = float(torch.exp(-torch.log(turn[ok]) * d / (2 * j[ok])).median())
        thetas = [float(f"{base:.2g}"), float(f"{base:.3g}"), base]
    start = round(float(angles[0, -1] / turn[-1])) if float(turn[-1]) > 1e-12 else 0
    return thetas, [start] if start and abs(start) < 1 << 20 else []


def _rope(kind: str, i: int, m: ReplayWeights, env: Env, yours) -> list[Mistake]:
    a, d = m.args, m.args.head_dim
    thetas, starts = fit_rope(rope_angles(kind, i, env, yours), d) if yours is not None else ([], [])
    options = [(a.replace(rope_theta=t), 0, "rope-theta", f"RoPE with θ = {t:g} (the checkpoint's: {a.rope_theta:g})")
               for t in dict.fromkeys(thetas + list(COMMON_THETAS)) if t > 1 and abs(t / a.rope_theta - 1) > 1e-6]
    if a.use_scaled_rope:
        options.append((a.replace(use_scaled_rope=False), 0, "rope-theta",
                        f"RoPE with θ = {a.rope_theta:g} but without Llama 3.1's scaling of the low frequencies"))
    options += [(a, s, "rope-positions", f"RoPE with positions starting at {s} instead of 0")
                for s in dict.fromkeys(starts + list(COMMON_STARTS))]
    made = []
    for args, start, cause, what in options:
        def freqs(env, args=args, start=start):
            return model.freqs_cis(args, env[FREQS_CIS].shape[0], start=start, dtype=torch.float64)  # [T, d/2]
        if kind == FREQS_CIS:
            made.append(Mistake(cause, what, lambda env, i, m, f=freqs: torch.view_as_real(f(env))))
        else:
            src = Q if kind == Q_ROTATED else K
            made.append(Mistake(cause, what + f" applied to the correct {{p}}{src}",
                                lambda env, i, m, f=freqs, s=src: model.apply_rope(env[at(i, s)], f(env))))
    return made


def _rotated(kind: str):
    def made(i: int, m: ReplayWeights, env: Env, yours) -> list[Mistake]:
        src = Q if kind == Q_ROTATED else K
        x = lambda env, i: env[at(i, src)]  # noqa: E731
        in_hf_rows = f"RoPE with pairs (2j, 2j+1) applied to the correct {{p}}{src} in Hugging Face's row order"
        on_hf = "that is Meta's pairing on Hugging Face-layout weights — use rotate_half, or undo wq/wk's permutation"
        pairs = [
            Mistake("rope-pairs", f"RoPE with pairs (j, j + d/2) applied to the correct {{p}}{src}",
                    lambda env, i, m: rotate_half_rope(x(env, i), cis(env)),
                    "that is rotate_half on Meta-layout weights — permute wq/wk or pair (2j, 2j+1)"),
            Mistake("rope-pairs", in_hf_rows,
                    lambda env, i, m: to_pairs(model.apply_rope(to_halves(x(env, i)), cis(env))), on_hf),
            Mistake("rope-pairs", in_hf_rows + ", and recorded in that order",  # a trace whose q says nothing of it
                    lambda env, i, m: model.apply_rope(to_halves(x(env, i)), cis(env)), on_hf),
        ]
        return pairs + _rope(kind, i, m, env, yours)
    return made


# --- attention ---

def tiled(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[K, T, ...] -> [H, T, ...] with query head h reading kv head h % K: k.repeat, not repeat_interleave."""
    return x.repeat(n_rep, *([1] * (x.ndim - 1)))


def _scores(i: int, m: ReplayWeights, env: Env, yours) -> list[Mistake]:
    d, D = m.args.head_dim, m.args.dim
    factors = [(1.0, "q·kᵀ without the 1/√d"), (1 / d, "q·kᵀ/d instead of /√d"),
               (1 / math.sqrt(D), "q·kᵀ/√D (the model's width) instead of /√d"), (math.sqrt(d), "q·kᵀ·√d")]
    if yours is not None:
        raw = raw_scores(env, i, m)
        ok = torch.isfinite(yours) & torch.isfinite(masked(raw))
        if ok.any() and float((raw[ok] ** 2).sum()):
            f = float((yours[ok] * raw[ok]).sum() / (raw[ok] ** 2).sum())
            if abs(f * math.sqrt(d) - 1) > 1e-3:
                factors.append((f, f"q·kᵀ times {f:.4g} instead of 1/√d = {1 / math.sqrt(d):.4g}"))
    made = [Mistake("attention-scale", what, lambda env, i, m, f=f: masked(raw_scores(env, i, m) * f))
            for f, what in factors]

    def mask(diagonal: int | None):
        def fn(env, i, m):
            s = raw_scores(env, i, m) / math.sqrt(d)  # [H, T, T]
            hidden = torch.full(s.shape[-2:], float("-inf"), dtype=s.dtype)  # [T, T]
            return s if diagonal is None else s + torch.triu(hidden, diagonal)
        return fn
    made += [Mistake("causal-mask", "the scores without the causal mask", mask(None)),
             Mistake("causal-mask", "the causal mask hiding the diagonal too: a token cannot see itself", mask(0)),
             Mistake("causal-mask", "the causal mask off by one: each token sees the next one too", mask(2))]
    if 1 < m.args.n_rep < m.args.n_heads:
        made.append(Mistake("gqa-grouping", "the scores with the kv heads tiled: query head h read kv head h % K",
                            lambda env, i, m: masked(raw_scores(env, i, m, kv=tiled) / math.sqrt(d))))
    return made


def _weights(i: int, m: ReplayWeights, env: Env, yours) -> list[Mistake]:
    return [Mistake("softmax-axis", f"the softmax of the correct {{p}}{SCORES} over the queries (axis -2)",
                    lambda env, i, m: torch.softmax(env[at(i, SCORES)], dim=-2)),
            Mistake("softmax-axis", f"the softmax of the correct {{p}}{SCORES} over the heads (axis 0)",
                    lambda env, i, m: torch.softmax(env[at(i, SCORES)], dim=0))]


def _attention(i: int, m: ReplayWeights, env: Env, yours) -> list[Mistake]:
    if not 1 < m.args.n_rep < m.args.n_heads:
        return []
    return [Mistake("gqa-grouping", "the attention with the kv heads' values tiled: query head h read kv head h % K",
                    lambda env, i, m: weighted_values(env[at(i, ATTENTION_WEIGHTS)], env[at(i, V)], m.args.n_rep,
                                                      kv=tiled))]


def _transposed(name: str, n_heads):
    def made(i: int, m: ReplayWeights, env: Env, yours) -> list[Mistake]:
        w = m.w(max(i, 0), name)
        if w.shape[0] != w.shape[1]:
            return []  # x·W would not even run
        src = ATTENTION if name == "wo" else ATTENTION_NORM
        fn = (lambda env, i, m: env[at(i, src)] @ m.w(i, name)) if n_heads is None else (
            lambda env, i, m: heads(env[at(i, src)] @ m.w(i, name), n_heads(m.args)))
        return [Mistake("weight-transposed", f"{{p}}{src} · {name} instead of · {name}ᵀ", fn)]
    return made


# --- norms, feed-forward, residuals ---

def _mean_square(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    return x.pow(2).mean(axis, keepdim=True)


def _layer_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    centred = x - x.mean(-1, keepdim=True)
    return centred * torch.rsqrt(_mean_square(centred) + eps) * w


RMSNORM_WAYS = {  # how -> (x, weight, eps) -> the normed x
    "without its weight": lambda x, w, eps: x * torch.rsqrt(_mean_square(x) + eps),
    "with its weight applied as 1 + w": lambda x, w, eps: x * torch.rsqrt(_mean_square(x) + eps) * (1 + w),
    "without eps": lambda x, w, eps: x * torch.rsqrt(_mean_square(x)) * w,
    "with eps outside the square root": lambda x, w, eps: x / (_mean_square(x).sqrt() + eps) * w,
    "with the mean subtracted, as LayerNorm": _layer_norm,
    "over the positions (axis 0), not the features": lambda x, w, eps: x * torch.rsqrt(_mean_square(x, 0) + eps) * w,
}


def _norm(kind: str):
    def source(env: Env, i: int, m: ReplayWeights) -> tuple[torch.Tensor, torch.Tensor]:
        """The norm's input and weight."""
        if kind == ATTENTION_NORM:
            return layer_input(env, i), m.norm_weight(i, kind)
        if kind == FFN_NORM:
            return env[at(i, H)], m.norm_weight(i, kind)
        return env[at(m.args.n_layers - 1, OUT)], m.norm_weight(-1, kind)

    def made(i: int, m: ReplayWeights, env: Env, yours) -> list[Mistake]:
        out = [Mistake("rmsnorm", f"RMSNorm {how}", lambda env, i, m, f=f: f(*source(env, i, m), m.args.norm_eps))
               for how, f in RMSNORM_WAYS.items()]
        if kind == NORM:
            out.append(Mistake("final-norm", "the last layer's output, not normed",
                               lambda env, i, m: env[at(m.args.n_layers - 1, OUT)]))
        return out
    return made


ACTIVATIONS = {  # what a learner puts where SiLU belongs
    "GELU": torch.nn.functional.gelu, "GELU (tanh)": lambda t: torch.nn.functional.gelu(t, approximate="tanh"),
    "ReLU": torch.relu, "a bare sigmoid": torch.sigmoid,
}


def _ffn(i: int, m: ReplayWeights, env: Env, yours) -> list[Mistake]:
    x = lambda env, i: env[at(i, FFN_NORM)]  # noqa: E731
    swapped = Mistake("swiglu-branches", "silu(w3·x) ⊙ w1·x: SiLU on the up projection",
                      lambda env, i, m: ffn(x(env, i), i, m, swap=True))
    return [swapped] + [Mistake("activation", f"the feed-forward with {what} instead of SiLU",
                                lambda env, i, m, g=g: ffn(x(env, i), i, m, gate=g)) for what, g in ACTIVATIONS.items()]


def _residual(kind: str):
    def made(i: int, m: ReplayWeights, env: Env, yours) -> list[Mistake]:
        branch, normed = (ATTENTION_OUT, ATTENTION_NORM) if kind == H else (FFN_OUT, FFN_NORM)
        return [Mistake("residual", f"{{p}}{branch} alone: the residual connection is missing",
                        lambda env, i, m: env[at(i, branch)]),
                Mistake("residual", f"{{p}}{normed} + {{p}}{branch}: the normed input added instead of the layer's",
                        lambda env, i, m: env[at(i, normed)] + env[at(i, branch)])]
    return made


_BY_KIND = {
    FREQS_CIS: lambda i, m, env, yours: _rope(FREQS_CIS, i, m, env, yours),
    ATTENTION_NORM: _norm(ATTENTION_NORM), FFN_NORM: _norm(FFN_NORM), NORM: _norm(NORM),
    Q: _transposed("wq", lambda a: a.n_heads), K: _transposed("wk", lambda a: a.n_kv_heads),
    V: _transposed("wv", lambda a: a.n_kv_heads),
    Q_ROTATED: _rotated(Q_ROTATED), K_ROTATED: _rotated(K_ROTATED),
    SCORES: _scores, ATTENTION_WEIGHTS: _weights, ATTENTION: _attention,
    ATTENTION_OUT: _transposed("wo", None),
    H: _residual(H), OUT: _residual(OUT), FFN_OUT: _ffn,
}
