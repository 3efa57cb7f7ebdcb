"""The built site as a reader sees it, read from its HTML (tests/docs_site.py builds it once):
no Markdown left raw in the text, the numbers a page states agree with the model that computed
its values, captions that point at what is there, and figures drawn to fit a phone's column.

tests/test_docs_layout.py checks the same pages in Chromium at 390 and 1280 px.
"""

from __future__ import annotations

import math
import re
from html import unescape
from html.parser import HTMLParser

import pytest

pytest.register_assert_rewrite("docs_site")  # imported here, before pytest loads it as a plugin (below)
from docs_site import ROOT, Build, nav_pages, page_dir  # noqa: E402

pytest_plugins = ["docs_site"]  # the built site, shared with tests/test_docs_build.py and tests/test_docs.py

PHONE_COLUMN_PX = 358  # the text column of a 390 px phone: Material's 16 px margins each side
READABLE_PX = 8.0


class _Text(HTMLParser):
    """A page's visible text outside code, with the tag each piece sits in."""

    SKIP = {"code", "pre", "script", "style", "kbd", "samp"}
    VOID = {"br", "img", "input", "meta", "link", "hr", "wbr", "source", "path", "use", "image", "rect", "circle",
            "line", "polyline", "polygon", "ellipse", "col", "area", "base", "embed", "param", "track"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.pieces: list[tuple[str, str]] = []  # (innermost tag, text)

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if tag in self.open:
            while self.open.pop() != tag:
                pass

    def handle_data(self, data):
        if data.strip() and not self.SKIP.intersection(self.open):
            self.pieces.append((self.open[-1] if self.open else "", data))


def _pages(built: Build) -> dict[str, str]:
    assert built.returncode == 0, built.problems()
    return {md: (built.site / page_dir(md) / "index.html").read_text(encoding="utf-8") for md in nav_pages()}


def _article(html: str) -> str:
    """The page's own content, without the navigation and the footer."""
    start = html.index('<article class="md-content__inner')
    return html[start:html.index("</article>", start)]


def _text(html: str) -> str:
    """The article's text as read, code included: inline tags vanish, block tags become spaces."""
    article = re.sub(r"<(script|style|svg)\b.*?</\1>", " ", _article(html), flags=re.S)
    article = re.sub(r"</?(code|strong|em|a|span|wbr|b|i|sup|sub)\b[^>]*>", "", article)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", article)))


def test_no_page_shows_raw_markdown(built):
    """`**bold**` or `code` printed into an html="true" block reaches the reader as asterisks and
    backticks (it did on What training does, 32 layers and Check your own implementation)."""
    problems = []
    for md, html in _pages(built).items():
        parser = _Text()
        parser.feed(_article(html))
        for tag, text in parser.pieces:
            if "**" in text or "`" in text:
                problems.append(f"{md}: <{tag}> shows {text.strip()[:100]!r}")
    assert not problems, "raw Markdown in the rendered pages:\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def smollm2_file_args(smollm2_file):
    """The built-in model's params and tensor types, read from its GGUF here, not from the site."""
    from reference.formats import load_checkpoint

    checkpoint = load_checkpoint(smollm2_file)
    return checkpoint.args, set(checkpoint.weights.qtypes.values())


def test_the_rope_page_states_the_theta_of_the_model_whose_values_it_shows(built, smollm2_file_args):
    from reference.config import PRESETS

    args, _ = smollm2_file_args
    theta, theta_8b = f"{args.rope_theta:,.0f}", f"{PRESETS['llama3-8b'].rope_theta:,.0f}"
    assert theta != theta_8b, "the test means to tell the two apart"
    page = _pages(built)["rope.md"]
    text = _text(page)
    assert f"rope_theta is {theta}" in text, f"rope.md never says that its values use θ = {theta}"
    assert theta_8b in text, f"rope.md does not give Llama 3 8B's θ = {theta_8b} beside it"
    angle = args.rope_theta ** (-2 / args.head_dim)  # pair 1 at position 1: the value the page prints
    assert f"({math.cos(angle):.4f}, {math.sin(angle):.4f})" in text, "pair 1 at position 1 is not explained"
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page, flags=re.S)
    spectrum = [c for c in captions if "θ_j = θ^(−2j/d)" in c]
    assert spectrum, "no caption for RoPE's spectrum"
    assert f"θ = {theta} for" in spectrum[0] and f"θ = {theta_8b} for" in spectrum[0], spectrum[0]


def test_the_model_summary_gives_rope_theta_and_the_files_quantization(built, smollm2_file_args):
    args, qtypes = smollm2_file_args
    pages = _pages(built)
    index = _text(pages["index.md"])
    assert f"RoPE θ (rope_theta) {args.rope_theta:,.0f}" in index
    quantized = sorted(t for t in qtypes if t.startswith("Q"))
    assert quantized, qtypes
    for t in quantized:
        assert t in index, f"the overview's summary does not say that some weights are {t}"
    assert "quantization changes" in index, "no sentence on what the quantization changes"
    for md in nav_pages()[1:11]:
        banner = re.search(r'<p class="l3-source"[^>]*>(.*?)</p>', pages[md], flags=re.S)
        assert banner, f"{md}: no banner"
        assert f"RoPE θ {args.rope_theta:,.0f}" in banner.group(1) and quantized[0] in banner.group(1), (
            f"{md}: the banner does not give θ and the quantization: {banner.group(1)}")


def test_the_built_in_model_has_one_name(built):
    for md, html in _pages(built).items():
        names = set(re.findall(r"SmolLM2-135M[\w-]*", _text(html)))
        assert names <= {"SmolLM2-135M-Instruct"}, f"{md} names the built-in model {sorted(names)}"


