"""The forward pass again, one trace tensor at a time, from any tensors: what `check` recomputes.

`model.forward` runs from the tokens to the logits. To say where someone else's trace first
goes wrong and why, `check` needs each step on its own: "the layers.2.scores that these
layers.2.q_rotated and layers.2.k_rotated give", or that same step with a known mistake in it
(`mistakes.py`). So every trace name gets here a function of the tensors before it (`env`,
trace names to float64 tensors in Meta's layout), built from `model.py`'s own math. `replay`
runs a stretch of them, keeping the tensors the user gave, with one step swapped if asked.

The step names come from trace.py's tables (unpacked below), never spelled again here.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from .. import model
from ..config import ModelArgs
from ..trace import FINAL_STEPS, LAYER_STEPS, STEPS, step
from ..run import run_trace

TOKENS, EMBEDDINGS, FREQS_CIS = STEPS
(ATTENTION_NORM, Q, K, V, Q_ROTATED, K_ROTATED, SCORES, ATTENTION_WEIGHTS, ATTENTION, ATTENTION_OUT, H,
 FFN_NORM, FFN_OUT, OUT) = LAYER_STEPS
NORM, LOGITS, NEXT_TOKEN = FINAL_STEPS
# Tensors that fix everything after them (with freqs_cis, which depends on nothing but T): a
# layer's input, h for the feed-forward half, the final norm. A search for where a mistake
# sits walks back from the divergent tensor to the nearest of these the user gave.
CUTS = (EMBEDDINGS, H, OUT, NORM, LOGITS)

Env = dict  # trace name -> float64 tensor, Meta's layout
Step = Callable[[Env, int, "ReplayWeights"], torch.Tensor]  # (env, layer, model) -> the tensor


CACHE_BYTES = 1 << 28  # float64 copies of the layers' weights kept for a search that replays them many times


@dataclass(frozen=True)
class ReplayWeights:
    """The weights and sizes a step needs; every weight is read in float64."""

    args: ModelArgs
    weights: Mapping[str, torch.Tensor]
    columns: torch.Tensor | None = None  # only these columns of the logits: a search screens a vocabulary so
    upcast: dict = field(default_factory=dict, compare=False, repr=False)  # name -> float64 copy, up to CACHE_BYTES

    def w(self, layer: int, name: str) -> torch.Tensor:
        """'wq' of layer 2 -> layers.2.attention.wq.weight in float64."""
        group = "feed_forward." if name in ("w1", "w2", "w3") else "attention."
        return self.float64(f"layers.{layer}.{group}{name}.weight")

    def norm_weight(self, layer: int, which: str) -> torch.Tensor:
        return self.float64(f"layers.{layer}.{which}.weight" if layer >= 0 else "norm.weight")

    def float64(self, name: str) -> torch.Tensor:
        if name in self.upcast:
            return self.upcast[name]
        w = self.weights[name].to(torch.float64)
        if sum(t.numel() for t in self.upcast.values()) * 8 + w.numel() * 8 <= CACHE_BYTES:
            self.upcast[name] = w
        return w


def layer_of(name: str) -> int:
    """'layers.3.q' -> 3; names outside the layers -> -1."""
    return int(name.split(".")[1]) if name.startswith("layers.") else -1


def at(layer: int, kind: str) -> str:
    """at(3, Q) -> 'layers.3.q'; layer -1 is the final steps, named as they are."""
    return f"layers.{layer}.{kind}" if layer >= 0 else kind


def layer_input(env: Env, layer: int) -> torch.Tensor:
    """The residual stream entering `layer`: the embeddings, or the previous layer's output."""
    return env[EMBEDDINGS] if layer == 0 else env[at(layer - 1, OUT)]


def cis(env: Env) -> torch.Tensor:
    return torch.view_as_complex(env[FREQS_CIS].contiguous())  # [T, d/2] complex


def heads(x: torch.Tensor, n: int) -> torch.Tensor:
    """[T, n·d] -> [n, T, d]."""
    return x.unflatten(-1, (n, -1)).transpose(0, 1)


def projection(name: str, n_heads: Callable[[ModelArgs], int]) -> Step:
    return lambda env, i, m: heads(env[at(i, ATTENTION_NORM)] @ m.w(i, name).T, n_heads(m.args))  # [n, T, d]


