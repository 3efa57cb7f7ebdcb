"""The overview's diagram: the whole model as one column of boxes, with Llama 3 8B's sizes beside them.

Boxes and arrows, no data: drawn with matplotlib's patches in the style of _figures.py.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

from _figures import BLUE, GREEN, INK, MAGENTA, ORANGE, PURPLE, svg


def architecture(args, n_tokens: int) -> str:
    """The whole model as one column of boxes, with Llama 3 8B's sizes beside them."""
    T, D, V, H, K, d, F, L = (n_tokens, args.dim, args.vocab_size, args.n_heads, args.n_kv_heads,
                              args.head_dim, args.hidden_dim, args.n_layers)
    steps = [  # (y, text, shape beside it, colour, page number)
        (13.0, "prompt text", '"the answer to … is "', None, None),
        (11.9, "tokenizer: byte-pair encoding (tiktoken)", f"{T} token ids", BLUE, "1"),
        (10.8, "tok_embeddings: one row per token", f"[{T}, {D}]", BLUE, "2"),
        (9.5, "RMSNorm (attention_norm)", f"[{T}, {D}]", GREEN, "3"),
        (8.4, f"attention: {H} query heads, {K} kv heads\nq k v per head → RoPE → causal softmax → wo",
         f"q [{H}, {T}, {d}]\nscores [{H}, {T}, {T}]", ORANGE, "4–7"),
        (7.2, "+", "", None, None),
        (6.2, "RMSNorm (ffn_norm)", f"[{T}, {D}]", GREEN, "3"),
        (5.1, "SwiGLU feed-forward: w2(silu(w1·x) ⊙ w3·x)", f"hidden [{T}, {F}]", MAGENTA, "8"),
        (3.9, "+", "", None, None),
        (2.6, "RMSNorm (norm)", f"[{T}, {D}]", GREEN, "10"),
        (1.5, "output: a score for every token", f"logits [{T}, {V}]", PURPLE, "10"),
        (0.4, "softmax of the last row → next token", '"42"', PURPLE, "10"),
    ]
    fig, ax = plt.subplots(figsize=(6.8, 6.6))
    ax.set_xlim(0.0, 11.4)
    ax.set_ylim(-0.2, 13.6)
    ax.axis("off")
    cx, w, rail = 4.4, 5.9, 1.1  # box centre and width; the residual connections run down the rail
    ax.add_patch(FancyBboxPatch((0.8, 3.45), 7.1, 6.75, boxstyle="round,pad=0.02,rounding_size=0.2",
                                fill=False, ec=INK, lw=0.8, ls=(0, (4, 3))))
    ax.text(7.8, 3.32, f"× {L} layers (page 9)", ha="right", va="top", fontsize=8.5, fontweight="bold")  # under the box
    heights = []
    for y, text, beside, color, page in steps:
        if text == "+":
            ax.add_patch(plt.Circle((cx, y), 0.28, fill=False, ec=INK, lw=1))
            ax.text(cx, y, "+", ha="center", va="center", fontsize=11)
            heights.append(0.56)
            continue
        h = 0.8 if "\n" in text else 0.6
        heights.append(h)
        face = matplotlib.colors.to_rgba(color, 0.18) if color else "none"
        ax.add_patch(FancyBboxPatch((cx - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.12",
                                    fc=face, ec=color or INK, lw=1))
        ax.text(cx, y, text, ha="center", va="center", fontsize=7.8, linespacing=1.4)
        ax.text(cx + w / 2 + 0.8, y, beside, ha="left", va="center", fontsize=7.6, family="monospace",
                linespacing=1.4)
        if page:
            ax.text(0.65, y, page, ha="right", va="center", fontsize=7.5, color=color, fontweight="bold")
    ys = [s[0] for s in steps]
    for (y0, h0), (y1, h1) in zip(zip(ys, heights), zip(ys[1:], heights[1:])):
        ax.annotate("", xy=(cx, y1 + h1 / 2), xytext=(cx, y0 - h0 / 2),
                    arrowprops=dict(arrowstyle="-|>", color=INK, lw=0.9, shrinkA=0, shrinkB=0))
    for branch, plus, what in ((10.0, 7.2, "x + attention"), (6.85, 3.9, "h + feed-forward")):
        ax.plot([cx, rail, rail], [branch, branch, plus], color=INK, lw=0.9)  # the residual skips the sub-block
        ax.annotate("", xy=(cx - 0.28, plus), xytext=(rail, plus),
                    arrowprops=dict(arrowstyle="-|>", color=INK, lw=0.9, shrinkA=0, shrinkB=0))
        ax.text(cx + 0.45, plus, f"residual: {what}", fontsize=7.6, va="center", style="italic")
    return svg(fig, "The Llama 3 architecture as a column of boxes",
               f"Llama 3 8B from prompt to prediction, with the shape of each step's tensor for the "
               f"{T}-token prompt. The numbers on the left are the pages of this site.", max_width=640)
