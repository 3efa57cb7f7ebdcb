"""The pictures of the Chinese edition, drawn from made-up numbers without building the site
(docs/_figures*.py): on a Chinese page every figure's words are Chinese, measured with a CJK
font (Debian's fonts-noto-cjk), and a glyph that no font can draw fails the figure instead of
showing a box.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the pictures need the docs extra: pip install -e '.[docs]'")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))  # the page helpers, as in mkdocs (docs/_hooks.py)

import _lang  # noqa: E402
from _figures import cjk_font, svg  # noqa: E402

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def chinese():
    _lang.set_language("zh")
    yield
    _lang.set_language("en")


def _texts(html: str) -> list[str]:
    """Every text a figure draws, and its alt text and caption."""
    drawn = [re.sub(r"<[^>]+>", "", t) for t in re.findall(r"<text\b[^>]*>(.*?)</text>", html, flags=re.S)]
    return drawn + re.findall(r'aria-label="([^"]*)"', html) + re.findall(r"<figcaption>(.*?)</figcaption>", html, re.S)


def test_a_cjk_font_is_installed_for_matplotlib():
    assert cjk_font() is not None, ("matplotlib finds no Noto Sans CJK: the Chinese pages' figures cannot be measured; "
                                    "install Debian's fonts-noto-cjk (apt-get install -y fonts-noto-cjk)")


def test_a_glyph_no_font_has_fails_the_figure():
    """matplotlib's "Glyph ... missing from font(s)" warning is an error: the figure would show a box."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.0, 2.0))
    ax.set_title("\U00013000")  # an Egyptian hieroglyph: in neither DejaVu Sans nor Noto Sans CJK
    with pytest.raises(ValueError, match=r"figure 'hieroglyph'.*Glyph 77824 .*missing from font"):
        svg(fig, "hieroglyph")


def test_chinese_text_is_drawn_without_a_missing_glyph(chinese):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.0, 2.0))
    ax.set_title(_lang.tr("rotation speed of each pair"))
    ax.set_xlabel(_lang.tr("pair j"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning at all, not only a missing glyph
        html = svg(fig, _lang.tr("Attention score by relative distance"))
    assert "每一对的旋转速度" in html and 'aria-label="按相对距离的注意力分数"' in html


def _every_figure() -> dict[str, str]:
    """One of each figure helper's pictures, from made-up numbers, in the current language."""
    from _figures_architecture import architecture
    from _figures_blocks import rms_before_after, swiglu_gate
    from _figures_heatmaps import attention_head, attention_heads, matrix, qkv_head
    from _figures_layers import compare_by_layer, logit_lens, residual_outliers, residual_stream, top_tokens
    from _figures_rope import rope_distance, rope_rotation, rope_spectrum
    from reference.config import PRESETS

    rng = np.random.default_rng(0)
    T, d, L = 6, 16, 4
    labels = [f"t{i}" for i in range(T)]
    x = rng.normal(size=(T, d))
    scores = np.where(np.tril(np.ones((T, T))) > 0, rng.normal(size=(T, T)), -np.inf)
    weights = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]
    steps = ["embeddings"] + [f"{i} {part}" for i in range(L) for part in ("attention", "feed-forward")]
    freqs = 1.0 / 10000 ** (np.arange(0, d, 2) / d)
    return {
        "architecture": architecture(PRESETS["llama3-8b"], 17),
        "matrix": matrix(x, labels, "embeddings: first 16 of 64 dimensions", "dimension",
                         "Heatmap of the token embeddings",
                         "One row per token of the prompt, one column per dimension; orange is positive, blue negative."),
        "qkv_head": qkv_head(x, x, x, labels, head=0, kv=0),
        "attention_head": attention_head(scores, weights, labels, head=1, layer=2,
                                         why="Chosen because its mean weight on the previous token, 0.72, is the "
                                             "highest of all heads."),
        "attention_heads": attention_heads(np.stack([weights] * 4), labels, n_rep=2, layer=0),
        "rms_before_after": rms_before_after([("layer 0's attention_norm", x), ("the final norm", 2 * x)], x[0], x[1],
                                             labels, "the last token (t5), final norm"),
        "swiglu_gate": swiglu_gate(x),
        "residual_stream": residual_stream(steps, np.ones((len(steps), T)), np.full((len(steps) - 1, T), 0.1), labels,
                                           "token 0 (t0): dimension 7\nalone is 99% of its size"),
        "top_tokens": top_tokens(labels, np.linspace(0.5, 0.1, T), title="after “The capital of France is”"),
        "logit_lens": logit_lens(list(range(L)), np.linspace(0.01, 0.8, L), "t1", labels[:L], 2,
                                 top_probs=np.full(L, 0.9), vocab_size=1000),
        "residual_outliers": residual_outliers(np.ones(L + 1), [np.ones(L + 1)], ["dimension 7"]),
        "compare_by_layer": compare_by_layer({"embeddings": {0: 1e-3, 1: 2e-3}}, 1e-4,
                                             "SmolLM2-135M-Instruct: bfloat16 against float32, 5 tokens"),
        "rope_spectrum": rope_spectrum([("tiny", freqs, d, 10000.0)], 8192),
        "rope_rotation": rope_rotation(x[0], x[1], 5, np.stack([np.cos(np.arange(T)[:, None] * freqs),
                                                                np.sin(np.arange(T)[:, None] * freqs)], -1), [0, 2]),
        "rope_distance": rope_distance([("with RoPE", np.ones(T)), ("the same q, k unrotated", np.zeros(T))],
                                       "SmolLM2-135M-Instruct, 132 tokens:\nmean score by distance, all 30 layers"),
    }


def test_every_figure_helper_speaks_chinese_on_a_chinese_page(chinese):
    """Titles, labels, legends, alt text and captions: no English word left but the code's names."""
    code_words = {"RoPE", "RMSNorm", "SwiGLU", "softmax", "Softmax", "silu", "sigmoid", "relu", "tiktoken", "attention_norm", "ffn_norm",
                  "tok_embeddings", "norm", "output", "logits", "hidden", "scores", "bfloat16", "float32", "logit", "lens",
                  "Llama", "SmolLM2", "Instruct", "tiny", "head_dim", "the", "answer", "is", "France", "capital",
                  "The", "of", "to", "RMS", "mean", "max", "trace", "embeddings"}  # names in code and formulas, the prompt's words
    for name, html in _every_figure().items():
        texts = _texts(html)
        assert any(CJK.search(t) for t in texts), f"{name}: no Chinese in {texts[:5]}"
        english = {w for t in texts for w in re.findall(r"[A-Za-z][A-Za-z_0-9]{2,}", t)} - code_words
        assert not english, f"{name}: English words on a Chinese page: {sorted(english)}"


def test_the_same_figures_stay_english_on_an_english_page():
    for name, html in _every_figure().items():
        assert not any(CJK.search(t) for t in _texts(html)), f"{name}: Chinese on an English page"


def test_no_text_of_the_chinese_architecture_diagram_runs_into_a_box_edge(chinese, monkeypatch):
    from test_docs_figures import test_no_text_of_the_architecture_diagram_runs_into_a_box_edge as in_english

    in_english(monkeypatch)  # the same check, on the Chinese labels
