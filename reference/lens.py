"""Reading a trained model's trace: the logit lens, the heads with a measurable habit, the
residual stream's size. The docs' pictures and `serve` use these, so a head shown as "the
previous-token head" is the one a stated criterion picked, never a hand-chosen index.

All functions take a trace (`trace.run_trace`, names of shared/TRACE.md) and only read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .config import ModelArgs
from .model import output_weight_name, rms_norm

Trace = Mapping[str, torch.Tensor]


# --- the logit lens: what the stream would predict if the model stopped after layer i ---

def logit_lens(trace: Trace, weights: Mapping[str, torch.Tensor], args: ModelArgs, position: int = -1) -> torch.Tensor:
    """[L, V] next-token probabilities at `position` after every layer: the final norm and the
    output projection applied to each layer's output (nostalgebraist's "logit lens", 2020).
    The last row is the model's own prediction."""
    norm_w = weights["norm.weight"].float()
    out_w = weights[output_weight_name(weights)]  # [V, D]
    stream = torch.stack([trace[f"layers.{i}.out"][position] for i in range(args.n_layers)])  # [L, D]
    logits = rms_norm(stream, norm_w, args.norm_eps) @ out_w.float().T  # [L, V]
    return torch.softmax(logits, dim=-1)


def first_layer_on_top(probs: torch.Tensor, token: int) -> int | None:
    """The first layer after which `token` is the lens's top token and stays so to the end."""
    top = probs.argmax(-1)  # [L]
    layer = None
    for i in range(len(top) - 1, -1, -1):
        if int(top[i]) != token:
            break
        layer = i
    return layer


# --- heads with a habit ---

@dataclass(frozen=True)
class Head:
    layer: int
    head: int
    score: float  # the criterion's value, in [0, 1]: the mean attention weight it measures


# Each criterion: (what it measures, the key position it reads for query position t). Queries
# t ≥ 2 only: at t = 1 the previous token *is* the first, and would count for both.
HEAD_CRITERIA = {
    "previous-token": ("mean attention weight from each token to the one just before it", lambda t: t - 1),
    "first-token": ("mean attention weight from each token to the first token (the 'attention sink')", lambda t: 0),
}


def habit_scores(trace: Trace, args: ModelArgs, criterion: str) -> torch.Tensor:
    """[L, H]: every head's score under `criterion` (HEAD_CRITERIA), averaged over query positions t ≥ 2."""
    _, key_of = HEAD_CRITERIA[criterion]
    T = trace["tokens"].numel()
    queries = torch.arange(2, T)
    keys = torch.tensor([key_of(int(t)) for t in queries], dtype=torch.long)
    per_layer = [trace[f"layers.{i}.attention_weights"][:, queries, keys].mean(-1) for i in range(args.n_layers)]
    return torch.stack(per_layer)  # [L, H]


def strongest_head(trace: Trace, args: ModelArgs, criterion: str) -> Head:
    """The head, over all layers, that scores highest under `criterion`."""
    scores = habit_scores(trace, args, criterion)  # [L, H]
    layer, head = divmod(int(scores.argmax()), args.n_heads)
    return Head(layer, head, float(scores[layer, head]))


# --- the residual stream ---

def stream(trace: Trace, args: ModelArgs) -> torch.Tensor:
    """[L + 1, T, D]: the stream entering layer 0 (the embeddings), then after every layer."""
    return torch.stack([trace["embeddings"].float()] + [trace[f"layers.{i}.out"] for i in range(args.n_layers)])


def outlier_dims(x: torch.Tensor, factor: float = 10.0) -> list[int]:
    """Dimensions of the stream whose mean |value| over layers and tokens is `factor` times the
    median dimension's: the "massive activations" trained transformers grow (Sun et al., 2024)."""
    size = x.abs().mean(dim=(0, 1))  # [D]
    return [int(i) for i in torch.nonzero(size > factor * size.median()).flatten()]


def score_by_distance(trace: Trace, layer: int, head: int) -> torch.Tensor:
    """[T]: one head's mean score q·k/√d at each relative distance δ = query - key ≥ 0 (the
    masked upper triangle has no finite score)."""
    scores = trace[f"layers.{layer}.scores"][head]  # [T, T]
    T = scores.shape[0]
    return torch.stack([torch.diagonal(scores, offset=-delta).mean() for delta in range(T)])
