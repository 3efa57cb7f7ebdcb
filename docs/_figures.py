"""The pages' pictures, drawn with matplotlib while the site builds and inlined as SVG.

Readable in the light and the dark theme: backgrounds are transparent, data colours are mid
tones, and every text, axis and outline is drawn in a placeholder colour that `svg()` turns
into `currentColor`, so it takes the page's own text colour. Nothing is written to disk: a
figure is a string of HTML that the page prints.
"""

from __future__ import annotations

import io
import math
import re
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from cycler import cycler  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402
from matplotlib.ticker import FormatStrFormatter  # noqa: E402

INK = "#010203"  # placeholder for the page's text colour; svg() replaces it with currentColor
BLUE, ORANGE, GREEN, MAGENTA, PURPLE, TEAL, OCHRE, RED = (
    "#4f7fd9", "#e07b39", "#3aa675", "#c9508a", "#8a6fd1", "#2fa6b5", "#c7a03a", "#d9534f")
PALETTE = [BLUE, ORANGE, GREEN, MAGENTA, PURPLE, TEAL, OCHRE, RED]

STYLE = {
    "svg.fonttype": "none",  # text stays text: the browser draws it, in any script
    "svg.hashsalt": "llama3-reference",  # stable ids, so a rebuild gives the same page
    "font.size": 10, "xtick.labelsize": 8.5, "ytick.labelsize": 8.5, "legend.fontsize": 8.5,
    "font.family": "sans-serif",
    "text.color": INK, "axes.labelcolor": INK, "axes.edgecolor": INK, "axes.titlecolor": INK,
    "xtick.color": INK, "ytick.color": INK, "grid.color": INK, "grid.alpha": 0.15,
    "axes.facecolor": "none", "figure.facecolor": "none", "savefig.facecolor": "none",
    "savefig.transparent": True, "legend.frameon": False,
    "axes.spines.top": False, "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=PALETTE),
    "axes.titlesize": 10, "axes.titleweight": "bold",
}
plt.rcParams.update(STYLE)
# Token text may be in any script; the browser draws it from its own fonts, so matplotlib's
# measuring font lacking a glyph is harmless.
warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")


def _alpha_map(name: str, color: str) -> LinearSegmentedColormap:
    """0 → transparent, 1 → `color`: a heatmap that sits on either theme's background."""
    rgb = matplotlib.colors.to_rgb(color)
    return LinearSegmentedColormap.from_list(name, [(*rgb, 0.0), (*rgb, 1.0)])


def _diverging_map(name: str) -> LinearSegmentedColormap:
    """Negative → blue, 0 → transparent, positive → orange."""
    b, o = matplotlib.colors.to_rgb(BLUE), matplotlib.colors.to_rgb(ORANGE)
    return LinearSegmentedColormap.from_list(name, [(*b, 1.0), (*b, 0.0), (*o, 0.0), (*o, 1.0)], N=256)


WEIGHTS_MAP = _alpha_map("l3_weights", ORANGE)
SIGNED_MAP = _diverging_map("l3_signed")
MASKED = (0.5, 0.5, 0.5, 0.18)  # masked (-inf) cells: a faint grey on either theme
for cmap in (WEIGHTS_MAP, SIGNED_MAP):
    cmap.set_bad(MASKED)


# On a narrow screen a figure may shrink to this fraction of its natural size and no further
# (its 8 pt labels stay ≥ 8 px); below that it scrolls sideways inside its frame instead.
READABLE = 0.75


def svg(fig, alt: str, caption: str = "", max_width: int | None = None) -> str:
    """The figure as inline SVG in a <figure>, its text in the page's colour; closes the figure."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # no XML declaration or doctype inside HTML
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = text.replace(INK, "currentColor")
    width = re.search(r'width="([\d.]+)pt"', text).group(1)
    natural = max_width or round(float(width) * 4 / 3)  # pt -> CSS px
    text = re.sub(r' width="[\d.]+pt" height="[\d.]+pt"',
                  f' role="img" aria-label="{_attr(alt)}" style="width: 100%; max-width: {natural}px; '
                  f'min-width: {min(natural, round(natural * READABLE))}px; height: auto"',
                  text, count=1)
    text = text.replace("<image ", '<image style="image-rendering: pixelated" ')  # heatmap cells stay sharp
    text = re.sub(r"\n\s*", "\n", text)  # Markdown must not read indented lines as code
    caption = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure class="l3-figure">\n{text}\n{caption}</figure>\n'


def _attr(s: str) -> str:
    return s.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def label(text: str, limit: int = 18) -> str:
    """A token's text for an axis: spaces shown as ␣, control characters escaped, long ones trimmed."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text).replace(" ", "␣")
    return shown if len(shown) <= limit else shown[:limit - 1] + "…"


