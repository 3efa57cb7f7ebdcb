"""What one sub-block does to a vector: RMSNorm's rescaling, and SwiGLU's gate.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from _figures import BLUE, GREEN, INK, MAGENTA, ORANGE, PURPLE, panels, tr


def rms_before_after(inputs: list[tuple[str, np.ndarray]], before: np.ndarray, after: np.ndarray, labels: list[str],
                     which: str) -> str:
    """Each token's RMS going into several norms (after: 1), and one vector before and after a norm: two panels."""
    f1, a1 = plt.subplots(figsize=(4.4, 3.6))
    idx = np.arange(len(labels))
    for (name, x), color in zip(inputs, (BLUE, GREEN, PURPLE)):
        a1.plot(idx, np.sqrt((x ** 2).mean(-1)), "o-", ms=3, lw=1, color=color, label=tr("into {name}", name=tr(name)))
    a1.axhline(1.0, color=ORANGE, lw=1.6, ls="--", label=tr("after: divided by it"))
    a1.set_yscale("log")
    # Labels on the decades and on 2 and 5 between them only where the axis spans little: a minor
    # label at every tick of a wide log axis runs into its neighbours.
    a1.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    low, high = a1.get_ylim()
    a1.yaxis.set_minor_locator(LogLocator(subs=(2, 5) if high / low < 300 else ()))
    a1.yaxis.set_minor_formatter(FormatStrFormatter("%g") if high / low < 300 else NullFormatter())
    a1.set_xticks(idx, labels, rotation=90, fontsize=8)
    a1.set_ylabel("RMS = √mean(x²)")
    a1.set_title(tr("every token's size, before and after"))
    a1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), fontsize=8, ncol=2, handlelength=1.5)
    a1.grid(True, axis="y")
    f2, a2 = plt.subplots(figsize=(4.4, 3.0))
    n = min(64, before.shape[-1])
    a2.plot(range(n), before[:n], "o-", ms=2.5, lw=0.8, color=BLUE, label=tr("before"))
    a2.plot(range(n), after[:n], "o-", ms=2.5, lw=0.8, color=ORANGE, label=tr("after (with the gain)"))
    a2.axhline(0, color=INK, lw=0.5)
    a2.set_xlabel(tr("dimension (first {n} of {d})", n=n, d=before.shape[-1]))
    a2.set_title(tr(which))
    a2.legend(loc="best", fontsize=8)
    return panels([(f1, tr("RMSNorm: each token's root mean square going into three norms, and after them, log scale")),
                   (f2, tr("RMSNorm: one vector's first dimensions before and after the final norm"))],
                  tr("First panel: the root mean square of each token's vector as it goes into three of the model's "
                     "RMSNorms; whatever it was, afterwards it is 1 (before the learned gain). Second: one vector "
                     "before and after: the whole vector is rescaled, then the gain rescales each dimension; signs "
                     "do not change."))


def swiglu_gate(gate_in: np.ndarray) -> str:
    """silu next to relu, and where layer 0's gate inputs fall on it: two panels."""
    f1, a1 = plt.subplots(figsize=(3.9, 2.8))
    x = np.linspace(-6, 6, 400)
    silu = x / (1 + np.exp(-x))
    a1.plot(x, np.maximum(x, 0), color=INK, lw=0.8, ls="--", label="relu(x)")
    a1.plot(x, silu, color=MAGENTA, lw=1.6, label="silu(x) = x·sigmoid(x)")
    a1.axhline(0, color=INK, lw=0.4)
    a1.axvline(0, color=INK, lw=0.4)
    a1.set_title(tr("the gate's activation"))
    a1.legend(fontsize=8)
    a1.grid(True)
    f2, a2 = plt.subplots(figsize=(3.9, 2.8))
    a2.hist(gate_in.ravel(), bins=60, color=MAGENTA, alpha=0.8)
    a2.set_title(tr("layer 0: w1·x over all tokens\nand hidden units"))
    a2.set_xlabel(tr("gate input"))
    a2.set_ylabel(tr("count"))
    return panels([(f1, tr("silu(x) beside relu(x)")), (f2, tr("A histogram of layer 0's gate inputs w1·x"))],
                  tr("silu is smooth, lets small negative values through, and is close to the identity for large "
                     "inputs; it is applied to w1·x, and the result multiplies w3·x unit by unit."))