def test_no_sentence_says_a_token_stays_on_top_from_the_last_layer(built, smollm2_file_args):
    """'on top from layer 29 and stays there', when 29 is the last layer: the sentence must follow the data."""
    args, _ = smollm2_file_args
    last = args.n_layers - 1
    for md, html in _pages(built).items():
        text = _text(html)
        for claim in (f"after layer {last} and stays there", f"from layer {last} and stays", f"on top from layer {last}"):
            assert claim not in text, f"{md}: {claim!r}, but layer {last} is the last"


def test_a_caption_that_points_at_the_table_above_has_one_right_above(built):
    """'the table above' is the nearest thing above the figure: a table, not another figure (the
    logit lens's caption, reused on What training does, pointed past two figures at an unrelated table)."""
    for md, html in _pages(built).items():
        article = _article(html)
        for match in re.finditer(r"<figcaption>(.*?)</figcaption>", article, flags=re.S):
            if "table above" in match.group(1):
                figure = article.rfind("<figure", 0, match.start())
                table, previous = article.rfind("<table", 0, figure), article.rfind("<figure", 0, figure)
                assert table > previous, f"{md}: a caption points at the table above, and the nearest thing above is " + (
                    "another figure" if previous > -1 else "no table")


def test_every_figure_fits_a_phone_column_with_text_of_8_px(built):
    """Read from the SVG itself: its width in the page (max-width, shrunk to the phone's column)
    over its viewBox gives the scale of its smallest font. No figure keeps a min-width (which
    made it scroll sideways at 390 px)."""
    problems, checked = [], 0
    for md, html in _pages(built).items():
        for svg in re.findall(r"<svg [^>]*>", _article(html)):
            if 'role="img"' not in svg:  # a figure's, not one of the theme's icons
                continue
            style = re.search(r'style="([^"]*)"', svg).group(1)
            view_width = float(re.search(r'viewBox="[\d.]+ [\d.]+ ([\d.]+)', svg).group(1))
            natural = float(re.search(r"max-width: ([\d.]+)px", style).group(1))
            start = html.index(svg)
            body = html[start:html.index("</svg>", start)]
            sizes = [float(s) for s in re.findall(r"font-size: ([\d.]+)px", body)]
            if not sizes:
                continue
            checked += 1
            on_phone = min(sizes) * min(natural, PHONE_COLUMN_PX) / view_width
            label = re.search(r'aria-label="([^"]*)"', svg)
            name = label.group(1) if label else "a figure"
            if re.search(r"min-width: [1-9]", style):
                problems.append(f"{md}: {name!r} keeps a min-width: {style}")
            if on_phone < READABLE_PX - 1e-6:
                problems.append(f"{md}: {name!r}: its smallest text is {on_phone:.1f} px high on a 390 px phone")
    assert checked >= 20, f"only {checked} figures found"
    assert not problems, "\n".join(problems)


def test_every_token_chip_shows_something(built):
    """A token of white space (the prompt's trailing " ") is drawn as ␣, not as an empty chip."""
    html = _pages(built)["bpe.md"]
    chips = re.findall(r'<span class="l3-token-text">(.*?)</span><span class="l3-token-id">', html, flags=re.S)
    assert len(chips) >= 16, f"only {len(chips)} token chips on bpe.md"
    empty = [c for c in chips if not unescape(re.sub(r"<[^>]+>", "", c)).replace("\xa0", " ").strip()]
    assert not empty, f"{len(empty)} token chips look empty: {empty}"


def test_the_random_models_logit_lens_is_drawn_against_1_over_v(built):
    """Its probabilities sit near 1/V (~1e-5): on a linear 0-1 axis they were an empty flat line."""
    html = _pages(built)["trained-vs-random.md"]
    lens = [f for f in re.findall(r"<figure.*?</figure>", html, flags=re.S) if "The logit lens" in f]
    assert len(lens) == 2, f"{len(lens)} logit-lens figures on trained-vs-random.md, expected the trained and the random"
    for figure in lens:
        assert "every token alike" in figure and "log scale" in figure, "a logit lens without its 1/V line and log axis"


def test_the_explorer_screenshots_alt_text_says_what_the_picture_shows(smollm2):
    """The screenshot is taken after one Append (tests/test_serve.py): the prompt has gained the
    top token, and the top ten shown are those after it, not " Paris"."""
    import torch
    from reference.run import run_trace

    page = (ROOT / "docs" / "explore.md").read_text(encoding="utf-8")
    alt = re.search(r"!\[([^\]]*)\]\(explorer\.png\)", page).group(1)
    tokens = smollm2.tokenizer.encode("The capital of France is", bos=True, eos=False)
    appended = int(run_trace(tokens, smollm2.weights, smollm2.args, path="batched")["next_token"])
    shown = run_trace([*tokens, appended], smollm2.weights, smollm2.args, path="batched")
    first = int(torch.argmax(shown["logits"][-1]))
    assert f'"{smollm2.tokenizer.token_text(appended)}"' in alt, f"the alt text does not say what Append added: {alt}"
    assert f'"{smollm2.tokenizer.token_text(first)}" first' in alt, (
        f"the picture's top ten start with {smollm2.tokenizer.token_text(first)!r}; its alt text says: {alt}")


def test_mkdocs_yml_says_which_model_computes_the_values():
    header = "".join(line for line in (ROOT / "mkdocs.yml").read_text(encoding="utf-8").splitlines(keepends=True)
                     if line.startswith("#"))
    assert "SmolLM2-135M-Instruct" in header, f"mkdocs.yml's header does not name the pages' model:\n{header}"