# --- overview ---


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


def rope_spectrum(models: list[tuple[str, np.ndarray, int]], max_seq_len: int) -> str:
    """θ_j per pair, and the wavelength 2π/θ_j (positions per full turn), for each model."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 2.8))
    for (name, freqs, d), color in zip(models, (BLUE, ORANGE)):
        j = np.arange(len(freqs))
        a1.plot(j, freqs, "o-", ms=2.5, lw=1, color=color, label=f"{name} (d = {d}, {len(freqs)} pairs)")
        a2.plot(j, 2 * np.pi / freqs, "o-", ms=2.5, lw=1, color=color)
    a1.set_yscale("log")
    a1.set_xlabel("pair j")
    a1.set_ylabel("θ_j  (radians per position)")
    a1.set_title("rotation speed of each pair")
    a1.legend(fontsize=8)
    a2.set_yscale("log")
    a2.axhline(max_seq_len, color=INK, lw=0.8, ls="--")
    a2.text(0, max_seq_len * 1.4, f"context: {max_seq_len:,} positions", fontsize=8)
    a2.set_xlabel("pair j")
    a2.set_ylabel("positions per full turn")
    a2.set_title("wavelength 2π / θ_j")
    for a in (a1, a2):
        a.grid(True, which="major")
    return svg(fig, "RoPE frequency spectrum",
               "RoPE's frequencies θ_j = θ^(−2j/d) with θ = 500,000. The first pair turns one radian per "
               "position; the last ones turn so slowly that they never finish a turn within the context.")


def rope_rotation(q: np.ndarray, q_rot: np.ndarray, position: int, trail: np.ndarray, trail_pairs: list[int]) -> str:
    """One query's pairs as complex numbers before and after RoPE, and one pair turning with position."""
    pairs = q.reshape(-1, 2)
    rotated = q_rot.reshape(-1, 2)
    n = min(len(pairs), 8)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.6, 3.8), gridspec_kw={"wspace": 0.55})
    lim = 1.15 * max(np.abs(pairs[:n]).max(), np.abs(rotated[:n]).max())
    for j in range(n):
        color = PALETTE[j % len(PALETTE)]
        a1.annotate("", xy=pairs[j], xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color=color, lw=1, alpha=0.35,
                                                                     ls="--", shrinkA=0, shrinkB=0))
        a1.annotate("", xy=rotated[j], xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color=color, lw=1.4,
                                                                       shrinkA=0, shrinkB=0))
        a1.plot([], [], color=color, lw=1.4, label=f"j={j}")  # a legend entry: labels at the tips collide
    a1.set_xlim(-lim, lim)
    a1.set_ylim(-lim, lim)
    a1.set_aspect("equal")
    a1.axhline(0, color=INK, lw=0.5)
    a1.axvline(0, color=INK, lw=0.5)
    a1.set_xlabel("real part  q[2j]")
    a1.set_ylabel("imaginary part  q[2j+1]")
    a1.set_title(f"pairs j = 0…{n - 1} of one query at position {position}")
    a1.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.0, 1.0), handlelength=1.2, title="pair", title_fontsize=7.5)
    a1.text(0.0, -0.28, "dashed: before RoPE · solid: after", transform=a1.transAxes, fontsize=8)
    for k, j in enumerate(trail_pairs):
        color = PALETTE[k % len(PALETTE)]
        points = trail[:, j]  # [positions, 2]
        a2.scatter(points[:, 0], points[:, 1], s=10, color=color, label=f"pair {j}", zorder=3)
        if k == 0:  # pair 0 turns one radian per position: label its first steps, well apart
            for m in range(0, min(4, len(points))):
                a2.text(*(points[m] * 1.22), f"m={m}", fontsize=7.5, color=color, ha="center", va="center")
    circle = np.linspace(0, 2 * np.pi, 200)
    a2.plot(np.cos(circle), np.sin(circle), color=INK, lw=0.5, alpha=0.4)
    a2.set_xlim(-1.35, 1.35)
    a2.set_ylim(-1.35, 1.35)
    a2.set_aspect("equal")
    a2.set_title(f"e^(i·m·θ_j) for positions m = 0…{len(trail) - 1}")
    a2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return svg(fig, "RoPE rotations in the complex plane",
               "Left: RoPE treats each adjacent pair of a query as a complex number and turns it by m·θ_j; "
               "lengths do not change. Right: the unit rotations themselves, one point per position: the first "
               "pair races round the circle, later pairs barely move.")


