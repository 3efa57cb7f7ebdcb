"""The pages' pictures: the style they share, and `svg()`, which turns a figure into inline HTML.

Drawn with matplotlib while the site builds and inlined as SVG. Readable in the light and the
dark theme: backgrounds are transparent, data colours are mid tones, and every text, axis and
outline is drawn in a placeholder colour that `svg()` turns into `currentColor`, so it takes
the page's own text colour. Nothing is written to disk: a figure is a string of HTML that the
page prints.

A picture fits a phone's column without scrolling sideways, its text never under 8 px there;
wider ones are drawn as panels that stand side by side on a wide screen and stack on a narrow one.

The figures themselves are in the modules beside this one, one per subject, each built on this:
_figures_architecture.py (the overview), _figures_heatmaps.py (embeddings, q/k/v, attention),
_figures_rope.py, _figures_blocks.py (RMSNorm, SwiGLU) and _figures_layers.py (the residual
stream, the logit lens, the prediction, bfloat16 against float32).

Every word a figure shows goes through `tr()` (docs/_lang.py): on a Chinese page the labels,
titles, captions and alt text are drawn in Chinese. matplotlib measures the text to lay the
figure out, so it needs a font with every glyph: DejaVu Sans, then Noto Sans CJK (Debian's
fonts-noto-cjk) where DejaVu has none. A glyph that no font has would be measured as a box and
the layout would be wrong: `_svg()` turns matplotlib's "Glyph ... missing from font(s)" warning
into an error, so the build fails and names the figure.
"""

from __future__ import annotations

import functools
import io
import math
import re
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from cycler import cycler  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from _lang import language, tr  # noqa: E402, F401 - the figures' modules take tr from here

INK = "#010203"  # placeholder for the page's text colour; svg() replaces it with currentColor
BLUE, ORANGE, GREEN, MAGENTA, PURPLE, TEAL, OCHRE, RED = (
    "#4f7fd9", "#e07b39", "#3aa675", "#c9508a", "#8a6fd1", "#2fa6b5", "#c7a03a", "#d9534f")
PALETTE = [BLUE, ORANGE, GREEN, MAGENTA, PURPLE, TEAL, OCHRE, RED]

STYLE = {
    "svg.fonttype": "none",  # text stays text: the browser draws it, in any script
    "svg.hashsalt": "llama3-reference",  # stable ids, so a rebuild gives the same page
    "font.size": 10, "xtick.labelsize": 8.5, "ytick.labelsize": 8.5, "legend.fontsize": 8.5,
    "font.family": ["DejaVu Sans", "Noto Sans CJK SC", "sans-serif"],  # Chinese falls back to Noto, glyph by glyph
    "text.color": INK, "axes.labelcolor": INK, "axes.edgecolor": INK, "axes.titlecolor": INK,
    "xtick.color": INK, "ytick.color": INK, "grid.color": INK, "grid.alpha": 0.15,
    "axes.facecolor": "none", "figure.facecolor": "none", "savefig.facecolor": "none",
    "savefig.transparent": True, "legend.frameon": False,
    "axes.spines.top": False, "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=PALETTE),
    "axes.titlesize": 10, "axes.titleweight": "bold",
}
plt.rcParams.update(STYLE)
CJK_FONT = "Noto Sans CJK SC"
MONOSPACE = ["DejaVu Sans Mono", "Noto Sans Mono CJK SC"]  # family= for code and token text
MISSING_GLYPH = r"Glyph \d+ .*missing from font"  # matplotlib's warning, an error in _svg()


@functools.cache
def cjk_font() -> str | None:
    """The file of the CJK font matplotlib measures Chinese with, or None if there is none.

    matplotlib keeps a cache of the system's fonts and does not look again when a font is
    installed later, nor does its cache take the .ttc collections Debian's fonts-noto-cjk ships:
    they are added here, once."""
    from matplotlib import font_manager

    def found():
        try:
            return font_manager.findfont(font_manager.FontProperties(family=CJK_FONT), fallback_to_default=False)
        except ValueError:
            return None

    if found() is None:
        for path in font_manager.findSystemFonts():
            if Path(path).name.startswith(("NotoSansCJK", "NotoSansMonoCJK")):
                font_manager.fontManager.addfont(path)
    return found()


cjk_font()  # before any text is measured: matplotlib caches what it finds for a font's name


def _alpha_map(name: str, color: str) -> LinearSegmentedColormap:
    """0 → transparent, 1 → `color`: a heatmap that sits on either theme's background."""
    rgb = matplotlib.colors.to_rgb(color)
    return LinearSegmentedColormap.from_list(name, [(*rgb, 0.0), (*rgb, 1.0)])


def _diverging_map(name: str) -> LinearSegmentedColormap:
    """Negative → blue, positive → orange, opaque in proportion to |v|: transparent only at 0.

    The stops are placed at 0, ½ and 1 of the scale. Four colours spread evenly instead
    (blue, clear blue, clear orange, orange) would put the clear ones at ⅓ and ⅔ and hide every
    value within a third of the range from zero (an attention sink's +8 beside a −37 vanished).
    """
    b, o = matplotlib.colors.to_rgb(BLUE), matplotlib.colors.to_rgb(ORANGE)
    return LinearSegmentedColormap.from_list(
        name, [(0.0, (*b, 1.0)), (0.5, (*b, 0.0)), (0.5, (*o, 0.0)), (1.0, (*o, 1.0))], N=256)


