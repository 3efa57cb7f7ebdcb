"""`python -m reference walk`: the walk-through, printed — each step, its tensor's shape and values."""

from __future__ import annotations

import torch

from .trace import LAYER_STEPS

# What each trace name is, in the walk-through's words.
STEP_TITLES = {
    "tokens": "tokens: the prompt as BPE token ids, <|begin_of_text|> first",
    "embeddings": "token embeddings: one row of tok_embeddings.weight per token",
    "freqs_cis": "RoPE: cos and sin of m·θ_j for position m, pair j",
    "attention_norm": "RMSNorm of the layer input",
    "q": "queries per head, before RoPE",
    "k": "keys per kv head, before RoPE",
    "v": "values per kv head",
    "q_rotated": "queries after RoPE",
    "k_rotated": "keys after RoPE",
    "scores": "q·kᵀ/√d with the causal mask",
    "attention_weights": "softmax of the scores",
    "attention": "all heads' outputs side by side",
    "attention_out": "after wo",
    "h": "residual: layer input + attention",
    "ffn_norm": "RMSNorm of h",
    "ffn_out": "SwiGLU feed-forward: w2(silu(w1·x) ⊙ w3·x)",
    "out": "residual: h + feed-forward = the layer's output",
    "norm": "final RMSNorm",
    "logits": "logits: a score for every token of the vocabulary",
}


def preview(t: torch.Tensor, n: int = 4) -> str:
    """The first few values of the first row, as the walk-through shows them."""
    flat = t.detach().cpu()
    flat = (flat[0] if flat.ndim > 1 else flat).flatten()
    values = ", ".join(str(v) if isinstance(v, int) else f"{v:.4g}" for v in flat[:n].tolist())
    return f"[{values}{', …' if flat.numel() > n else ''}]"


def describe(name: str, t: torch.Tensor) -> str:
    step = name.rsplit(".", 1)[-1]
    shape = "[" + ", ".join(map(str, t.shape)) + "]"
    return f"  {name:<28} {shape:<16} {preview(t):<44} {STEP_TITLES.get(step, '')}"


def print_walk(trace: dict[str, torch.Tensor], tokenizer, *, all_layers: bool = False, top: int = 5,
               echo=print) -> None:
    """Print the trace in pipeline order: layer 0 step by step, then each layer's output."""
    tokens = trace["tokens"].tolist()
    echo("the prompt, token by token:")
    echo("  " + " ".join(f"{tok}:{tokenizer.token_text(tok)!r}" for tok in tokens))
    echo("")
    for name, t in trace.items():
        if name == "next_token":
            continue
        if name.startswith("layers."):
            layer, step = name.split(".")[1:3]
            detailed = all_layers or layer == "0"
            if step == LAYER_STEPS[0] and detailed:
                echo(f"layer {layer}:")
            if not detailed and step != "out":
                continue  # later layers repeat layer 0's steps: show only their output
        echo(describe(name, t))
    logits = trace["logits"][-1].float()
    probs = torch.softmax(logits, dim=-1)
    echo("")
    echo(f"top {top} next tokens after the last position:")
    for p, tok in zip(*probs.topk(top)):
        echo(f"  {int(tok):>6} {tokenizer.token_text(int(tok))!r:<20} p={float(p):.4f}  logit={float(logits[tok]):.4f}")
    next_token = int(trace["next_token"])
    echo("")
    echo(f"next token: {next_token} = {tokenizer.decode([next_token])!r}")
