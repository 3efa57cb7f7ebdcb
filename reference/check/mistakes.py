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

from .replay import (ATTENTION, ATTENTION_NORM, ATTENTION_OUT, ATTENTION_WEIGHTS, FFN_NORM, FFN_OUT, FREQS_CIS, H, K,
                     K_ROTATED, NORM, OUT, Q, Q_ROTATED, SCORES, V, Env, ReplayWeights, Step, at, ffn, grouped, heads,
                     layer_input, layer_of, masked, raw_scores, weighted_values)
from .rotations import rope_angles, rope_options, rotations
from ..trace import step


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


# --- RoPE: the base θ, the first position, the pairing (rotations.py) ---

def _freqs_cis(i: int, m: ReplayWeights, env: Env, yours) -> list[Mistake]:
    angles = rope_angles(FREQS_CIS, i, env, yours) if yours is not None else None
    return [Mistake(cause, what, lambda env, i, m, f=f: torch.view_as_real(f(env)))
            for cause, what, f in rope_options(m, angles)]


def _rotated(kind: str):
    def made(i: int, m: ReplayWeights, env: Env, yours) -> list[Mistake]:
        src = Q if kind == Q_ROTATED else K
        angles = rope_angles(kind, i, env, yours) if yours is not None else None
        return [Mistake(r.cause, r.what.format(x=f"the correct {{p}}{src}"),
                        lambda env, i, m, r=r: r.fn(env[at(i, src)], env), r.meaning) for r in rotations(m, angles)]
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
    made = [Mistake("axes", "the heads' outputs [H, T, d] reshaped to [T, H·d] without moving T first",
                    lambda env, i, m: (env[at(i, ATTENTION_WEIGHTS)] @ grouped(env[at(i, V)], m.args.n_rep)).reshape(
                        env[at(i, V)].shape[1], -1))]
    if 1 < m.args.n_rep < m.args.n_heads:
        made.append(Mistake("gqa-grouping", "the attention with the kv heads' values tiled: query head h read kv head "
                                            "h % K", lambda env, i, m: weighted_values(
                                                env[at(i, ATTENTION_WEIGHTS)], env[at(i, V)], m.args.n_rep, kv=tiled)))
    return made


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
    FREQS_CIS: _freqs_cis,
    ATTENTION_NORM: _norm(ATTENTION_NORM), FFN_NORM: _norm(FFN_NORM), NORM: _norm(NORM),
    Q: _transposed("wq", lambda a: a.n_heads), K: _transposed("wk", lambda a: a.n_kv_heads),
    V: _transposed("wv", lambda a: a.n_kv_heads),
    Q_ROTATED: _rotated(Q_ROTATED), K_ROTATED: _rotated(K_ROTATED),
    SCORES: _scores, ATTENTION_WEIGHTS: _weights, ATTENTION: _attention,
    ATTENTION_OUT: _transposed("wo", None),
    H: _residual(H), OUT: _residual(OUT), FFN_OUT: _ffn,
}
