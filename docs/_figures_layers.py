"""Through the layers to the prediction: the residual stream, the logit lens, the top tokens, and
bfloat16's error against float32 layer by layer.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np

from _figures import BLUE, GREEN, INK, MAGENTA, MONOSPACE, ORANGE, PALETTE, language, log_labels, panels, svg, tr


def residual_stream(steps: list[str], rms: np.ndarray, updates: np.ndarray, labels: list[str],
                    peak_note: str = "") -> str:
    """The residual stream's size after each sub-block, per token, and the relative size of each update:
    two panels. `steps` names the stream's states: "embeddings", then "i attention" and "i feed-forward"
    for each layer i; the x axis counts layers, after-attention states at i + ½. `peak_note` labels
    the highest point (what makes it so high)."""
    x = np.arange(len(steps)) / 2  # embeddings at 0, layer i's attention at i + ½, its feed-forward at i + 1
    f1, a1 = plt.subplots(figsize=(4.4, 3.2))
    T = rms.shape[1]
    for t in range(T):
        last = t == T - 1
        a1.plot(x, rms[:, t], lw=1.6 if last else 0.7, alpha=1 if last else 0.45,
                color=ORANGE if last else BLUE, label=tr("the last token ({token})", token=labels[-1]) if last else None)
    a1.plot([], [], lw=0.7, alpha=0.45, color=BLUE, label=tr("the other tokens"))
    if peak_note:
        step, token = np.unravel_index(np.argmax(rms), rms.shape)
        a1.annotate(tr(peak_note), xy=(x[step], rms[step, token]), xytext=(0.97, 0.72), textcoords="axes fraction",
                    ha="right", va="top", fontsize=8, arrowprops=dict(arrowstyle="-", color=INK, lw=0.6, shrinkB=2))
    a1.set_xlabel(tr("layers passed (0: the embeddings)"))
    a1.set_ylabel(tr("RMS of the stream"))
    a1.set_title(tr("its size, token by token"))
    a1.legend(fontsize=8, loc="center right", bbox_to_anchor=(1.0, 0.38))
    a1.grid(True)
    f2, a2 = plt.subplots(figsize=(4.4, 3.2))
    attention = np.arange(len(updates)) % 2 == 0
    a2.bar(x[1:][attention], updates.mean(1)[attention], width=0.45, color=GREEN, label=tr("an attention sub-block"))
    a2.bar(x[1:][~attention], updates.mean(1)[~attention], width=0.45, color=MAGENTA, label=tr("a feed-forward sub-block"))
    a2.set_xlabel(tr("layer"))
    a2.set_ylabel(tr("‖update‖ / ‖stream before‖"))
    a2.set_title(tr("each sub-block's update, relative"))
    a2.legend(fontsize=8, loc="upper right")
    a2.grid(True, axis="y")
    return panels([(f1, tr("The residual stream's size after every sub-block, one line per token")),
                   (f2, tr("The size of each sub-block's update relative to the stream it adds to, one bar per sub-block"))],
                  tr("First panel: the size (root mean square) of each token's vector in the residual stream after every "
                     "attention (at ½ past a layer number) and feed-forward sub-block; the last token in orange. "
                     "Second: the size of what each sub-block adds, relative to the stream it adds to, averaged over "
                     "the tokens: green for attention, magenta for feed-forward."))


def top_tokens(labels: list[str], probs: np.ndarray, chosen: int = 0, title: str = "the ten most likely next tokens") -> str:
    """A horizontal bar per candidate token, most likely on top."""
    fig, ax = plt.subplots(figsize=(4.4, 0.3 * len(labels) + 0.8))
    y = np.arange(len(labels))[::-1]
    ax.barh(y, probs, color=[ORANGE if i == chosen else BLUE for i in range(len(labels))])
    ax.set_yticks(y, labels, fontsize=8, family=MONOSPACE)
    for yi, p in zip(y, probs):
        ax.text(p, yi, f" {p:.3g}", va="center", fontsize=8)
    ax.set_xlim(0, max(probs) * 1.2)
    ax.set_xlabel(tr("probability"))
    title = tr(title)
    ax.set_title("\n".join(textwrap.wrap(title, 44 if language() == "en" else 24)))  # a long prompt wraps rather than widening the picture
    return svg(fig, tr("Top ten next-token probabilities"),
               tr("The softmax of the last row of the logits: the model's probability for each next token. The "
                  "walk-through takes the most likely one (greedy decoding)."))


def logit_lens(layers: list[int], answer_probs: np.ndarray, answer: str, top: list[str], won: int | None,
               top_probs: np.ndarray | None = None, vocab_size: int | None = None,
               top_listed: str = "the table above lists the top token at every layer") -> str:
    """The final answer's probability after every layer, with the layer from which it stays on top.

    With `top_probs` and `vocab_size` the axis is logarithmic, down to 1/V (every token alike),
    and the lens's top token's own probability is drawn too: a model whose answer never forms
    (random weights, p ≈ 1/V throughout) then shows where its curve lies instead of a flat line at 0.
    """
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    log = top_probs is not None and vocab_size is not None
    if log:
        ax.plot(layers, top_probs, "s-", ms=3, lw=1, color=BLUE, label=tr("the lens's top token, whichever it is"))
    ax.plot(layers, answer_probs, "o-", ms=3, lw=1.4, color=ORANGE, label=tr("the final answer, “{answer}”", answer=answer))
    if log:
        ax.set_yscale("log")
        log_labels(ax.yaxis)
        ax.axhline(1 / vocab_size, color=INK, lw=0.8, ls=":", label=tr("1/V = 1/{V:,}: every token alike", V=vocab_size))
        low = min(float(np.min(answer_probs)), 1 / vocab_size)
        ax.set_ylim(low / 5, 5.0)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.25))
    else:
        ax.set_ylim(0, 1.15)
    if won is not None:
        where = (tr("only after the last layer, {won}", won=won) if won == layers[-1]
                 else tr("from layer {won} to the end", won=won))
        ax.axvline(won, color=INK, lw=0.8, ls="--")
        ax.text(won - 0.2, 1.02 if not log else 1.3, tr("“{answer}” on top\n{where}", answer=answer, where=where), ha="right", va="bottom",
                fontsize=8)
    every = max(1, -(-len(layers) // 10))  # at most about ten labels: two-digit labels at 8 pt need the room
    ax.set_xticks(layers[::every], [str(i) for i in layers[::every]], fontsize=8)
    ax.set_xticks(layers, minor=True)
    ax.set_xlabel(tr("after layer"))
    ax.set_ylabel(tr("probability") if log else f"p(“{answer}”)")
    ax.grid(True)
    return svg(fig, tr("The probability of {answer} layer by layer", answer=answer),
               tr("The logit lens: after each layer, the final norm and the output projection applied to the last "
                  "token's vector in the residual stream. The orange curve is the probability it gives the model's "
                  "final answer, “{answer}”", answer=answer)
               + (tr("; the blue one, the probability of the lens's own top token, and the dotted line 1/V, what every "
                     "token would get if the model knew nothing (log scale)") if log else "")
               + tr("; {top_listed}.", top_listed=tr(top_listed)))


def residual_outliers(rms: np.ndarray, dims: np.ndarray, dim_labels: list[str]) -> str:
    """The stream's RMS per layer boundary, and the mean |value| of its outlier dimensions: two panels."""
    f1, a1 = plt.subplots(figsize=(4.0, 2.9))
    x = np.arange(len(rms))
    a1.plot(x, rms, "o-", ms=2.5, lw=1.2, color=BLUE)
    a1.set_xlabel(tr("layer boundary (0: embeddings)"))
    a1.set_ylabel(tr("RMS, mean over tokens"))
    a1.set_title(tr("the stream's size"))
    a1.grid(True)
    f2, a2 = plt.subplots(figsize=(4.0, 2.9))
    for values, name, color in zip(dims, dim_labels, PALETTE[1:]):
        a2.plot(x, values, lw=1.2, color=color, label=tr(name))
    a2.set_xlabel(tr("layer boundary"))
    a2.set_ylabel(tr("mean |value|"))
    a2.set_title(tr("its outlier dimensions"))
    if dim_labels:
        a2.legend(fontsize=8)
    a2.grid(True)
    return panels([(f1, tr("The residual stream's root mean square after each layer")),
                   (f2, tr("The mean size of the stream's outlier dimensions after each layer, beside the median dimension's"))],
                  tr("First panel: the root mean square of the stream after each layer. Second: the few dimensions "
                     "whose values are far larger than the rest, beside the median dimension's."))


