"""The Chinese edition (issue #35), read from its sources, without building the site: every
English page has a Chinese twin (docs/rope.md -> docs/rope.zh.md) that runs exactly its code,
and keeps its headings' anchors; `tr()` (docs/_lang.py) says the code's words in the page's
language, reading a sentence's computed parts back out of the English, and fails on English
it has no Chinese for.

tests/test_docs_build.py checks the built editions (the language switch, the search, the
notebooks); tests/test_docs_zh_figures.py the pictures; tests/test_docs_layout.py reads both in
Chromium.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS))  # the page helpers live beside the pages, as in mkdocs (docs/_hooks.py)

import _lang  # noqa: E402
from _notebooks_blocks import Block, split  # noqa: E402

ENGLISH = sorted(p.name for p in DOCS.glob("*.md") if p.name.count(".") == 1)


def executed_code(text: str) -> list[tuple[str, dict[str, str]]]:
    """A page's executed blocks, as its notebook and markdown-exec read them: (code, fence options)."""
    return [(b.source, b.options) for b in split(text) if isinstance(b, Block)]


def code_differences(english: str, chinese: str) -> list[str]:
    """How a Chinese page's executed code differs from its English page's; empty if it is the same."""
    ours, theirs = executed_code(english), executed_code(chinese)
    if len(ours) != len(theirs):
        return [f"{len(theirs)} executed blocks, the English page has {len(ours)}"]
    problems = []
    for n, ((code, options), (zh_code, zh_options)) in enumerate(zip(ours, theirs), start=1):
        if zh_code != code:
            line = next((i for i, (a, b) in enumerate(zip(code.splitlines(), zh_code.splitlines()), 1) if a != b),
                        min(len(code.splitlines()), len(zh_code.splitlines())) + 1)
            problems.append(f"block {n}: its code differs at its line {line}")
        if zh_options != options:
            problems.append(f"block {n}: fence options {zh_options}, the English page's are {options}")
    return problems


def test_every_english_page_has_a_chinese_twin():
    assert len(ENGLISH) >= 20, ENGLISH
    missing = [md for md in ENGLISH if not (DOCS / _lang.twin(md, "zh")).is_file()]
    assert not missing, f"English pages without a Chinese twin (docs/PAGE.zh.md): {missing}"
    orphans = [p.name for p in DOCS.glob("*.zh.md") if not (DOCS / _lang.twin(p.name, "en")).is_file()]
    assert not orphans, f"Chinese pages without an English page: {orphans}"


@pytest.mark.parametrize("md", ENGLISH)
def test_a_chinese_page_runs_exactly_its_english_pages_code(md):
    zh = DOCS / _lang.twin(md, "zh")
    if not zh.is_file():
        pytest.fail(f"docs/{md} has no Chinese twin")
    problems = code_differences((DOCS / md).read_text(encoding="utf-8"), zh.read_text(encoding="utf-8"))
    assert not problems, f"docs/{zh.name} does not run docs/{md}'s code:\n" + "\n".join(problems)


def test_the_comparison_catches_a_changed_block():
    english = '# T\n\ntext\n\n```python exec="on" session="s"\nprint(tr("pair j"))\n```\n'
    same = '# 标题\n\n中文\n\n```python exec="on" session="s"\nprint(tr("pair j"))\n```\n'
    assert code_differences(english, same) == []
    assert code_differences(english, same.replace('tr("pair j")', '"第 j 对"')) == ["block 1: its code differs at its line 1"]
    assert "fence options" in code_differences(english, same.replace('session="s"', 'session="t"'))[0]
    assert "0 executed blocks" in code_differences(english, "# 标题\n")[0]


def _headings(text: str) -> list[str]:
    from _notebooks_build import page_markdown
    from test_notebooks_code import _config

    text = page_markdown(text, _config())  # with its snippets: performance.zh.md includes the benchmark's report
    text = "\n".join(p for p in split(text) if isinstance(p, str))
    text = re.sub(r"^([`~]{3,}).*?^\1\s*$", "", text, flags=re.S | re.M)  # fences that are not executed
    return re.findall(r"^#{2,4} (.+)$", text, flags=re.M)


@pytest.mark.parametrize("md", [md for md in ENGLISH if (DOCS / _lang.twin(md, "zh")).is_file()])
def test_a_chinese_heading_keeps_its_english_anchor(md):
    """`## 频率 {#the-frequencies}`: links into a page (rope.md#…) and the language switch land on the same section."""
    from markdown.extensions.toc import slugify

    english = _headings((DOCS / md).read_text(encoding="utf-8"))
    chinese = _headings((DOCS / _lang.twin(md, "zh")).read_text(encoding="utf-8"))
    assert len(chinese) == len(english), f"{md}: {len(english)} headings, its Chinese twin {len(chinese)}"
    for en, zh in zip(english, chinese):
        anchor = slugify(re.sub(r"[`*]", "", en), "-")
        assert zh == en or zh.endswith(f"{{#{anchor}}}"), (  # the same heading, included, or its translation
            f"{md}: '{zh}' should end with {{#{anchor}}} (the anchor of '{en}')")


# --- tr(): the words of the page's language ---


@pytest.fixture
def chinese():
    _lang.set_language("zh")
    yield
    _lang.set_language("en")


def test_tr_is_the_identity_on_an_english_page():
    assert _lang.language() == "en"
    assert _lang.tr("pair j") == "pair j"
    assert _lang.tr("head {h}", h=3) == "head 3"
    assert _lang.tr("no catalog has this") == "no catalog has this"


def test_tr_says_a_template_and_a_computed_sentence_in_chinese(chinese):
    assert _lang.tr("head {h}", h=3) == "头 3"
    assert _lang.tr("dimension 507") == "维度 507"  # a field read back out of the English
    assert _lang.tr("layer 29's ffn_norm") == "第 29 层的 ffn_norm"
    assert _lang.tr("after layer 11's feed-forward") == "第 11 层的前馈网络之后"  # a field that is itself a phrase


def test_tr_fails_on_english_it_has_no_chinese_for(chinese):
    with pytest.raises(LookupError, match="no zh for 'no catalog has this'"):
        _lang.tr("no catalog has this")
    assert _lang.tr("`[17, 4096]`", strict=False) == "`[17, 4096]`"  # a value in a table stays as it is


def test_the_page_language_follows_the_file_suffix():
    assert [_lang.language_of(p) for p in ("rope.md", "rope.zh.md", "notebooks/x.md")] == ["en", "zh", "en"]
    assert _lang.twin("rope.md", "zh") == "rope.zh.md" and _lang.twin("rope.zh.md", "en") == "rope.md"


def test_the_glossary_uses_the_articles_terms():
    from _glossary import SECTIONS, TERMS

    chinese = {zh for _, zh, *_ in TERMS}
    for term in ("词元", "嵌入", "归一化（RMSNorm）", "注意力头", "旋转位置编码（RoPE）", "前馈网络（SwiGLU）", "逻辑值（logits）"):
        assert term in chinese, term
    assert [n for n, *_ in SECTIONS] == [f"{i:02d}" for i in range(6, 16)]
    steps = ["bpe.md", "embeddings.md", "rmsnorm.md", "qkv.md", "rope.md", "attention.md", "multi-head.md",
             "swiglu.md", "layers.md", "prediction.md"]
    assert [md for *_, md in SECTIONS] == steps
