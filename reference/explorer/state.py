"""What the live explorer computes: a prompt's trace, grown token by token with a KV cache, and
the small answers the page draws from it. No web code here (that is server.py): plain
functions and one class holding the current prompt's state.

A run is `batched.forward` with a cache and a trace: every step of every layer, recorded as
the docs show it. *Append* runs only the new token against the cached keys and values and
adds its rows to the trace, so walking a generation costs one token's pass per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .. import batched, lens
from ..config import PRESETS
from ..trace import DOCS_PAGE, LAYER_STEPS, MASKED_FILL, STEPS, step, step_letters, trace_shapes
from ..upcast import resident

MAX_TOKENS = 256  # prompt + appended tokens: keeps a [T, T] head's JSON under 1 MB
VALUES_SHOWN = 8  # numbers of a tensor shown at the chosen position
TOP = 10

@dataclass
class Explorer:
    """The model and the current prompt: its tokens, trace and KV cache."""

    checkpoint: object  # reference.formats.Checkpoint
    trained: bool
    tokens: list[int] = field(default_factory=list)
    trace: dict[str, torch.Tensor] = field(default_factory=dict)
    cache: batched.KVCache | None = None
    weights: object = field(init=False, repr=False)  # the checkpoint's, upcast once if small (upcast.resident)

    def __post_init__(self):
        self.weights = resident(self.checkpoint.weights, torch.float32)

    @property
    def args(self):
        return self.checkpoint.args

    def limit(self) -> int:
        return min(MAX_TOKENS, self.args.max_seq_len)

    def run(self, tokens: list[int]) -> None:
        """The whole prompt through the model, from position 0, into a fresh cache."""
        self.cache = batched.KVCache.allocate(self.args, self.limit(), torch.float32)
        self.tokens, trace = list(tokens), {}
        with torch.no_grad():
            batched.forward(torch.tensor(tokens), self.weights, self.args, trace=trace, cache=self.cache)
        self.trace = {name: t for name, t in trace.items() if kept(name)}

    def append(self, token: int) -> None:
        """One more token: only its pass, against the cached keys and values; its rows join the trace."""
        new: dict[str, torch.Tensor] = {}
        start = len(self.tokens)
        with torch.no_grad():
            batched.forward(torch.tensor([token]), self.weights, self.args, trace=new, cache=self.cache,
                            start=start)
        self.tokens.append(token)
        self.trace = {name: _extend(name, old, new[name]) for name, old in self.trace.items()}


def kept(name: str) -> bool:
    """What the page reads of a trace: every step of layer 0 and the final steps; of the other
    layers only their output (logit lens, residual size) and attention (heatmaps, habit heads).
    Keeping only these makes each *Append* extend 5 tensors a layer instead of 16."""
    return (not name.startswith("layers.") or name.startswith("layers.0.") or name.endswith(".out")
            or step(name) in MASKED_FILL)


def _extend(name: str, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """A trace tensor with the new position's rows added: on its T axis; a [H, T, T] one also
    gains a column for the new key, which no earlier query could see (−inf score, 0 weight)."""
    letters = step_letters(name).split()
    if not letters:  # next_token: the new one replaces it
        return new
    axis = letters.index("T")
    if letters.count("T") == 2:  # scores, attention_weights: [H, T, T] + [H, 1, T + 1]
        fill = MASKED_FILL[step(name)]
        old = torch.cat([old, torch.full((*old.shape[:-1], 1), fill, dtype=old.dtype)], dim=-1)
    return torch.cat([old, new], dim=axis)


# --- what the page is sent ---

def token_list(tokenizer, tokens: list[int]) -> list[dict]:
    bos = getattr(tokenizer, "bos_id", None)
    return [{"id": t, "text": tokenizer.token_text(t), "bos": t == bos} for t in tokens]


def step_values(trace: dict, args, position: int) -> list[dict]:
    """Every step of layer 0 (and the final ones) with its shape, the 8B's, and values at `position`."""
    big = trace_shapes(PRESETS["llama3-8b"], len(trace["tokens"]))
    names = [*STEPS] + [f"layers.0.{s}" for s in LAYER_STEPS] + [f"layers.{args.n_layers - 1}.out", "norm", "logits"]
    rows = []
    for name in names:
        t = trace[name]
        letters = step_letters(name).split()
        axis = letters.index("T")
        at = t.select(axis, position) if t.ndim > 1 else t
        while at.ndim > 1:  # head 0 (kv head 0) where there are heads
            at = at[0]
        values = [round(float(v), 4) if t.is_floating_point() else int(v) for v in at[:VALUES_SHOWN]]
        rows.append({"name": name, "shape": list(t.shape), "shape_8b": list(big[name]), "letters": " ".join(letters),
                     "values": [_finite(v) for v in values], "page": DOCS_PAGE[step(name)]})
    return rows


def lens_rows(trace: dict, weights, args, tokenizer, position: int) -> list[dict]:
    probs = lens.logit_lens(trace, weights, args, position)  # [L, V]
    p, top = probs.max(-1)
    return [{"layer": i, "id": int(t), "text": tokenizer.token_text(int(t)), "p": round(float(q), 4)}
            for i, (q, t) in enumerate(zip(p, top))]


def top_tokens(trace: dict, tokenizer, position: int) -> list[dict]:
    probs = torch.softmax(trace["logits"][position].float(), dim=-1)
    p, ids = probs.topk(TOP)
    return [{"id": int(i), "text": tokenizer.token_text(int(i)), "p": round(float(q), 4)} for q, i in zip(p, ids)]


def residual_rms(trace: dict, args, position: int) -> list[float]:
    x = lens.stream(trace, args)[:, position]  # [L + 1, D]
    return [round(float(v), 4) for v in x.pow(2).mean(-1).sqrt()]


def habit_heads(trace: dict, args) -> dict:
    if len(trace["tokens"]) < 3:  # the criteria read query positions t ≥ 2
        return {}
    return {c: vars(lens.strongest_head(trace, args, c)) for c in lens.HEAD_CRITERIA}


def head_matrices(trace: dict, layer: int, head: int) -> dict:
    """One head's [T, T] scores (null where masked) and attention weights, under their trace
    names, rounded for a small answer."""
    matrices = {}
    for name, masked in MASKED_FILL.items():  # scores, attention_weights
        rows = trace[f"layers.{layer}.{name}"][head]
        digits = 3 if masked else 4
        matrices[name] = [[_finite(round(float(v), digits)) for v in row] for row in rows]
    return {"layer": layer, "head": head, **matrices}


def _finite(v):
    return v if v == v and v not in (float("inf"), float("-inf")) else None
