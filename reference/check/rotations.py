"""RoPE done wrong, as functions of the tensor it turns: another pairing of the dimensions (in
either row order), another base θ, a missing Llama 3.1 scaling, another first position.

mistakes.py applies each to q or to k alone (and the θ and position ones to freqs_cis);
hypotheses.py applies each to both at once, as one `apply_rotary_emb(q, k)` turns both. Where
the user's own turned tensor is at hand, θ and the first position are fitted from its angles,
so the report can say which θ fits rather than only that θ is wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .. import model
from ..formats.layout import activation_to_adjacent_pairs as to_pairs
from .replay import FREQS_CIS, K, Q, Q_ROTATED, Env, ReplayWeights, at, cis

COMMON_THETAS = (10_000.0, 500_000.0, 1_000_000.0, 100_000.0, 50_000.0)  # Llama 2, Llama 3, and others
COMMON_STARTS = (1, -1, 2)


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


@dataclass(frozen=True)
class Rotation:
    """A mistaken RoPE as a function of the tensor it turns."""

    cause: str
    what: str  # how the tensor was turned; "{x}" stands for the tensor, e.g. "the correct layers.2.q"
    fn: Callable[[torch.Tensor, Env], torch.Tensor]  # (x [n, T, d], env) -> x turned [n, T, d]
    meaning: str = ""


def _freqs(args, start: int):
    """The freqs_cis of `args` from position `start` on, as long as the trace's: [T, d/2] complex."""
    return lambda env: model.freqs_cis(args, env[FREQS_CIS].shape[0], start=start, dtype=torch.float64)


def rope_options(m: ReplayWeights, angles: torch.Tensor | None) -> list[tuple[str, str, Callable]]:
    """(cause, what, freqs) for each wrong θ, a missing scaling and each wrong first position;
    `angles` [T, d/2]: the user's own, to fit θ and the first position from."""
    a, d = m.args, m.args.head_dim
    thetas, starts = fit_rope(angles, d) if angles is not None else ([], [])
    options = [("rope-theta", f"RoPE with θ = {t:g} (the checkpoint's: {a.rope_theta:g})",
                _freqs(a.replace(rope_theta=t), 0))
               for t in dict.fromkeys(thetas + list(COMMON_THETAS)) if t > 1 and abs(t / a.rope_theta - 1) > 1e-6]
    if a.use_scaled_rope:
        options.append(("rope-theta", f"RoPE with θ = {a.rope_theta:g} but without Llama 3.1's scaling of the low "
                                      "frequencies", _freqs(a.replace(use_scaled_rope=False), 0)))
    return options + [("rope-positions", f"RoPE with positions starting at {s} instead of 0", _freqs(a, s))
                      for s in dict.fromkeys(starts + list(COMMON_STARTS))]


def rotations(m: ReplayWeights, angles: torch.Tensor | None = None) -> list[Rotation]:
    """Every known way to turn a [n, T, d] tensor wrong: the other pairing (in either row order)
    and the wrong θ, scaling or first position."""
    on_meta = "that is rotate_half on Meta-layout weights — permute wq/wk or pair (2j, 2j+1)"
    on_hf = "that is Meta's pairing on Hugging Face-layout weights — use rotate_half, or undo wq/wk's permutation"
    in_hf_rows = "RoPE with pairs (2j, 2j+1) applied to {x} in Hugging Face's row order"
    made = [Rotation("rope-pairs", "RoPE with pairs (j, j + d/2) applied to {x}",
                     lambda x, env: rotate_half_rope(x, cis(env)), on_meta),
            Rotation("rope-pairs", in_hf_rows,
                     lambda x, env: to_pairs(model.apply_rope(to_halves(x), cis(env))), on_hf),
            Rotation("rope-pairs", in_hf_rows + ", and recorded in that order",  # a trace whose q says nothing of it
                     lambda x, env: model.apply_rope(to_halves(x), cis(env)), on_hf)]
    return made + [Rotation(cause, what + " applied to {x}", lambda x, env, f=f: model.apply_rope(x, f(env)))
                   for cause, what, f in rope_options(m, angles)]
