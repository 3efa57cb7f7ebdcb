"""The pages' pictures: the style they share, and `svg()`, which turns a figure into inline HTML.

Drawn with matplotlib while the site builds and inlined as SVG. Readable in the light and the
dark theme: backgrounds are transparent, data colours are mid tones, and every text, axis and
outline is drawn in a placeholder colour that `svg()` turns into `currentColor`, so it takes
the page's own text colour. Nothing is written to disk: a figure is a string of HTML that the
page prints.

The figures themselves are in the modules beside this one, one per subject, each built on this:
_figures_architecture.py (the overview), _figures_heatmaps.py (embeddings, q/k/v, attention),
_figures_rope.py, _figures_blocks.py (RMSNorm, SwiGLU) and _figures_layers.py (the residual
stream, the logit lens, the prediction, bfloat16 against float32).
"""

from __future__ import annotations

import io
import re
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from cycler import cycler  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402

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
