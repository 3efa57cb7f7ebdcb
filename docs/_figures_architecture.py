"""The overview's diagram: the whole model as one column of boxes, with Llama 3 8B's sizes beside them.

Boxes and arrows, no data: drawn with matplotlib's patches in the style of _figures.py.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

from _figures import BLUE, GREEN, INK, MAGENTA, MONOSPACE, ORANGE, PURPLE, svg, tr


def architecture(args, n_tokens: int) -> str:
    """The whole model as one column of boxes, each with its tensor's shape for Llama 3 8B inside.

    Narrow enough for a phone: the shapes sit under each box's name rather than in a column
    beside it, so the picture is one box wide plus the page numbers and the residual rail."""
    T, D, V, H, K, d, F, L = (n_tokens, args.dim, args.vocab_size, args.n_heads, args.n_kv_heads,
                              args.head_dim, args.hidden_dim, args.n_layers)
    steps = [  # (name, its shape, colour, page number); "+" is a residual sum
        (tr("prompt text"), '"the answer to … is "', None, None),
        (tr("tokenizer: byte-pair encoding (tiktoken)"), tr("{T} token ids", T=T), BLUE, "1"),
        (tr("tok_embeddings: one row per token"), f"[{T}, {D}]", BLUE, "2"),
        ("RMSNorm (attention_norm)", f"[{T}, {D}]", GREEN, "3"),
        (tr("attention: {H} query heads, {K} kv heads\nq k v per head → RoPE →\ncausal softmax → wo", H=H, K=K),
         f"q [{H}, {T}, {d}]\nscores [{H}, {T}, {T}]", ORANGE, "4–7"),
        ("+", tr("x + attention"), None, None),
        ("RMSNorm (ffn_norm)", f"[{T}, {D}]", GREEN, "3"),
        (tr("SwiGLU feed-forward:\nw2(silu(w1·x) ⊙ w3·x)"), f"hidden [{T}, {F}]", MAGENTA, "8"),
        ("+", tr("h + feed-forward"), None, None),
        ("RMSNorm (norm)", f"[{T}, {D}]", GREEN, "10"),
        (tr("output: a score for every token"), f"logits [{T}, {V}]", PURPLE, "10"),
        (tr("softmax of the last row → next token"), '"42"', PURPLE, "10"),
    ]
    line, gap, radius = 0.36, 0.42, 0.26  # height of a line of text, space between boxes (data units)
    width = 10.0
    cx, w, rail, left = 5.75, 7.5, 1.25, 0.8  # box centre and width; the rail of the residual sums; the dashed box
    layout, y = [], 0.0  # (centre y, height) of each step, top to bottom
    for i, (text, beside, _, _) in enumerate(steps):
        h = 2 * radius if text == "+" else line * (text.count("\n") + beside.count("\n") + 2) + 0.2
        layout.append((y - h / 2, h))
        y -= h + gap + (0.5 if i == 8 else 0)  # room under the layers' dashed box for its label
    bottom = y + gap
    fig = plt.figure(figsize=(4.0, 4.0 * (-bottom + 0.9) / width))
    ax = fig.add_axes((0, 0, 1, 1))  # the whole figure: one data unit is the same length across and down
    ax.set_xlim(0, width)
    ax.set_ylim(bottom - 0.6, 0.3)
    ax.axis("off")
    for (text, beside, color, page), (y, h) in zip(steps, layout):
        if text == "+":
            ax.add_patch(plt.Circle((cx, y), radius, fill=False, ec=INK, lw=1))
            ax.text(cx, y, "+", ha="center", va="center", fontsize=11)
            ax.text(cx + radius + 0.2, y, beside, fontsize=8, va="center", style="italic")
            continue
        face = matplotlib.colors.to_rgba(color, 0.18) if color else "none"
        ax.add_patch(FancyBboxPatch((cx - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.12",
                                    fc=face, ec=color or INK, lw=1))
        ax.text(cx, y + h / 2 - 0.12, text, ha="center", va="top", fontsize=8, linespacing=1.3)  # the name on top
        ax.text(cx, y - h / 2 + 0.12, beside, ha="center", va="bottom", fontsize=8, family=MONOSPACE,
                linespacing=1.3, alpha=0.8)  # its shape underneath
        if page:
            ax.text(left - 0.2, y, page, ha="right", va="center", fontsize=8, color=color, fontweight="bold")
    for (y0, h0), (y1, h1) in zip(layout, layout[1:]):
        ax.annotate("", xy=(cx, y1 + h1 / 2), xytext=(cx, y0 - h0 / 2),
                    arrowprops=dict(arrowstyle="-|>", color=INK, lw=0.9, shrinkA=0, shrinkB=0))
    sums = [i for i, step in enumerate(steps) if step[0] == "+"]
    for i in sums:  # the residual skips the sub-block: from above the norm before it, round to the sum
        (y_prev, h_prev), (y_norm, h_norm) = layout[i - 3], layout[i - 2]
        branch = (y_prev - h_prev / 2 + y_norm + h_norm / 2) / 2
        plus = layout[i][0]
        ax.plot([cx, rail, rail], [branch, branch, plus], color=INK, lw=0.9)
        ax.annotate("", xy=(cx - radius, plus), xytext=(rail, plus),
                    arrowprops=dict(arrowstyle="-|>", color=INK, lw=0.9, shrinkA=0, shrinkB=0))
    first = layout[sums[0] - 3]
    top_of_layer = (first[0] - first[1] / 2 + layout[sums[0] - 2][0] + layout[sums[0] - 2][1] / 2) / 2 + 0.15
    end_of_layer = layout[sums[-1]][0] - radius - 0.15
    ax.add_patch(FancyBboxPatch((left, end_of_layer), width - 0.15 - left, top_of_layer - end_of_layer,
                                boxstyle="round,pad=0.02,rounding_size=0.2", fill=False, ec=INK, lw=0.8, ls=(0, (4, 3))))
    ax.text(width - 0.15, end_of_layer - 0.1, tr("× {L} layers (page 9)", L=L), ha="right", va="top", fontsize=8,
            fontweight="bold")  # under the dashed box, clear of its edge, of the box below and of the arrow
    return svg(fig, tr("The Llama 3 architecture as a column of boxes"),
               tr("Llama 3 8B from prompt to prediction, with the shape of each step's tensor for the "
                  "{T}-token prompt under its name. The numbers on the left are the pages of this site; the lines "
                  "on the left carry the residual stream round each sub-block to the sum (+) after it.", T=T))
