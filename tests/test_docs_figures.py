"""The pages' pictures, drawn from made-up numbers without building the site: what a reader must
be able to see in them (docs/_figures*.py).

A signed heatmap (scores, activations) fades to clear at zero and only there, and its colour
bar shows the same; an attention sink's column of +8 beside scores of −30 is visible.
"""

from __future__ import annotations

import base64
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the pictures need the docs extra: pip install -e '.[docs]'")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))  # the page helpers live beside the pages, as in mkdocs (docs/_hooks.py)

from _figures import BLUE, ORANGE, SIGNED_MAP  # noqa: E402
from _figures_heatmaps import attention_head, matrix, qkv_head  # noqa: E402


def _images(html: str) -> list[np.ndarray]:
    """The raster images inlined in a figure's SVG (heatmaps, colour bars), as RGBA arrays."""
    from PIL import Image

    found = re.findall(r'<image [^>]*?href="data:image/png;base64,([^"]+)"', html)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGBA")) for b in found]


def _signed_bars(html: str) -> list[np.ndarray]:
    """The colour bars on the signed map: tall, narrow images holding both blue and orange."""
    blue, orange = (np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)]) for c in (BLUE, ORANGE))
    bars = []
    for image in _images(html):
        h, w = image.shape[:2]
        rgb = image[..., :3].reshape(-1, 3).astype(int)
        if h > 5 * w and (np.abs(rgb - blue).sum(1) < 12).any() and (np.abs(rgb - orange).sum(1) < 12).any():
            bars.append(image)
    return bars


def test_signed_map_is_clear_only_at_zero_and_opaque_in_proportion_to_the_value():
    v = np.linspace(-1, 1, 2001)  # the value as a fraction of the colour scale's half-range
    alpha = SIGNED_MAP((v + 1) / 2)[:, 3]
    visible = np.abs(v) > 0.02
    assert (alpha[visible] > 0).all(), f"clear at v = {v[visible][alpha[visible] == 0][:5]} (of the range ±1)"
    assert np.abs(alpha - np.abs(v)).max() < 0.01, "alpha should equal |v| (of the range)"
    for side in (v >= 0, v <= 0):  # alpha grows with |v| on both sides of zero
        by_magnitude = alpha[side][np.argsort(np.abs(v[side]))]
        assert (np.diff(by_magnitude) >= -1e-9).all()
    assert alpha[0] == alpha[-1] == 1.0


def test_an_attention_sink_column_shows_in_the_scores_panel():
    """Layer 18 head 8 of SmolLM2: +8 on the first key, around −30 elsewhere (the bug: blank)."""
    T = 8
    scores = np.full((T, T), -30.0)
    scores[:, 0] = 8.0
    scores[np.triu_indices(T, 1)] = -np.inf
    weights = np.tril(np.ones((T, T)))
    weights[:, 1:] = 0
    weights[:, 0] = 1
    html = attention_head(scores, weights, [f"t{i}" for i in range(T)], head=8, layer=18)
    scores_image = _images(html)[0]  # the left panel, one pixel per cell
    assert scores_image.shape[:2] == (T, T)
    first_column = scores_image[:, 0, 3] / 255
    assert (first_column > 0.8 * 8 / 30).all(), f"the +8 column's alpha is {first_column}: invisible"


