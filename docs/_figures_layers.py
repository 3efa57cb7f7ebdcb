"""Through the layers to the prediction: the residual stream, the logit lens, the top tokens, and
bfloat16's error against float32 layer by layer.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from _figures import BLUE, GREEN, INK, MAGENTA, ORANGE, PALETTE, svg


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
