"""RoPE's pictures: its frequencies, its rotations in the complex plane, and the score against distance.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from _figures import BLUE, GREEN, INK, ORANGE, PALETTE, log_labels, panels, svg, tr


def rope_spectrum(models: list[tuple[str, np.ndarray, int, float]], max_seq_len: int) -> str:
    """θ_j per pair, and the wavelength 2π/θ_j (positions per full turn), for each model:
    (name, its θ_j, its head_dim d, its rope_theta θ). Two panels."""
    f1, a1 = plt.subplots(figsize=(4.4, 3.0))
    f2, a2 = plt.subplots(figsize=(4.4, 3.0))
    for (name, freqs, d, theta), color in zip(models, (BLUE, ORANGE)):
        j = np.arange(len(freqs))
        a1.plot(j, freqs, "o-", ms=2.5, lw=1, color=color, label=tr("{name}:\nθ = {theta:,.0f}, d = {d}", name=name, theta=theta, d=d))
        a2.plot(j, 2 * np.pi / freqs, "o-", ms=2.5, lw=1, color=color)
    a1.set_yscale("log")
    a1.set_xlabel(tr("pair j"))
    a1.set_ylabel(tr("θ_j  (radians per position)"))
    a1.set_title(tr("rotation speed of each pair"))
    a1.legend(fontsize=8, loc="upper right")
    a2.set_yscale("log")
    a2.axhline(max_seq_len, color=INK, lw=0.8, ls="--")
    a2.text(0, max_seq_len * 1.6, tr("context: {n:,} positions", n=max_seq_len), fontsize=8)
    a2.set_xlabel(tr("pair j"))
    a2.set_ylabel(tr("positions per full turn"))
    a2.set_title(tr("wavelength 2π / θ_j"))
    for a in (a1, a2):
        a.grid(True, which="major")
        log_labels(a.yaxis)
    which = tr(" and ").join(tr("θ = {theta:,.0f} for {name} ({colour}, d = {d})", theta=theta, name=name,
                                colour=tr("blue" if i == 0 else "orange"), d=d)
                             for i, (name, _, d, theta) in enumerate(models))
    return panels([(f1, tr("RoPE: the rotation speed θ_j of each pair, log scale")),
                   (f2, tr("RoPE: the wavelength of each pair, in positions per full turn, log scale"))],
                  tr("RoPE's frequencies θ_j = θ^(−2j/d), with {which}. The first pair turns one radian per "
                     "position; the last ones turn so slowly that they never finish a turn within the "
                     "{n:,}-position context.", which=which, n=max_seq_len))


def rope_rotation(q: np.ndarray, q_rot: np.ndarray, position: int, trail: np.ndarray, trail_pairs: list[int]) -> str:
    """One query's pairs as complex numbers before and after RoPE, and a few pairs turning with position: two panels."""
    pairs = q.reshape(-1, 2)
    rotated = q_rot.reshape(-1, 2)
    n = min(len(pairs), 8)
    f1, a1 = plt.subplots(figsize=(3.7, 3.7))
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
    a1.set_xlabel(tr("real part  q[2j]\ndashed: before RoPE · solid: after"))
    a1.set_ylabel(tr("imaginary part  q[2j+1]"))
    a1.set_title(tr("pairs j = 0…{last} of one query\nat position {position}", last=n - 1, position=position))
    a1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), handlelength=1.2, title=tr("pair"), title_fontsize=8)
    f2, a2 = plt.subplots(figsize=(3.7, 3.7))
    for k, j in enumerate(trail_pairs):
        color = PALETTE[k % len(PALETTE)]
        points = trail[:, j]  # [positions, 2]
        a2.scatter(points[:, 0], points[:, 1], s=10, color=color, label=tr("pair {j}", j=j), zorder=3)
        if k == 0:  # pair 0 turns one radian per position: label its first steps, well apart
            for m in range(0, min(4, len(points))):
                a2.text(*(points[m] * 1.22), f"m={m}", fontsize=8, color=color, ha="center", va="center")
    circle = np.linspace(0, 2 * np.pi, 200)
    a2.plot(np.cos(circle), np.sin(circle), color=INK, lw=0.5, alpha=0.4)
    a2.set_xlim(-1.35, 1.35)
    a2.set_ylim(-1.35, 1.35)
    a2.set_aspect("equal")
    a2.set_title(tr("e^(i·m·θ_j) for positions\nm = 0…{last}", last=len(trail) - 1))
    a2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return panels([(f1, tr("The first {n} pairs of one query as arrows in the complex plane, before and after RoPE", n=n)),
                   (f2, tr("The unit rotations e^(i·m·θ_j) of four pairs, one point per position"))],
                  tr("First panel: RoPE treats each adjacent pair of a query as a complex number and turns it by "
                     "m·θ_j; lengths do not change. Second: the unit rotations themselves, one point per position: "
                     "the first pair races round the circle, later pairs barely move."))


def rope_distance(curves: list[tuple[str, np.ndarray]], title: str) -> str:
    """Mean attention score against relative distance, one curve per variant."""
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    for (name, values), color in zip(curves, (ORANGE, BLUE, GREEN)):
        ax.plot(np.arange(len(values)), values, lw=1.4, color=color, label=tr(name))
    ax.set_xlabel(tr("distance between query and key, in tokens"))
    ax.set_ylabel(tr("mean score q·k/√d"))
    ax.set_title(tr(title))
    ax.legend(fontsize=8)
    ax.grid(True)
    return svg(fig, tr("Attention score by relative distance"),
               tr("The mean score over every query–key pair the same distance apart. With RoPE (orange) the score "
                  "falls with distance: the rotations make near keys match better. The same queries and keys "
                  "without their rotations (blue) have no notion of distance. The rise at the far right is the first "
                  "token, which only the longest distances reach: the heads' attention sink."))