MASKED = (0.5, 0.5, 0.5, 0.18)  # masked (-inf) cells: a faint grey on either theme
WEIGHTS_MAP = _alpha_map("l3_weights", ORANGE).with_extremes(bad=MASKED)
SIGNED_MAP = _diverging_map("l3_signed").with_extremes(bad=MASKED)


# The page's column on a 390 px phone (Material's 16 px margins each side). A figure shrinks
# to fit it and never scrolls sideways, so each figure (or panel) is drawn narrow enough that
# its smallest text is still READABLE_PX there: _svg() refuses one that is not, and the build
# fails naming it. Wide pictures are several panels, side by side where the column is wide
# enough and one under the other on a phone (panels()).
PHONE_COLUMN_PX = 358
READABLE_PX = 8.0


def svg(fig, alt: str, caption: str = "", max_width: int | None = None) -> str:
    """The figure as inline SVG in a <figure>, its text in the page's colour; closes the figure."""
    element, _ = _svg(fig, alt, max_width)
    return _figure(element, caption)


def panels(figs: list[tuple[object, str]], caption: str = "") -> str:
    """Several figures (each with its alt text) as the panels of one <figure>: side by side when the
    column has room for them at their natural size, stacked on a narrow screen; one caption."""
    elements = []
    for fig, alt in figs:
        element, natural = _svg(fig, alt)
        elements.append(element.replace('style="width: 100%; ', f'style="flex: 1 1 {natural}px; min-width: 0; ', 1))
    return _figure('<div class="l3-panels">\n' + "\n".join(elements) + "\n</div>", caption)


def _figure(body: str, caption: str) -> str:
    caption = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure class="l3-figure">\n{body}\n{caption}</figure>\n'


def _svg(fig, alt: str, max_width: int | None = None) -> tuple[str, int]:
    """The figure as an inline <svg> element, and its natural width in CSS px; closes the figure.

    Raises ValueError if its smallest text would be under READABLE_PX on a phone."""
    if cjk_font() is None and language() != "en":
        raise RuntimeError(f"no {CJK_FONT} font to draw the Chinese pages' figures with: install Debian's "
                           "fonts-noto-cjk (apt-get install -y fonts-noto-cjk)")
    buffer = io.StringIO()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=MISSING_GLYPH)
            fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    except UserWarning as e:
        raise ValueError(f"figure {alt!r}: {e} (no font here can draw it: the picture would show a box)") from None
    finally:
        plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # no XML declaration or doctype inside HTML
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = text.replace(INK, "currentColor")
    width = float(re.search(r'width="([\d.]+)pt"', text).group(1))  # the viewBox's width: 1 unit = 1 pt
    natural = max_width or round(width * 4 / 3)  # pt -> CSS px
    sizes = [float(f) for f in re.findall(r"font-size: ([\d.]+)px", text)]  # in the viewBox's units
    on_phone = min(sizes, default=READABLE_PX) * min(natural, PHONE_COLUMN_PX) / width
    if on_phone < READABLE_PX - 1e-6:
        widest = min(sizes) * PHONE_COLUMN_PX / READABLE_PX
        raise ValueError(f"figure {alt!r}: its smallest text ({min(sizes):g} pt) would be {on_phone:.1f} px high on a "
                         f"390 px phone, under {READABLE_PX:g}: it is {width:.0f} pt wide; draw it at most {widest:.0f} pt "
                         f"({widest / 72:.2f} in) wide, or in panels (panels()), or with larger text")
    text = re.sub(r' width="[\d.]+pt" height="[\d.]+pt"',
                  f' role="img" aria-label="{_attr(alt)}" style="width: 100%; max-width: {natural}px; height: auto"',
                  text, count=1)
    text = text.replace("<image ", '<image style="image-rendering: pixelated" ')  # heatmap cells stay sharp
    text = re.sub(r"\n\s*", "\n", text)  # Markdown must not read indented lines as code
    return text, natural


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def log_labels(axis) -> None:
    """A log axis labelled at its powers of ten as one piece of text each, "0.01", "1", "10⁵":
    matplotlib's default "10^5" draws the exponent as a second text at 6 pt, under 8 px on a phone."""
    def power(v, _):
        e = round(math.log10(v)) if v > 0 else 0
        if v <= 0 or not math.isclose(v, 10.0 ** e, rel_tol=1e-9):
            return ""
        return f"{v:g}" if -2 <= e <= 3 else "10" + str(e).translate(_SUPERSCRIPT)
    axis.set_major_formatter(FuncFormatter(power))
    axis.set_minor_formatter(NullFormatter())


def _attr(s: str) -> str:
    return s.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def label(text: str, limit: int = 18) -> str:
    """A token's text for an axis: spaces shown as ␣, control characters escaped, long ones trimmed."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text).replace(" ", "␣")
    return shown if len(shown) <= limit else shown[:limit - 1] + "…"
