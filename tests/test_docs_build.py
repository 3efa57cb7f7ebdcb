"""The docs site's build: `mkdocs build --strict` succeeds (every page's code runs), builds every
page of the nav (each step page with its code, a tensor, Llama 3 8B's shapes and its picture,
drawn at build time), and links a notebook from every page that runs code; no generated
picture is committed to docs/.

The build runs once per session into a temporary directory (tests/docs_site.py). `strict`
turns every warning into a failure: a code block that raises, a missing snippet, a broken link
or a missing image. Both editions are built (English, and Chinese under zh/): every page has its
twin, the language switch lands on the same step, a Chinese search finds its page, and the
Chinese figures and notebooks speak Chinese.
"""

from __future__ import annotations

import posixpath
import re

import pytest

pytest.register_assert_rewrite("docs_site")  # imported here, before pytest loads it as a plugin (below)
from docs_site import ROOT, Build, nav_pages, page_dir  # noqa: E402

pytest_plugins = ["docs_site"]  # the built site, shared with tests/test_docs.py


def test_docs_build_strict_succeeds(built):
    assert built.returncode == 0, f"mkdocs build --strict failed after {built.seconds:.0f} s:\n{built.problems()}"
    print(f"mkdocs build --strict: {built.seconds:.1f} s")


def test_every_page_of_the_nav_is_built(built):
    assert built.returncode == 0, built.problems()
    for md in nav_pages():
        assert (ROOT / "docs" / md).is_file(), f"mkdocs.yml names docs/{md}, which does not exist"
        assert (built.site / page_dir(md) / "index.html").is_file(), f"docs/{md} was not built"


def _html(built: Build, md: str) -> str:
    return (built.site / page_dir(md) / "index.html").read_text(encoding="utf-8")


def test_every_step_page_shows_code_a_tensor_and_the_8b_shapes(built):
    assert built.returncode == 0, built.problems()
    steps = nav_pages()[1:11]  # the ten steps of the walk-through
    assert steps[0] == "bpe.md" and steps[-1] == "prediction.md", steps
    for md in steps:
        html = _html(built, md)
        assert 'class="filename">reference/' in html, f"{md}: no code included from reference/"
        assert "<th>Llama 3 8B</th>" in html, f"{md}: no table of Llama 3 8B's shapes"
        assert "Values on this page" in html, f"{md}: does not say where its values come from"


def test_the_pictures_are_drawn_at_build_time(built):
    assert built.returncode == 0, built.problems()
    for md in ("index.md", "rmsnorm.md", "rope.md", "attention.md", "multi-head.md", "swiglu.md", "layers.md",
               "prediction.md"):
        assert '<figure class="l3-figure">' in _html(built, md), f"{md}: no picture"
    assert 'class="l3-tokens"' in _html(built, "bpe.md"), "bpe.md: no coloured token spans"


def test_the_8b_shapes_of_the_walkthrough_appear(built):
    assert built.returncode == 0, built.problems()
    html = "".join(_html(built, md) for md in nav_pages())
    for shape in ("[17, 4096]", "[32, 128, 4096]", "[8, 128, 4096]", "[17, 64, 2]", "[17, 17]", "[17, 128256]"):
        assert shape in html, shape


# Records of a run that a build cannot repeat: the browser test's screenshot of the explorer, and
# the benchmark's plot (written with performance.md by bench/bench.py). Each is named by its page.
RECORDED_IMAGES = {"explorer.png": "explore.md", "performance-growth.svg": "performance.md"}


def test_no_generated_image_is_committed():
    images = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*")
              if p.suffix.lower() in (".png", ".svg", ".jpg", ".jpeg", ".gif")}
    assert images <= set(RECORDED_IMAGES), f"pictures are drawn at build time, not committed: {images - set(RECORDED_IMAGES)}"
    for image in images:
        assert f"]({image})" in (ROOT / "docs" / RECORDED_IMAGES[image]).read_text(encoding="utf-8"), image


def test_every_page_that_runs_code_links_its_notebook(built):
    """The built site's notebooks/: one per page with code, linked under its title, valid, up to date."""
    assert built.returncode == 0, built.problems()
    from test_notebooks import check_site

    problems = check_site(built.site)
    assert not problems, "\n".join(problems)


