"""`python -m reference walk`: the walk-through, printed — each step, its tensor's shape and values."""

from __future__ import annotations

import torch

from ..trace import LAYER_STEPS, describe_step, step_letters

TOP = 5  # the most likely next tokens shown at the end


def preview(t: torch.Tensor, letters: str, n: int = 4) -> str:
    """The first few values at the *last* position (of head 0 where there are heads): at
    position 0 RoPE turns nothing and attention has one token to look at, so the first row
    would show neither at work. `letters` is the trace's shape, e.g. "H T d"."""
    flat = t.detach().cpu()
    axes = letters.split()
    if flat.ndim > 1 and "T" in axes:
        position = axes.index("T")
        flat = flat[(0,) * position + (-1,)]  # head 0 (or kv head 0), the last position
    flat = flat.flatten()
    values = ", ".join(str(v) if isinstance(v, int) else f"{v:.4g}" for v in flat[:n].tolist())
    return f"[{values}{', …' if flat.numel() > n else ''}]"


def describe(name: str, t: torch.Tensor) -> str:
    shape = "[" + ", ".join(map(str, t.shape)) + "]"
    return f"  {name:<28} {shape:<16} {preview(t, step_letters(name)):<44} {describe_step(name)}"


def print_header(ckpt, prompt: str, computing: str) -> None:
    """What runs: the checkpoint's sizes, whether its weights are trained, where, on which prompt."""
    from ..formats.synthesize import weights_origin

    a = ckpt.args
    print(f"checkpoint {ckpt.path}: dim {a.dim}, {a.n_layers} layers, {a.n_heads} heads, {a.n_kv_heads} kv heads, "
          f"head_dim {a.head_dim}, ffn {a.hidden_dim}, vocab {a.vocab_size}")
    print(f"weights: {weights_origin(ckpt.path)}")  # trained or synthesized
    print(computing)
    print(f"prompt: {prompt!r}" if len(prompt) <= 200 else f"prompt: {prompt[:200]!r}… ({len(prompt):,} characters)")
    print()


def print_walk(trace: dict[str, torch.Tensor], tokenizer, *, all_layers: bool = False) -> None:
    """Print the trace in pipeline order: layer 0 step by step, then each layer's output."""
    tokens = trace["tokens"].tolist()
    print("the prompt, token by token:")
    print("  " + " ".join(f"{tok}:{tokenizer.token_text(tok)!r}" for tok in tokens))
    print("")
    print(f"values: the first 4 at the last position ({len(tokens) - 1}: {tokenizer.token_text(tokens[-1])!r}), "
          f"head 0 where there are heads")
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
