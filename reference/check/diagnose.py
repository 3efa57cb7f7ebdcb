"""Why a tensor differs: recompute it under each known mistake and name the one that fits.

The divergent tensor is recomputed from the inputs of its step (the user's, where they gave
them and they matched; the reference's elsewhere) under every mistake of `mistakes.py`. When
the trace holds only a few names, as one recorded with module hooks does, the mistake may sit
in any step between the last tensor given before it and the divergent one (`replay.stretch`):
the whole block is replayed under each hypothesis of `hypotheses.py`, a mistake of one of
those steps or one helper's mistake in the two tensors it makes (RoPE on q and k, the kv
expansion on k and v), in that layer alone and in every layer from it on; such a finding says
it was inferred. A mistake fits when its result is within the dtype's tolerance of the user's
tensor and far closer than the correct one. Nothing fits: the pattern of the difference is
described instead, not guessed at.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple

import torch

from .difference import Difference, difference, pattern, where, where_text
from .hypotheses import Hypothesis, hypotheses
from .replay import LOGITS, NEXT_TOKEN, TOKENS, Env, ReplayWeights, layer_of, prefixes, replay
from ..trace import step, step_letters

CLEARLY_CLOSER = 4  # a fitting mistake is at least this many times closer than the correct tensor
SCREEN_COLUMNS = 2048  # a large vocabulary's logits are screened on this many columns before all are compared


@dataclass(frozen=True)
class Finding:
    name: str  # the divergent tensor
    cause: str | None  # an id of causes.CAUSES, or None when no known mistake fits
    error: float  # its max error relative to its scale, against the correct tensor
    where: dict  # its worst element (difference.where), empty when the shapes differ
    evidence: str  # one sentence: what reproduces it, or the pattern of the difference
    tolerance: float = 0.0  # the one it was compared with (set by check)
    inferred: bool = False  # the cause sits in steps the trace lacks: inferred from replaying them
    also: tuple[str, ...] = ()  # other causes whose replay fits too
    replayed: tuple[str, ...] = ()  # the names before it that the trace lacks, recomputed to reach it (set by check)
    since: str | None = None  # the last tensor the trace gave before them (set by check)


class Fit(NamedTuple):
    error: float  # the user's tensor against the one a hypothesis gives
    cause: str
    evidence: str
    inferred: bool = False  # the hypothesis sits in steps before the divergent one, which the trace lacks


@dataclass(frozen=True)
class Context:
    m: ReplayWeights
    env: Env  # the reference's tensors, with the user's that matched in their place
    accepted: frozenset[str]  # the user's tensors that matched
    yours: dict[str, torch.Tensor]  # the user's tensors, float64, in Meta's layout
    without_bos: Callable[[], dict[str, torch.Tensor]] | None  # the reference without BOS, if BOS is added


def fmt(e: float) -> str:
    return f"{e:.1g}"


def diagnose(name: str, names: list[str], ctx: Context, expected: torch.Tensor, diff: Difference | None,
             tol: float) -> Finding:
    """Why `name` differs from `expected` (recomputed along `names`); `diff` is None when the shapes differ."""
    yours = ctx.yours[name]
    place = where(name, diff.index, ctx.m.args.head_dim) if diff is not None and diff.index else {}
    error = diff.error if diff is not None else float("inf")
    if step(name) in (TOKENS, NEXT_TOKEN):
        return _ids(name, yours, expected, ctx, error, place)
    found = _axes(name, yours, expected, ctx)
    if diff is None:  # another number of positions: the tokens without BOS?
        found += _no_bos(name, yours, ctx)
    else:
        found += _mistakes(name, names, ctx, yours, expected, tol, error)
    fitting = [f for f in found if f.error <= tol and f.error * CLEARLY_CLOSER < error]
    if fitting:
        best = min(fitting, key=lambda f: f.error)
        also = tuple(dict.fromkeys(f.cause for f in fitting if f.cause != best.cause))
        return Finding(name, best.cause, error, place, best.evidence, inferred=best.inferred, also=also)
    if diff is None:
        return Finding(name, None, error, place, f"your {name} has shape {list(yours.shape)}; the contract's is "
                                                  f"{list(expected.shape)} ({step_letters(name)})")
    if diff.non_finite and not torch.isfinite(yours).all():
        bad = ~torch.isfinite(yours) & torch.isfinite(expected)
        if bad.any():
            first = where(name, tuple(int(i) for i in torch.nonzero(bad)[0]), ctx.m.args.head_dim)
            nans = int(torch.isnan(yours[bad]).sum())
            return Finding(name, "non-finite", error, first,
                           f"your {name} holds {int(bad.sum())} non-finite values ({nans} NaN) where the reference "
                           f"is finite, the first at {where_text(first)}; no known mistake of this step makes them")
    return Finding(name, None, error, place, "no known mistake reproduces it: " + pattern(yours, expected,
                                                                                          step_letters(name), tol))


def _ids(name: str, yours, expected, ctx: Context, error: float, place: dict) -> Finding:
    """Tokens without BOS, or another next token (a near tie in a low dtype is not a difference)."""
    y, e = [int(v) for v in yours.flatten()], [int(v) for v in expected.flatten()]
    if name == TOKENS:
        if ctx.without_bos is not None and y == e[1:]:
            return Finding(name, "tokens-no-bos", error, {}, f"your tokens are the prompt's {len(e)} without the "
                                                             f"BOS token {e[0]} first")
        if len(y) != len(e):
            return Finding(name, None, error, {}, f"your tokens are {len(y)} ids, the reference's {len(e)}")
        wrong = [i for i, (a, b) in enumerate(zip(y, e)) if a != b]
        return Finding(name, None, error, {"position": wrong[0]},
                       f"{len(wrong)} of the {len(e)} ids differ, the first at position {wrong[0]}: {y[wrong[0]]} "
                       f"where the tokenizer gives {e[wrong[0]]}; was the text tokenized another way?")
    logits = ctx.env[LOGITS][-1]
    return Finding(name, None, error, {}, f"your next token is {y[0]} (logit {float(logits[y[0]]):.4g}), the "
                                          f"reference's {e[0]} (logit {float(logits[e[0]]):.4g})")


def _axes(name: str, yours, expected, ctx: Context) -> list:
    """The right values with the axes in another order (then reshaped to whatever shape)."""
    letters = step_letters(name).replace("H·d", "H d").split()
    if yours.numel() != expected.numel() or len(letters) < 2:
        return []
    a = ctx.m.args
    sizes = {"T": len(ctx.env[TOKENS]), "D": a.dim, "H": a.n_heads,
             "K": a.n_kv_heads, "d": a.head_dim, "d/2": a.head_dim // 2, "2": 2, "V": a.vocab_size}
    factored = expected.reshape([sizes[x] for x in letters])
    out = []
    for order in itertools.permutations(range(len(letters))):
        if order == tuple(range(len(letters))):
            continue
        moved = factored.permute(order).reshape(-1)
        d = difference(yours.reshape(-1), moved)
        axes = ", ".join(letters[i] for i in order)
        out.append(Fit(d.error, "axes", f"your {name} (shape {list(yours.shape)}) holds the right values with its "
                                        f"axes as [{axes}], max error {fmt(d.error)}; the contract's order is "
                                        f"[{', '.join(letters)}]"))
    return out


def _no_bos(name: str, yours, ctx: Context) -> list:
    if ctx.without_bos is None or name == TOKENS:
        return []
    theirs = ctx.without_bos().get(name)
    if theirs is None or theirs.shape != yours.shape:
        return []
    d = difference(yours, theirs)
    return [Fit(d.error, "tokens-no-bos", f"your {name} is the reference's for the tokens without the BOS token "
                                          f"first, max error {fmt(d.error)}")]


def _mistakes(name: str, names: list[str], ctx: Context, yours, expected, tol: float, error: float) -> list[Fit]:
    """Replay `names` to `name` under each hypothesis (hypotheses.py), a group at a time from the
    likeliest; the first group where one fits ends the search."""
    envs = dict(zip(names, prefixes(names, ctx.env, set(ctx.accepted), ctx.m)))
    screen = _screen(name, ctx, yours, expected)
    for group in hypotheses(name, names, ctx.accepted, ctx.m, envs, yours):
        if screen is not None:  # the logits of a large vocabulary: the best few on some columns, then on all
            scored = sorted(((_error(names, h, envs, ctx, *screen), n) for n, h in enumerate(group)))
            group = [group[n] for e, n in scored[:3] if e <= 2 * tol]
        found = [(_error(names, h, envs, ctx, ctx.m, yours), h) for h in group]
        found = [Fit(e, h.cause, _evidence(name, h, e), h.source != name) for e, h in found]
        if any(f.error <= tol and f.error * CLEARLY_CLOSER < error for f in found):
            return found
    return []


def _screen(name: str, ctx: Context, yours, expected):
    """For logits over a large vocabulary: a ReplayWeights and your logits on the columns that differ most, and a spread."""
    if name != LOGITS or yours.shape[-1] <= 2 * SCREEN_COLUMNS:
        return None
    gap = (yours - expected).abs().nan_to_num(nan=float("inf")).amax(0)  # [V]
    columns = torch.unique(torch.cat([gap.topk(SCREEN_COLUMNS // 2).indices,
                                      torch.linspace(0, len(gap) - 1, SCREEN_COLUMNS // 2).long()]))
    return replace(ctx.m, columns=columns, upcast=ctx.m.upcast), yours[:, columns]


def _error(names: list[str], h: Hypothesis, envs, ctx: Context, m, yours) -> float:
    """The error of `yours` against the pass replayed under hypothesis `h`."""
    try:
        got = replay(names[names.index(h.source):], envs[h.source], set(ctx.accepted), m, h.swaps)
    except (RuntimeError, IndexError):  # a mistake this model's shapes do not allow
        return float("inf")
    return difference(yours, got).error if got.shape == yours.shape else float("inf")


def _evidence(name: str, h: Hypothesis, e: float) -> str:
    i = layer_of(h.source)
    what = h.what.format(p=f"layers.{i}." if i >= 0 else "")
    meaning = f": {h.meaning}" if h.meaning else ""
    if h.steps == (name,):
        return f"your {name} equals {what}, max error {fmt(e)}{meaning}"
    every = f" in every layer from {i} on" if h.onwards else ""
    lacking = [s for s in h.steps if s != name]
    return (f"your {name} equals what the pass gives with {' and '.join(h.steps)} computed as {what}{every}, max "
            f"error {fmt(e)}{meaning}; {' and '.join(lacking)} {'is' if len(lacking) == 1 else 'are'} not in the "
            f"trace, so the mistake may sit there")