# --- heatmaps ---


def _token_axes(ax, labels: list[str], every: int = 1, fontsize: float = 8):
    ticks = list(range(0, len(labels), every))
    ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize=fontsize)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)


def attention_head(scores: np.ndarray, weights: np.ndarray, labels: list[str], head: int, layer: int,
                   why: str = "") -> str:
    """One head's masked scores and their softmax, rows = queries, columns = keys, token labels."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.6, 4.4), gridspec_kw={"wspace": 0.25})
    finite = scores[np.isfinite(scores)]
    bound = np.abs(finite).max()
    im1 = a1.imshow(np.where(np.isfinite(scores), scores, np.nan), cmap=SIGNED_MAP, vmin=-bound, vmax=bound,
                    interpolation="none")
    im2 = a2.imshow(weights, cmap=WEIGHTS_MAP, vmin=0, vmax=1, interpolation="none")
    mask = np.triu(np.ones_like(weights, dtype=bool), 1)
    a2.imshow(np.where(mask, 1.0, np.nan), cmap=matplotlib.colors.ListedColormap([MASKED]), interpolation="none")
    for ax, title in ((a1, f"scores: q·kᵀ/√d + mask (head {head})"), (a2, f"softmax: attention weights (head {head})")):
        _token_axes(ax, labels)
        ax.set_title(title)
        ax.set_xlabel("key (attended to)")
    a1.set_ylabel("query (attending)")
    a2.set_yticklabels([])  # the same tokens as on the left
    for im, ax in ((im1, a1), (im2, a2)):
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        bar.outline.set_visible(False)
        bar.ax.tick_params(labelsize=8, length=2)
    return svg(fig, f"Layer {layer} head {head}: masked scores and softmax",
               f"Layer {layer}, head {head}. Left: the scaled dot products q·kᵀ/√d; grey cells above the diagonal "
               f"are the causal mask (−∞: a token may not look ahead). Right: the softmax of each row, so every "
               f"row sums to 1; the first row can only attend to the first token. Scores: blue negative, orange "
               f"positive, centred at 0." + (f" {why}" if why else ""))


def attention_heads(weights: np.ndarray, labels: list[str], n_rep: int, layer: int) -> str:
    """Every head's attention weights as small multiples, one colour scale, a colour bar, and the
    heads that share a kv head grouped by a bracket underneath (not by colour: colour means weight)."""
    H = len(weights)
    groups_per_row = max(1, 8 // n_rep)
    cols = n_rep * min(groups_per_row, H // n_rep)
    rows = math.ceil(H / cols)
    size = 1.05 if cols > 4 else 1.6  # inches per head
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 0.9, (size + 0.45) * rows), squeeze=False)
    mask = np.triu(np.ones_like(weights[0], dtype=bool), 1)
    for h, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(True)
            side.set_linewidth(0.5)
        if h >= H:
            ax.axis("off")
            continue
        im = ax.imshow(weights[h], cmap=WEIGHTS_MAP, vmin=0, vmax=1, interpolation="none")
        ax.imshow(np.where(mask, 1.0, np.nan), cmap=matplotlib.colors.ListedColormap([MASKED]), interpolation="none")
        ax.set_title(f"head {h}", fontsize=7.5, fontweight="normal", pad=2)
    fig.subplots_adjust(wspace=0.12, hspace=0.55, right=0.88)
    bar = fig.colorbar(im, ax=list(axes.flat), fraction=0.025, pad=0.02)  # first: it moves the axes
    bar.outline.set_visible(False)
    bar.set_label("attention weight", fontsize=8)
    bar.ax.tick_params(labelsize=7, length=2)
    for g in range(H // n_rep):  # a bracket under each kv group: from its first head to its last
        first, last = axes.flat[g * n_rep], axes.flat[g * n_rep + n_rep - 1]
        x0, x1 = first.get_position().x0, last.get_position().x1
        y = first.get_position().y0 - 0.012
        fig.add_artist(plt.Line2D([x0, x0, x1, x1], [y + 0.008, y, y, y + 0.008], color=INK, lw=0.9))
        fig.text((x0 + x1) / 2, y - 0.006, f"kv head {g}", ha="center", va="top", fontsize=7.5)
    return svg(fig, f"Attention weights of all {H} heads of layer {layer}",
               f"All {H} query heads of layer {layer} (rows: queries, columns: keys, the {len(labels)} tokens in "
               f"order; grey: the causal mask). A bracket joins the {n_rep} query heads that share one key/value "
               f"head: they compare against the same keys, each with its own query.")


def qkv_head(q: np.ndarray, k: np.ndarray, v: np.ndarray, labels: list[str], head: int, kv: int) -> str:
    """One query head's q and its kv head's k and v, [T, d] each, side by side on one colour scale each."""
    fig, axes = plt.subplots(1, 3, figsize=(8.6, 0.2 * len(labels) + 1.3), sharey=True)
    for ax, values, title in zip(axes, (q, k, v), (f"q, head {head}", f"k, kv head {kv}", f"v, kv head {kv}")):
        bound = np.percentile(np.abs(values), 99)  # a few outlier dimensions would wash out the rest
        im = ax.imshow(values, cmap=SIGNED_MAP, vmin=-bound, vmax=bound, aspect="auto", interpolation="none")
        ax.set_title(title)
        ax.set_xlabel("dimension of the head")
        ax.tick_params(length=0)
        bar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
        bar.outline.set_visible(False)
        bar.ax.tick_params(labelsize=7, length=2)
    axes[0].set_yticks(range(len(labels)), labels, fontsize=8)
    return svg(fig, f"Query head {head} and kv head {kv}: q, k and v per token",
               f"Layer 0: each token's query (head {head}), key and value (kv head {kv}), one row per token, "
               f"orange positive, blue negative, each on its own scale, clipped at its 99th percentile so that a few "
               f"outlier dimensions do not wash out the rest.")


def matrix(values: np.ndarray, labels: list[str], title: str, xlabel: str, alt: str, caption: str) -> str:
    """A [T, n] slice as a signed heatmap, one row per token."""
    fig, ax = plt.subplots(figsize=(8, 0.22 * len(labels) + 1.0))
    bound = np.abs(values).max()
    im = ax.imshow(values, cmap=SIGNED_MAP, vmin=-bound, vmax=bound, aspect="auto", interpolation="none")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    for side in ax.spines.values():
        side.set_visible(False)
    bar = fig.colorbar(im, ax=ax, fraction=0.025, pad=0.02)
    bar.outline.set_visible(False)
    bar.ax.tick_params(labelsize=8, length=2)
    return svg(fig, alt, caption)


# --- RMSNorm ---


def rms_before_after(inputs: list[tuple[str, np.ndarray]], before: np.ndarray, after: np.ndarray, labels: list[str],
                     which: str) -> str:
    """Each token's RMS going into several norms (after: 1), and one vector before and after a norm."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.6, 3.4), gridspec_kw={"width_ratios": [1.1, 1]})
    idx = np.arange(len(labels))
    for (name, x), color in zip(inputs, (BLUE, GREEN, PURPLE)):
        a1.plot(idx, np.sqrt((x ** 2).mean(-1)), "o-", ms=3, lw=1, color=color, label=f"into {name}")
    a1.axhline(1.0, color=ORANGE, lw=1.6, ls="--", label="after: divided by it")
    a1.set_yscale("log")
    a1.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    a1.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    a1.set_xticks(idx, labels, rotation=90)
    a1.set_ylabel("RMS = √mean(x²)")
    a1.set_title("every token's size, before and after")
    a1.legend(loc="best")
    a1.grid(True, axis="y")
    n = min(64, before.shape[-1])
    a2.plot(range(n), before[:n], "o-", ms=2.5, lw=0.8, color=BLUE, label="before")
    a2.plot(range(n), after[:n], "o-", ms=2.5, lw=0.8, color=ORANGE, label="after (with the gain)")
    a2.axhline(0, color=INK, lw=0.5)
    a2.set_xlabel(f"dimension (first {n} of {before.shape[-1]})")
    a2.set_title(which)
    a2.legend(loc="best")
    return svg(fig, "RMSNorm before and after",
               "Left: the root mean square of each token's vector as it goes into three of the model's RMSNorms; "
               "whatever it was, afterwards it is 1 (before the learned gain). Right: one vector before and after: "
               "the whole vector is rescaled, then the gain rescales each dimension; signs do not change.")


