"""Heatmaps with a row per token: embeddings, one head's q, k and v, and attention, one head or all.

Signed values (scores, activations) on _figures.py's diverging map, blue negative and orange
positive; attention weights on its orange map from 0 to 1; the causal mask in faint grey.
"""

from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from _figures import INK, MASKED, SIGNED_MAP, WEIGHTS_MAP, svg


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