# --- the Chinese edition (issue #35): docs/PAGE.zh.md, built by mkdocs-static-i18n into site/zh/ ---

CJK = re.compile(r"[\u4e00-\u9fff]")


def _zh_html(built: Build, md: str) -> str:
    return (built.site / "zh" / page_dir(md) / "index.html").read_text(encoding="utf-8")


def _switch(html: str, here: str) -> dict[str, str]:
    """The language switch of a page at `here` ('rope/'): language -> the page it leads to ('zh/rope')."""
    links = re.findall(r'<a href="([^"]*)" hreflang="([a-z]{2})"', html)
    return {lang: posixpath.normpath(posixpath.join(here, href)).removesuffix(".") for href, lang in links}


def test_every_page_is_built_in_both_editions_and_the_switch_lands_on_the_same_step(built):
    assert built.returncode == 0, built.problems()
    for md in nav_pages():
        en, zh = page_dir(md), "zh/" + page_dir(md)
        html, zh_html = _html(built, md), _zh_html(built, md)
        assert '<html lang="zh"' in zh_html and '<html lang="en"' in html, md
        assert _switch(html, en).get("zh") == zh.rstrip("/"), f"{md}: the switch to 中文 leads to {_switch(html, en)}"
        assert _switch(zh_html, zh).get("en") == en.rstrip("/"), f"zh/{md}: the switch to English leads to {_switch(zh_html, zh)}"


def test_a_chinese_search_finds_the_rope_page(built):
    """Material's search cuts Chinese into words with jieba (zero-width spaces, the configured separator):
    a search for 旋转 ("rotation") finds the RoPE page of the Chinese edition."""
    import json

    assert built.returncode == 0, built.problems()
    index = json.loads((built.site / "search" / "search_index.json").read_text(encoding="utf-8"))
    assert "zh" in index["config"]["lang"], index["config"]
    separator = re.compile(index["config"]["separator"])

    def words(doc):
        return set(separator.split(re.sub(r"<[^>]+>", " ", doc["title"] + " " + doc["text"])))

    found = {doc["location"] for doc in index["docs"] if "旋转" in words(doc)}
    assert any(loc.startswith("zh/rope/") for loc in found), f"旋转 is a word of {sorted(found)[:10]}, not of zh/rope/"
    assert any(not loc.startswith("zh/") for loc in (d["location"] for d in index["docs"])), "no English page in the index"


def test_the_chinese_pages_figures_speak_chinese(built):
    assert built.returncode == 0, built.problems()
    for md in nav_pages()[:11]:  # the overview and the ten steps
        html = _zh_html(built, md)
        captions = re.findall(r"<figcaption>(.*?)</figcaption>", html, flags=re.S)
        labels = re.findall(r'<svg [^>]*aria-label="([^"]*)"', html)
        for text in captions + labels:
            assert CJK.search(text), f"zh/{md}: a figure says {text[:80]!r}"
        banner = re.search(r'<p class="l3-source"[^>]*>(.*?)</p>', html, flags=re.S)
        assert md == "index.md" or (banner and banner.group(1).startswith("本页数值来自")), f"zh/{md}: banner"


def test_a_chinese_notebook_has_chinese_prose_and_the_same_cells(built):
    import nbformat

    assert built.returncode == 0, built.problems()
    for md in ("rope.md", "attention.md", "prediction.md"):
        name = md.removesuffix(".md")
        en, zh = (nbformat.read(built.site / "notebooks" / f"{n}.ipynb", as_version=4) for n in (name, f"{name}.zh"))
        code = [[c.source for c in nb.cells[2:] if c.cell_type == "code"] for nb in (en, zh)]
        assert code[0] == code[1] and code[0], f"notebooks/{name}.zh.ipynb: not {name}.ipynb's cells"
        setup = zh.cells[1].source
        assert "_lang.set_language('zh')" in setup, setup
        prose = [c.source for c in zh.cells if c.cell_type == "markdown"]
        assert all(CJK.search(p) for p in prose), f"notebooks/{name}.zh.ipynb: a Markdown cell without Chinese"