@pytest.mark.parametrize("figure", ["matrix", "qkv_head", "attention_head"])
def test_every_signed_colour_bar_is_clear_only_at_zero(figure):
    rng = np.random.default_rng(0)
    T, d = 6, 16
    values = rng.normal(size=(T, d)) * np.linspace(0.1, 3, d)
    labels = [f"t{i}" for i in range(T)]
    if figure == "matrix":
        html = matrix(values, labels, "title", "dimension", "alt", "caption")
    elif figure == "qkv_head":
        html = qkv_head(values, -values, values * 2, labels, head=0, kv=0)
    else:
        scores = np.where(np.tril(np.ones((T, T))) > 0, rng.normal(size=(T, T)) * 5, -np.inf)
        html = attention_head(scores, np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None], labels, head=0, layer=0)
    bars = _signed_bars(html)
    assert bars, f"{figure}: no colour bar on the signed (blue/orange) map"
    for bar in bars:
        alpha = bar[:, bar.shape[1] // 2, 3] / 255  # top (positive end) to bottom (negative end)
        position = np.linspace(1, -1, len(alpha))
        visible = np.abs(position) > 0.02
        assert (alpha[visible] > 0).all(), f"{figure}: its colour bar is clear away from zero"
        assert np.abs(alpha - np.abs(position)).max() < 0.03, f"{figure}: its colour bar's alpha is not |v|"


# --- fitting a phone, and the small things a reader trips over ---


def test_a_figure_too_wide_for_a_phone_fails_the_build():
    import matplotlib.pyplot as plt
    from _figures import svg

    fig, ax = plt.subplots(figsize=(8.6, 3.0))  # 8 pt labels across 8.6 in: 4.6 px on a 390 px phone
    ax.set_xlabel("a label")
    with pytest.raises(ValueError, match="under 8"):
        svg(fig, "too wide")


def test_panels_stand_side_by_side_or_stack_and_never_keep_a_min_width():
    import matplotlib.pyplot as plt
    from _figures import panels

    figs = []
    for name in ("one", "two"):
        fig, ax = plt.subplots(figsize=(4.0, 3.0))
        ax.set_title(name)
        figs.append((fig, f"panel {name}"))
    html = panels(figs, "a caption")
    assert html.count("<svg") == 2 and '<div class="l3-panels">' in html
    for style in re.findall(r'<svg [^>]*style="([^"]*)"', html):
        basis, cap = re.search(r"flex: 1 1 (\d+)px", style), re.search(r"max-width: (\d+)px", style)
        assert basis and cap and basis.group(1) == cap.group(1), style  # its natural width, shrinking below it
        assert not re.search(r"min-width: [1-9]", style), style


def _axis_labels(html: str, axis: str) -> list[list[tuple[float, float]]]:
    """Per panel, the (position along the axis, font size) of each labelled tick of its x or y axis."""
    import xml.etree.ElementTree as ET

    ns = "{http://www.w3.org/2000/svg}"
    found = []
    for svg in re.findall(r"<svg .*?</svg>", html, flags=re.S):
        ticks = []
        for group in ET.fromstring(svg).iter(f"{ns}g"):
            if not re.fullmatch(rf"{axis}tick_\d+", group.get("id", "")):
                continue
            for text in group.iter(f"{ns}text"):
                if (text.text or "").strip():
                    size = float(re.search(r"font-size: ([\d.]+)px", text.get("style")).group(1))
                    ticks.append((float(text.get(axis)), size))
        found.append(sorted(ticks))
    return found


@pytest.mark.parametrize("low, high", [(0.05, 300.0), (0.6, 40.0)])
def test_rmsnorm_log_axis_labels_do_not_run_into_each_other(low, high):
    from _figures_blocks import rms_before_after

    T, D = 6, 32
    scales = np.geomspace(low, high, 3)
    inputs = [(f"norm {i}", np.random.default_rng(i).normal(size=(T, D)) * s) for i, s in enumerate(scales)]
    html = rms_before_after(inputs, np.ones(D), np.ones(D), [f"t{i}" for i in range(T)], "one vector")
    ticks = _axis_labels(html, "y")[0]  # the first panel: RMS on a log axis
    assert len(ticks) >= 2, ticks
    for (y0, size), (y1, _) in zip(ticks, ticks[1:]):
        assert y1 - y0 >= size, f"y labels {y1 - y0:.1f} pt apart at {size} pt: they overlap ({ticks})"


def test_the_residual_stream_bars_have_a_legend_and_its_peak_a_label():
    from _figures_layers import residual_stream

    L, T = 3, 4
    steps = ["embeddings"] + [f"{i} {part}" for i in range(L) for part in ("attention", "feed-forward")]
    rms = np.ones((len(steps), T))
    rms[3, 0] = 850.0  # one token's one dimension, far above the rest
    html = residual_stream(steps, rms, np.full((len(steps) - 1, T), 0.1), ["a", "b", "c", "d"],
                           peak_note="token 0 (a): dimension 507")
    for words in ("an attention sub-block", "a feed-forward sub-block", "token 0 (a): dimension 507"):
        assert words in html, f"the figure does not say {words!r}"


def test_no_text_of_the_architecture_diagram_runs_into_a_box_edge(monkeypatch):
    """Each text is inside a box or clear of it: the '× 32 layers' label ran into the dashed box,
    the residual's label out of it."""
    import _figures_architecture
    from matplotlib.patches import FancyBboxPatch
    from reference.config import PRESETS

    drawn = {}
    monkeypatch.setattr(_figures_architecture, "svg", lambda fig, *a, **k: drawn.setdefault("fig", fig) and "")
    _figures_architecture.architecture(PRESETS["llama3-8b"], 17)
    fig = drawn["fig"]
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    boxes = [p.get_window_extent(renderer) for p in ax.patches if isinstance(p, FancyBboxPatch)]
    texts = [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts if t.get_text().strip()]
    assert len(boxes) >= 10 and len(texts) >= 20
    problems = []
    for words, t in texts:
        for b in boxes:
            inside = b.x0 <= t.x0 and t.x1 <= b.x1 and b.y0 <= t.y0 and t.y1 <= b.y1
            apart = t.x1 <= b.x0 or b.x1 <= t.x0 or t.y1 <= b.y0 or b.y1 <= t.y0
            if not (inside or apart):
                problems.append(f"{words!r} crosses the edge of a box")
    fig.clf()
    assert not problems, "\n".join(problems)
