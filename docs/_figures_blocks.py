"""What one sub-block does to a vector: RMSNorm's rescaling, and SwiGLU's gate.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FormatStrFormatter

from _figures import BLUE, GREEN, INK, MAGENTA, ORANGE, PURPLE, svg


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