# --- SwiGLU ---


def swiglu_gate(gate_in: np.ndarray) -> str:
    """silu next to relu, and where layer 0's gate inputs fall on it."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 2.8))
    x = np.linspace(-6, 6, 400)
    silu = x / (1 + np.exp(-x))
    a1.plot(x, np.maximum(x, 0), color=INK, lw=0.8, ls="--", label="relu(x)")
    a1.plot(x, silu, color=MAGENTA, lw=1.6, label="silu(x) = x·sigmoid(x)")
    a1.axhline(0, color=INK, lw=0.4)
    a1.axvline(0, color=INK, lw=0.4)
    a1.set_title("the gate's activation")
    a1.legend(fontsize=8)
    a1.grid(True)
    a2.hist(gate_in.ravel(), bins=60, color=MAGENTA, alpha=0.8)
    a2.set_title("layer 0: w1·x over all tokens and hidden units")
    a2.set_xlabel("gate input")
    a2.set_ylabel("count")
    return svg(fig, "silu and the distribution of gate inputs",
               "silu is smooth, lets small negative values through, and is close to the identity for large "
               "inputs; it is applied to w1·x, and the result multiplies w3·x unit by unit.")


# --- the layers and the prediction ---


def residual_stream(steps: list[str], rms: np.ndarray, updates: np.ndarray, labels: list[str]) -> str:
    """The residual stream's size after each sub-block, per token, and the relative size of each update."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.6, 3.4))
    T = rms.shape[1]
    for t in range(T):
        last = t == T - 1
        a1.plot(range(len(steps)), rms[:, t], lw=1.6 if last else 0.7, alpha=1 if last else 0.45,
                color=ORANGE if last else BLUE, label=f"last token ({labels[-1]})" if last else None)
    every = 1 if len(steps) <= 24 else 8  # 65 steps for 32 layers: label every fourth layer
    ticks = [i for i in range(len(steps)) if i % every == 0]
    a1.set_xticks(ticks, [steps[i] for i in ticks], rotation=90, fontsize=8)
    a1.set_ylabel("RMS of the stream")
    a1.set_title("its size, token by token")
    a1.legend(fontsize=8)
    a1.grid(True)
    x = np.arange(len(updates))
    a2.bar(x, updates.mean(1), color=[GREEN if i % 2 == 0 else MAGENTA for i in x])
    a2.set_xticks([i - 1 for i in ticks if i > 0], [steps[i] for i in ticks if i > 0], rotation=90, fontsize=8)
    a2.set_ylabel("‖update‖ / ‖stream before‖")
    a2.set_title("each sub-block's update, relative")
    a2.grid(True, axis="y")
    return svg(fig, "The residual stream layer by layer",
               "Left: the size (root mean square) of each token's vector in the residual stream after every "
               "attention and feed-forward sub-block; the last token in orange. Right: the size of what each "
               "sub-block adds, relative to the stream it adds to, averaged over the tokens.")


