"""Heatmaps with a row per token: embeddings, one head's q, k and v, and attention, one head or all.

Signed values (scores, activations) on _figures.py's diverging map, blue negative and orange
positive; attention weights on its orange map from 0 to 1; the causal mask in faint grey.
"""

from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from _figures import INK, MASKED, SIGNED_MAP, WEIGHTS_MAP, panels, svg, tr


def matrix(values: np.ndarray, labels: list[str], title: str, xlabel: str, alt: str, caption: str) -> str:
    """A [T, n] slice as a signed heatmap, one row per token; the words in the page's language."""
    fig, ax = plt.subplots(figsize=(4.6, 0.22 * len(labels) + 1.0))
    bound = np.abs(values).max()
    im = ax.imshow(values, cmap=SIGNED_MAP, vmin=-bound, vmax=bound, aspect="auto", interpolation="none")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel(tr(xlabel))
    ax.set_title(tr(title))
    for side in ax.spines.values():
        side.set_visible(False)
    _colour_bar(fig, im, ax, fraction=0.04)
    return svg(fig, tr(alt), tr(caption))


def _colour_bar(fig, im, ax, fraction: float = 0.046, pad: float = 0.03):
    bar = fig.colorbar(im, ax=ax, fraction=fraction, pad=pad)
    bar.outline.set_visible(False)
    bar.ax.tick_params(labelsize=8, length=2)
    return bar


def qkv_head(q: np.ndarray, k: np.ndarray, v: np.ndarray, labels: list[str], head: int, kv: int) -> str:
    """One query head's q and its kv head's k and v, [T, d] each, three panels, one colour scale each."""
    figs = []
    for values, title, what in ((q, tr("q, head {head}", head=head), "query"), (k, tr("k, kv head {kv}", kv=kv), "key"),
                                (v, tr("v, kv head {kv}", kv=kv), "value")):
        fig, ax = plt.subplots(figsize=(3.0, 0.2 * len(labels) + 1.3))
        bound = np.percentile(np.abs(values), 99)  # a few outlier dimensions would wash out the rest
        im = ax.imshow(values, cmap=SIGNED_MAP, vmin=-bound, vmax=bound, aspect="auto", interpolation="none")
        ax.set_title(title)
        ax.set_xlabel(tr("dimension of the head"))
        ax.tick_params(length=0)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        _colour_bar(fig, im, ax, fraction=0.08, pad=0.04)
        figs.append((fig, tr("Layer 0, {title}: each token's " + what + ", one row per token", title=title)))
    return panels(figs, tr("Layer 0: each token's query (head {head}), key and value (kv head {kv}), one row per token, "
                           "orange positive, blue negative, each on its own scale, clipped at its 99th percentile so "
                           "that a few outlier dimensions do not wash out the rest.", head=head, kv=kv))


def _token_axes(ax, labels: list[str], every: int = 1, fontsize: float = 8):
    ticks = list(range(0, len(labels), every))
    ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize=fontsize)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)


def attention_head(scores: np.ndarray, weights: np.ndarray, labels: list[str], head: int, layer: int,
                   why: str = "") -> str:
    """One head's masked scores and their softmax, rows = queries, columns = keys, token labels: two panels."""
    finite = scores[np.isfinite(scores)]
    bound = np.abs(finite).max()
    mask = np.triu(np.ones_like(weights, dtype=bool), 1)
    figs = []
    for kind in ("scores", "softmax"):
        fig, ax = plt.subplots(figsize=(4.1, 4.3))  # a CJK label is a little taller than a Latin one
        if kind == "scores":
            im = ax.imshow(np.where(np.isfinite(scores), scores, np.nan), cmap=SIGNED_MAP, vmin=-bound, vmax=bound,
                           interpolation="none")
            ax.set_title(tr("scores: q·kᵀ/√d + mask (head {head})", head=head))
            alt = tr("Layer {layer} head {head}: the masked scores, query tokens by key tokens", layer=layer, head=head)
        else:
            im = ax.imshow(weights, cmap=WEIGHTS_MAP, vmin=0, vmax=1, interpolation="none")
            ax.imshow(np.where(mask, 1.0, np.nan), cmap=matplotlib.colors.ListedColormap([MASKED]),
                      interpolation="none")
            ax.set_title(tr("softmax: attention weights (head {head})", head=head))
            alt = tr("Layer {layer} head {head}: the attention weights, the softmax of each row of scores",
                     layer=layer, head=head)
        _token_axes(ax, labels)
        ax.set_xlabel(tr("key (attended to)"))
        ax.set_ylabel(tr("query (attending)"))
        _colour_bar(fig, im, ax)
        figs.append((fig, alt))
    return panels(figs, tr("Layer {layer}, head {head}. Scores: the scaled dot products q·kᵀ/√d, blue negative, "
                           "orange positive, clear only at 0; grey cells above the diagonal are the causal mask (−∞: a "
                           "token may not look ahead). Softmax: each row of scores turned into weights that sum to 1; "
                           "the first row can only attend to the first token.", layer=layer, head=head)
                        + (tr(" {why}", why=tr(why)) if why else ""))


def attention_heads(weights: np.ndarray, labels: list[str], n_rep: int, layer: int) -> str:
    """Every head's attention weights as small multiples, one colour scale, a colour bar, and the
    heads that share a kv head grouped by a bracket underneath (not by colour: colour means weight)."""
    H = len(weights)
    groups_per_row = max(1, 4 // n_rep)  # narrow enough for a phone: a kv group (or two) per row
    cols = n_rep * min(groups_per_row, H // n_rep)
    rows = math.ceil(H / cols)
    size = min(1.6, 3.6 / cols)  # inches per head
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
        ax.set_title(tr("head {h}", h=h), fontsize=8, fontweight="normal", pad=2)
    fig.subplots_adjust(wspace=0.12, hspace=0.55, right=0.88)
    bar = fig.colorbar(im, ax=list(axes.flat), fraction=0.025, pad=0.02)  # first: it moves the axes
    bar.outline.set_visible(False)
    bar.set_label(tr("attention weight"), fontsize=8)
    bar.ax.tick_params(labelsize=8, length=2)
    for g in range(H // n_rep):  # a bracket under each kv group: from its first head to its last
        first, last = axes.flat[g * n_rep], axes.flat[g * n_rep + n_rep - 1]
        x0, x1 = first.get_position().x0, last.get_position().x1
        y = first.get_position().y0 - 0.012
        fig.add_artist(plt.Line2D([x0, x0, x1, x1], [y + 0.008, y, y, y + 0.008], color=INK, lw=0.9))
        fig.text((x0 + x1) / 2, y - 0.006, tr("kv head {g}", g=g), ha="center", va="top", fontsize=8)
    return svg(fig, tr("Attention weights of all {H} heads of layer {layer}", H=H, layer=layer),
               tr("All {H} query heads of layer {layer} (rows: queries, columns: keys, the {T} tokens in "
                  "order; grey: the causal mask). A bracket joins the {n_rep} query heads that share one key/value "
                  "head: they compare against the same keys, each with its own query.", H=H, layer=layer,
                  T=len(labels), n_rep=n_rep))
