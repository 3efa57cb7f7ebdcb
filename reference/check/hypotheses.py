"""What a search replays when tensors are missing: each known mistake where it may sit, and one
helper's mistake in both tensors it makes, in groups from the likeliest.

A trace recorded with forward hooks on modules holds what modules return: q, k and v (the
projections), attention_out, the norms, ffn_out, each layer's out. It never holds what one
function computes inside attention: q_rotated, k_rotated, scores, attention_weights. And real
code applies one helper to two tensors: Meta's `apply_rotary_emb(xq, xk)` turns queries and
keys alike, `repeat_kv` expands keys and values alike. A mistake made there changes two missing
steps at once, so trying one step's mistakes at a time finds nothing.

Here a hypothesis is a set of steps computed the mistaken way: one step of mistakes.py, or the
two steps of one helper (`helper_mistakes`), in one layer or in every layer from it on.
diagnose.py replays the block from the user's last matching tensors under each, and names the
one whose replay gives the user's next tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterator

from .mistakes import Mistake, mistakes, tiled
from .replay import (ATTENTION, ATTENTION_WEIGHTS, K, K_ROTATED, Q, Q_ROTATED, SCORES, V, Env, ReplayWeights, Step,
                     Swap, at, layer_of, masked, raw_scores, weighted_values)
from .rotations import rotations
from ..trace import step

MAX_LAYERS = 4  # a stretch over more layers than this is searched for mistakes in every layer only


@dataclass(frozen=True)
class Hypothesis:
    cause: str  # an id of causes.CAUSES
    steps: tuple[str, ...]  # the trace names computed the mistaken way, in pipeline order
    fns: tuple[Step, ...]  # how, one for each of `steps`
    what: str  # how they were computed; "{p}" stands for the layer's prefix, e.g. "layers.2."
    meaning: str = ""  # what that says about the code, where it is not plain from `what`
    onwards: bool = False  # made in every layer from the steps' layer on, not in that layer alone

    @property
    def source(self) -> str:
        """The first step computed wrong: where a replay under this hypothesis starts."""
        return self.steps[0]

    @property
    def swaps(self) -> tuple[Swap, ...]:
        return tuple(Swap(step(s), layer_of(s), fn, self.onwards) for s, fn in zip(self.steps, self.fns))


def single(source: str, mk: Mistake, onwards: bool = False) -> Hypothesis:
    return Hypothesis(mk.cause, (source,), (mk.fn,), mk.what, mk.meaning, onwards)


def helper_mistakes(i: int, m: ReplayWeights) -> list[Hypothesis]:
    """The mistakes a helper makes in both tensors it computes, in layer `i`: every wrong RoPE
    on q and k alike (apply_rotary_emb), the kv heads tiled for the scores and the values alike
    (repeat_kv)."""
    q, k = at(i, Q_ROTATED), at(i, K_ROTATED)
    alike = "the correct {p}q and {p}k alike (one helper turns both, as apply_rotary_emb(q, k))"
    made = [Hypothesis(r.cause, (q, k), (_turn(Q, r.fn), _turn(K, r.fn)), r.what.format(x=alike), r.meaning)
            for r in rotations(m)]
    if 1 < m.args.n_rep < m.args.n_heads:
        d = m.args.head_dim
        made.append(Hypothesis(
            "gqa-grouping", (at(i, SCORES), at(i, ATTENTION)),
            (lambda env, i, m: masked(raw_scores(env, i, m, kv=tiled) / math.sqrt(d)),
             lambda env, i, m: weighted_values(env[at(i, ATTENTION_WEIGHTS)], env[at(i, V)], m.args.n_rep, kv=tiled)),
            "the kv heads tiled for the keys and the values alike (one helper expands both, as repeat_kv): "
            "query head h read kv head h % K"))
    return made


def _turn(source: str, fn) -> Step:
    return lambda env, i, m: fn(env[at(i, source)], env)


def hypotheses(name: str, names: list[str], accepted: frozenset[str], m: ReplayWeights, envs: dict[str, Env],
               yours) -> Iterator[list[Hypothesis]]:
    """Groups of hypotheses for the divergent `name`, replayed along `names` (the stretch from
    the last cut the user gave), from the likeliest; the first group where one fits ends the search:

    1. `name`'s own step;
    2. the other missing steps of its layer, each alone, and each helper's two of them at once;
    3. those of the stretch's first layer, made in every layer from there on (a learner's bug is in every layer);
    4. each missing step, and each helper, in one earlier layer alone.

    `envs[s]`: the env a replay from step s starts with; `yours`: the user's `name`, which the
    mistakes of its own step fit their θ or factor to.
    """
    own = layer_of(name)
    missing = [s for s in names if s not in accepted]
    layers = sorted({layer_of(s) for s in missing if layer_of(s) >= 0})

    def singles(sources: list[str], onwards: bool) -> list[Hypothesis]:
        return [single(s, mk, onwards) for s in sources
                for mk in mistakes(s, m, envs[s], yours if s == name else None)]

    def helpers(layer: int, onwards: bool) -> list[Hypothesis]:
        return [replace(h, onwards=onwards) for h in helper_mistakes(layer, m) if set(h.steps) <= set(missing)]

    yield singles([name], False)
    yield singles([s for s in reversed(missing) if s != name and layer_of(s) == own], False) + (
        helpers(own, False) if own >= 0 else [])
    if layers and layers[0] != own:
        yield singles([s for s in missing if layer_of(s) == layers[0]], True) + helpers(layers[0], True)
    earlier = [s for s in reversed(missing) if layer_of(s) != own]
    if len(layers) <= MAX_LAYERS:
        yield singles(earlier, False) + [h for layer in reversed(layers) if layer != own for h in helpers(layer, False)]
    else:
        yield singles([s for s in earlier if layer_of(s) < 0], False)