def compare_by_layer(table: dict[str, dict[int, float]], tolerance: float, title: str) -> str:
    """Two traces' error by layer, one line per step (log scale), the tolerance dashed."""
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for k, (name, row) in enumerate(table.items()):  # 14 steps, 8 colours: the second eight dashed
        layers = sorted(row)
        ax.plot(layers, [max(row[i], 1e-12) for i in layers], lw=1, color=PALETTE[k % len(PALETTE)],
                ls="-" if k < len(PALETTE) else "--", label=name)
    ax.axhline(tolerance, color=INK, lw=0.8, ls="--")
    ax.text(0, tolerance * 1.3, tr("float32's tolerance {tolerance:g}", tolerance=tolerance), fontsize=8)
    ax.set_yscale("log")
    log_labels(ax.yaxis)
    ax.set_xlabel(tr("layer"))
    ax.set_ylabel("max |B − A| / max |A|")
    ax.set_title(tr(title))
    ax.legend(fontsize=8, ncol=2, loc="upper left", bbox_to_anchor=(-0.2, -0.2))  # below: the plot keeps the width
    ax.grid(True)
    return svg(fig, tr("Error of a bfloat16 pass against float32, by layer and step"),
               tr("Every step's error, layer by layer: the same model on the same tokens computed in bfloat16 (B) "
                  "against float32 (A). bfloat16 keeps 8 bits of mantissa, so the traces part at the first tensor "
                  "and the error stays at that level through the layers: no single step is to blame."))
