"""`python -m reference walk`: the walk-through, printed — each step, its tensor's shape and values."""

from __future__ import annotations

import torch

from .trace import LAYER_STEPS, describe_step

TOP = 5  # the most likely next tokens shown at the end


def preview(t: torch.Tensor, n: int = 4) -> str:
    """The first few values of the first row, as the walk-through shows them."""
    flat = t.detach().cpu()
    flat = (flat[0] if flat.ndim > 1 else flat).flatten()
    values = ", ".join(str(v) if isinstance(v, int) else f"{v:.4g}" for v in flat[:n].tolist())
    return f"[{values}{', …' if flat.numel() > n else ''}]"


def describe(name: str, t: torch.Tensor) -> str:
    shape = "[" + ", ".join(map(str, t.shape)) + "]"
    return f"  {name:<28} {shape:<16} {preview(t):<44} {describe_step(name)}"


def print_walk(trace: dict[str, torch.Tensor], tokenizer, *, all_layers: bool = False) -> None:
    """Print the trace in pipeline order: layer 0 step by step, then each layer's output."""
    tokens = trace["tokens"].tolist()
    print("the prompt, token by token:")
    print("  " + " ".join(f"{tok}:{tokenizer.token_text(tok)!r}" for tok in tokens))
    print("")
    first_step, last_step = list(LAYER_STEPS)[0], list(LAYER_STEPS)[-1]  # a layer's norm ... its output
    for name, t in trace.items():
        if name == "next_token":
            continue
        if name.startswith("layers."):
            layer, step = name.split(".")[1:3]
            detailed = all_layers or layer == "0"
            if step == first_step and detailed:
                print(f"layer {layer}:")
            if not detailed and step != last_step:
                continue  # later layers repeat layer 0's steps: show only their output
        print(describe(name, t))
    logits = trace["logits"][-1].float()
    probs = torch.softmax(logits, dim=-1)
    print("")
    print(f"top {TOP} next tokens after the last position:")
    for p, tok in zip(*probs.topk(TOP)):
        print(f"  {int(tok):>6} {tokenizer.token_text(int(tok))!r:<20} p={float(p):.4f}  logit={float(logits[tok]):.4f}")
    next_token = int(trace["next_token"])
    print("")
    print(f"next token: {next_token} = {tokenizer.decode([next_token])!r}")