def grouped(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[K, T, ...] -> [H, T, ...]: query head h reads kv head h // n_rep (each repeated n_rep times)."""
    return x.repeat_interleave(n_rep, dim=0)


def raw_scores(env: Env, i: int, m: ReplayWeights, kv=grouped) -> torch.Tensor:
    """q·kᵀ before the scale and the mask; `kv` maps kv heads to query heads."""
    return env[at(i, Q_ROTATED)] @ kv(env[at(i, K_ROTATED)], m.args.n_rep).transpose(-1, -2)  # [H, T, T]


def masked(scores: torch.Tensor) -> torch.Tensor:
    T = scores.shape[-1]
    return scores + model.causal_mask(T, T, scores.dtype)


def weighted_values(probs: torch.Tensor, v: torch.Tensor, n_rep: int, kv=grouped) -> torch.Tensor:
    """Each head's softmax times its values, heads side by side: [H, T, T] -> [T, H·d]."""
    return (probs @ kv(v, n_rep)).transpose(0, 1).flatten(1)  # [T, H·d]


def ffn(x: torch.Tensor, i: int, m: ReplayWeights, gate=torch.nn.functional.silu, swap: bool = False) -> torch.Tensor:
    """w2(gate(w1·x) ⊙ w3·x), or with `swap` the gate on w3·x: the correct one is `model.swiglu`."""
    w1, w3 = (m.w(i, "w3"), m.w(i, "w1")) if swap else (m.w(i, "w1"), m.w(i, "w3"))
    return (gate(x @ w1.T) * (x @ w3.T)) @ m.w(i, "w2").T  # [T, D]


def rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return model.rms_norm(x, weight, eps)


def _tokens(env: Env, i: int, m: ReplayWeights) -> torch.Tensor:
    return env[TOKENS]


def _embeddings(env: Env, i: int, m: ReplayWeights) -> torch.Tensor:
    return model.embed(env[TOKENS].long(), m.weights["tok_embeddings.weight"], torch.float64)  # [T, D]


def _freqs_cis(env: Env, i: int, m: ReplayWeights) -> torch.Tensor:
    return torch.view_as_real(model.freqs_cis(m.args, len(env[TOKENS]), dtype=torch.float64))  # [T, d/2, 2]


def _final_norm(env: Env, i: int, m: ReplayWeights) -> torch.Tensor:
    return rms(env[at(m.args.n_layers - 1, OUT)], m.norm_weight(-1, NORM), m.args.norm_eps)


def _logits(env: Env, i: int, m: ReplayWeights) -> torch.Tensor:
    w = m.weights[model.output_weight_name(m.weights)]  # [V, D]
    return model.output_projection(env[NORM], w if m.columns is None else w[m.columns], torch.float64, "cpu")  # [T, V]


# Each trace tensor as a function of the ones before it, in pipeline order.
CORRECT: dict[str, Step] = {
    TOKENS: _tokens,
    EMBEDDINGS: _embeddings,
    FREQS_CIS: _freqs_cis,
    ATTENTION_NORM: lambda env, i, m: rms(layer_input(env, i), m.norm_weight(i, ATTENTION_NORM), m.args.norm_eps),
    Q: projection("wq", lambda a: a.n_heads),  # [H, T, d]
    K: projection("wk", lambda a: a.n_kv_heads),  # [K, T, d]
    V: projection("wv", lambda a: a.n_kv_heads),  # [K, T, d]
    Q_ROTATED: lambda env, i, m: model.apply_rope(env[at(i, Q)], cis(env)),  # [H, T, d]
    K_ROTATED: lambda env, i, m: model.apply_rope(env[at(i, K)], cis(env)),  # [K, T, d]
    SCORES: lambda env, i, m: masked(raw_scores(env, i, m) / math.sqrt(m.args.head_dim)),  # [H, T, T]
    ATTENTION_WEIGHTS: lambda env, i, m: model.softmax(env[at(i, SCORES)]),  # [H, T, T]
    ATTENTION: lambda env, i, m: weighted_values(env[at(i, ATTENTION_WEIGHTS)], env[at(i, V)], m.args.n_rep),
    ATTENTION_OUT: lambda env, i, m: env[at(i, ATTENTION)] @ m.w(i, "wo").T,  # [T, D]
    H: lambda env, i, m: layer_input(env, i) + env[at(i, ATTENTION_OUT)],  # [T, D]
    FFN_NORM: lambda env, i, m: rms(env[at(i, H)], m.norm_weight(i, FFN_NORM), m.args.norm_eps),
    FFN_OUT: lambda env, i, m: ffn(env[at(i, FFN_NORM)], i, m),  # [T, D]
    OUT: lambda env, i, m: env[at(i, H)] + env[at(i, FFN_OUT)],  # [T, D]
    NORM: _final_norm,
    LOGITS: _logits,
    NEXT_TOKEN: lambda env, i, m: env[LOGITS][-1].argmax(),
}


@dataclass(frozen=True)
class Swap:
    """A mistaken step: `fn` computes `kind` instead of the correct step, in `layer` or (with
    `onwards`) in every layer from it on: a learner's bug is usually in every layer."""

    kind: str
    layer: int
    fn: Step
    onwards: bool = False

    def applies(self, name: str) -> bool:
        i = layer_of(name)
        return step(name) == self.kind and (i == self.layer or (self.onwards and i > self.layer))


Swaps = Swap | tuple[Swap, ...] | None  # one mistaken step, or several made by one helper (hypotheses.py)


def compute(name: str, env: Env, m: ReplayWeights, swap: Swaps = None) -> torch.Tensor:
    swaps = swap if isinstance(swap, tuple) else (swap,) if swap is not None else ()
    fn = next((s.fn for s in swaps if s.applies(name)), CORRECT[step(name)])
    return fn(env, layer_of(name), m)


def stretch(order: list[str], given: set[str], name: str) -> list[str]:
    """The names from the last cut the user gave before `name` up to `name`: the steps a
    replay of `name` recomputes (the given ones in between are kept as given)."""
    end = order.index(name)
    start = end
    while start > 0 and not (order[start - 1] in given and step(order[start - 1]) in CUTS):
        start -= 1
    return order[start:end + 1]


def prefixes(names: list[str], env: Env, given: set[str], m: ReplayWeights) -> list[Env]:
    """envs[k]: `env` with names[:k] recomputed (the given ones kept): where a replay from k starts."""
    envs = [dict(env)]
    for name in names[:-1]:
        env = dict(env)
        if name not in given:
            env[name] = compute(name, env, m)
        envs.append(env)
    return envs


def replay(names: list[str], env: Env, given: set[str], m: ReplayWeights, swap: Swaps = None) -> torch.Tensor:
    """Recompute `names` in order on a copy of `env` (keeping the given tensors before the last
    one), with `swap` (one or several) in place of its steps; returns the last one."""
    env = dict(env)
    for name in names[:-1]:
        if name not in given:
            env[name] = compute(name, env, m, swap)
    return compute(names[-1], env, m, swap)


# --- the reference's own trace, and the threads a search runs on ---

_RECENT: dict = {}  # (id(checkpoint), tokens) -> (checkpoint, trace): holding the checkpoint keeps its id unique


def reference_trace(ckpt, tokens: list[int]) -> dict[str, torch.Tensor]:
    """The float64 trace of `tokens` (the ids int64): remembered for the last few calls, since a
    test suite checks many traces of one prompt. Read it, never change it."""
    key = (id(ckpt), tuple(tokens))
    if key not in _RECENT:
        if len(_RECENT) >= 4:
            _RECENT.pop(next(iter(_RECENT)))
        trace = run_trace(tokens, ckpt.weights, ckpt.args, dtype=torch.float64, path="batched")
        _RECENT[key] = (ckpt, {n: t if n == TOKENS else t.to(torch.float64) for n, t in trace.items()})
    return _RECENT[key][1]


SMALL_DIM = 2048  # up to this width, the products of a few tokens take microseconds


@contextlib.contextmanager
def one_thread(small: bool):
    """A search replays thousands of small products; on a busy machine a thread pool waiting for
    its slowest thread makes each take milliseconds (a 6×6 triu: 3 ms on 2 threads, 2 µs on 1)."""
    before = torch.get_num_threads()
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
