"""The language a page is built in, and `tr()`, which says a helper's or a page's words in it.

The site has two editions built from the same pages' code: English (rope.md) and Chinese
(rope.zh.md, mkdocs-static-i18n's suffix structure). A Chinese page runs exactly the code of
its English twin (tests/test_docs_zh.py); what differs is the prose around the code, and the
words the code prints or draws: titles, axis labels, captions, alt text, table headers. Those
go through `tr()`, which reads the page's language from the build context, set by the hook in
docs/_hooks.py before the page's code runs (in a notebook, by its set-up cell), never from an
argument in the page.

    tr("pair j")                                   'pair j' on an English page, '第 j 对' on a Chinese one
    tr("after layer {layer}", layer=3)             a template and its values: '第 3 层之后'
    tr(f"embeddings: first 64 of {D} dimensions")  text made by the page's code: matched against a
                                                   pattern of the catalog, 'embeddings: first {n} of {d}
                                                   dimensions', and said again with the same values
                                                   ({n:d} in a pattern matches a number only)

The Chinese words are in docs/_zh*.py, keyed by the English. On a Chinese page, English
without an entry is an error that names it, so the build fails rather than show a Chinese
reader English in a picture; `tr(..., strict=False)` leaves such text as it is (a table cell that
may be a value).
"""

from __future__ import annotations

import functools
import re

LANGUAGES = ("en", "zh")
DEFAULT = "en"
_state = {"language": DEFAULT}


def language() -> str:
    """The language of the page being built: 'en' or 'zh'."""
    return _state["language"]


def set_language(lang: str) -> None:
    if lang not in LANGUAGES:
        raise ValueError(f"language {lang!r}: the site is built in {', '.join(LANGUAGES)}")
    _state["language"] = lang


def language_of(src_uri: str) -> str:
    """'rope.zh.md' -> 'zh', 'rope.md' -> 'en': the suffix structure of mkdocs-static-i18n."""
    m = re.search(r"\.([a-z]{2})\.md$", src_uri)
    return m.group(1) if m and m.group(1) in LANGUAGES else DEFAULT


def twin(src_uri: str, lang: str) -> str:
    """'rope.md' -> 'rope.zh.md' (and back): a page's file in another language."""
    base = re.sub(r"\.[a-z]{2}\.md$", ".md", src_uri)
    return base if lang == DEFAULT else base.removesuffix(".md") + f".{lang}.md"


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    """English -> the language's words, every docs/_zh*.py catalog merged."""
    if lang == "zh":
        from _zh_figures import ZH as figures
        from _zh_pages import ZH as pages
        from _zh_prose import ZH as prose

        return {**figures, **pages, **prose}
    return {}


_FIELD = re.compile(r"\{([A-Za-z_]\w*)(?:![rsa])?(?::[^{}]*)?\}")


@functools.cache
def _patterns(lang: str) -> list[tuple[re.Pattern, str]]:
    """The catalog's keys with fields, as regular expressions that read the fields back out of
    text the English produced: 'after layer {layer}' -> r'after\\ layer\\ (?P<layer>.+?)'."""
    found = []
    for english, said in catalog(lang).items():
        if not _FIELD.search(english):
            continue
        parts, last, seen = [], 0, set()
        for m in _FIELD.finditer(english):
            name = m.group(1)  # a field said twice is the same text twice
            what = r"[\d,]+" if m.group(0).endswith(":d}") else ".+?"  # {n:d}: a number, nothing else
            parts += [re.escape(english[last:m.start()]), f"(?P={name})" if name in seen else f"(?P<{name}>{what})"]
            seen.add(name)
            last = m.end()
        parts.append(re.escape(english[last:]))
        literal = len(_FIELD.sub("", english))  # how much of it is words: the more, the more specific
        found.append((literal, re.compile("".join(parts), re.S), _FIELD.sub(lambda m: "{" + m.group(1) + "}", said)))
    found.sort(key=lambda p: -p[0])  # the most specific first: "after “{prompt}”" before "{a} of {b}"
    return [(pattern, said) for _, pattern, said in found]


def tr(text: str, *, strict: bool = True, **values) -> str:
    """`text` in the page's language; `values` fill its fields, as str.format does."""
    lang = language()
    if lang == DEFAULT:
        return text.format(**values) if values else text
    words = catalog(lang)
    if text in words:
        return words[text].format(**values) if values else words[text]
    if not values:
        for pattern, said in _patterns(lang):
            m = pattern.fullmatch(text)
            if m:
                return said.format(**{k: _inner(v) for k, v in m.groupdict().items()})
    if not strict:
        return text.format(**values) if values else text
    raise LookupError(f"no {lang} for {text!r}: add it to the catalog in docs/_{lang}*.py")


def _inner(value: str) -> str:
    """A field read out of English text may itself be a phrase of the catalog ('the final norm')."""
    words = catalog(language())
    return words.get(value, value)