def top_tokens(labels: list[str], probs: np.ndarray, chosen: int = 0, title: str = "the ten most likely next tokens") -> str:
    """A horizontal bar per candidate token, most likely on top."""
    fig, ax = plt.subplots(figsize=(6.4, 0.3 * len(labels) + 0.8))
    y = np.arange(len(labels))[::-1]
    ax.barh(y, probs, color=[ORANGE if i == chosen else BLUE for i in range(len(labels))])
    ax.set_yticks(y, labels, fontsize=8, family="monospace")
    for yi, p in zip(y, probs):
        ax.text(p, yi, f" {p:.3g}", va="center", fontsize=8)
    ax.set_xlim(0, max(probs) * 1.2)
    ax.set_xlabel("probability")
    ax.set_title(title)
    return svg(fig, "Top ten next-token probabilities",
               "The softmax of the last row of the logits: the model's probability for each next token. The "
               "walk-through takes the most likely one (greedy decoding).", max_width=560)


def logit_lens(layers: list[int], answer_probs: np.ndarray, answer: str, top: list[str], won: int | None) -> str:
    """The final answer's probability after every layer, with the lens's top token written above."""
    fig, ax = plt.subplots(figsize=(8.6, 3.2))
    ax.plot(layers, answer_probs, "o-", ms=3, lw=1.4, color=ORANGE)
    if won is not None:
        ax.axvline(won, color=INK, lw=0.8, ls="--")
        ax.text(won, 1.04, f"“{answer}” on top from layer {won}", ha="right", va="bottom", fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_xticks(layers, [str(i) for i in layers], fontsize=7.5)
    ax.set_xlabel("after layer")
    ax.set_ylabel(f"p(“{answer}”)")
    ax.grid(True)
    return svg(fig, f"The probability of {answer} layer by layer",
               f"The logit lens: after each layer, the final norm and the output projection applied to the last "
               f"token's vector in the residual stream. The curve is the probability it gives the model's final "
               f"answer, “{answer}”; the table above lists the top token at every layer.")


def rope_distance(curves: list[tuple[str, np.ndarray]], title: str) -> str:
    """Mean attention score against relative distance, one curve per variant."""
    fig, ax = plt.subplots(figsize=(7.2, 3.0))
    for (name, values), color in zip(curves, (ORANGE, BLUE, GREEN)):
        ax.plot(np.arange(len(values)), values, lw=1.4, color=color, label=name)
    ax.set_xlabel("distance between query and key, in tokens")
    ax.set_ylabel("mean score q·k/√d")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(True)
    return svg(fig, "Attention score by relative distance",
               "The mean score over every query–key pair the same distance apart. With RoPE (orange) the score "
               "falls with distance: the rotations make near keys match better. The same queries and keys "
               "without their rotations (blue) have no notion of distance. The rise at the far right is the first "
               "token, which only the longest distances reach: the heads' attention sink.", max_width=700)


def residual_outliers(rms: np.ndarray, dims: np.ndarray, dim_labels: list[str]) -> str:
    """The stream's RMS per layer boundary, and the mean |value| of its outlier dimensions."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.6, 3.0))
    x = np.arange(len(rms))
    a1.plot(x, rms, "o-", ms=2.5, lw=1.2, color=BLUE)
    a1.set_xlabel("layer boundary (0: embeddings)")
    a1.set_ylabel("RMS, mean over tokens")
    a1.set_title("the stream's size")
    a1.grid(True)
    for values, name, color in zip(dims, dim_labels, PALETTE[1:]):
        a2.plot(x, values, lw=1.2, color=color, label=name)
    a2.set_xlabel("layer boundary")
    a2.set_ylabel("mean |value|")
    a2.set_title("its outlier dimensions")
    if dim_labels:
        a2.legend(fontsize=7.5)
    a2.grid(True)
    return svg(fig, "The residual stream's size and its outlier dimensions",
               "Left: the root mean square of the stream after each layer. Right: the few dimensions whose "
               "values are far larger than the rest, beside the median dimension's.")


def compare_by_layer(table: dict[str, dict[int, float]], tolerance: float, title: str) -> str:
    """Two traces' error by layer, one line per step (log scale), the tolerance dashed."""
    fig, ax = plt.subplots(figsize=(8.6, 3.6))
    for k, (name, row) in enumerate(table.items()):  # 14 steps, 8 colours: the second eight dashed
        layers = sorted(row)
        ax.plot(layers, [max(row[i], 1e-12) for i in layers], lw=1, color=PALETTE[k % len(PALETTE)],
                ls="-" if k < len(PALETTE) else "--", label=name)
    ax.axhline(tolerance, color=INK, lw=0.8, ls="--")
    ax.text(0, tolerance * 1.3, f"float32's tolerance {tolerance:g}", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("layer")
    ax.set_ylabel("max |B − A| / max |A|")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(True)
    return svg(fig, "Error of a bfloat16 pass against float32, by layer and step",
               "Every step's error, layer by layer: the same model on the same tokens computed in bfloat16 (B) "
               "against float32 (A). bfloat16 keeps 8 bits of mantissa, so the traces part at the first tensor "
               "and the error stays at that level through the layers: no single step is to blame.")
