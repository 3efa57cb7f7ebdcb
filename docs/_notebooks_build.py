"""One page's notebook (nbformat): its text as Markdown cells, its executed blocks as code cells.

The notebook opens with a set-up cell that finds the repository, puts docs/ on sys.path and has
_notebooks.show_output_like_the_site() show what each block prints as the site does; `notebooks()`
builds every page's, as the hook in _notebooks.py does while the site builds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import posixpath
import re

from _lang import language_of, twin
from _notebooks_blocks import Block, split

NOTEBOOK_DIR = "notebooks"  # in the site: notebooks/rope.ipynb for rope.md, notebooks/rope.zh.ipynb for rope.zh.md
METADATA_KEY = "llama3_reference"  # our cell metadata: the page line a code cell comes from, its fence's options
INTRO = {  # the notebook's first cell
    "en": "*This notebook is the page `{page}` of llama3-reference, generated when the site was built: the same "
          "text and the same code, run in one kernel.*",
    "zh": "*这个笔记本就是 llama3-reference 的页面 `{page}`，在构建网站时生成：同样的文字、同样的代码，"
          "在同一个内核里运行。*",
}
_MD_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|/|#)([^)\s#]+\.md)(#[^)\s]*)?\)")


def cell_key(source: str) -> str:
    """A code cell's fingerprint: how the set-up cell tells the kernel how each page block's output shows."""
    return hashlib.sha1(source.strip().encode("utf-8")).hexdigest()[:10]


def notebook_uri(src_uri: str) -> str:
    """'rope.md' -> 'notebooks/rope.ipynb' ('rope.zh.md' -> 'notebooks/rope.zh.ipynb'): where a page's
    notebook is in the site."""
    return posixpath.join(NOTEBOOK_DIR, src_uri.removesuffix(".md") + ".ipynb")


def _setup_source(src_uri: str, blocks: list[Block], css: list[str]) -> str:
    modes: dict[str, list[str]] = {}  # mode -> the keys of the blocks shown that way
    for b in blocks:
        modes.setdefault(b.mode, []).append(cell_key(b.source))
    shown = "".join(f'\n    "{mode}": """' + "\n        ".join(" ".join(keys[i:i + 8]) for i in range(0, len(keys), 8))
                    + '""",' for mode, keys in modes.items())
    return f'''\
# Set-up (not part of docs/{src_uri}): the page's code uses the site's helpers in docs/, so run this
# notebook in a clone of the repository, installed with  pip install -e ".[docs]"  (and ipykernel).
import os, sys
from pathlib import Path

try:
    import reference
    DOCS = Path(reference.__file__).resolve().parents[1] / "docs"
except ImportError:
    DOCS = None
if DOCS is None or not (DOCS / "_notebooks.py").is_file():
    raise RuntimeError("this notebook runs in a clone of llama3-reference installed with  pip install -e '.[docs]'  "
                       "(it needs the clone's docs/ folder; `reference` is "
                       f"{{'not installed' if DOCS is None else 'installed from ' + str(DOCS.parent)}})")
sys.path.insert(0, str(DOCS))
os.chdir(DOCS.parent)  # the site is built from the repository's root

# What a block prints shows as on the site: Markdown, or HTML (the pictures), or plain text; in the
# page's language, which the pictures and tables read (docs/_lang.py).
import _lang, _notebooks
_lang.set_language({language_of(src_uri)!r})
_notebooks.show_output_like_the_site(get_ipython(), css={css!r}, blocks={{{shown}
}})
'''


def notebook(src_uri: str, markdown: str, *, links: dict[str, str] | None = None, css: list[str] = (),
             lines: list[int] | None = None):
    """The notebook of one page (an nbformat NotebookNode), or None if the page runs no code.

    `markdown` is the page with its snippets inlined (`page_markdown`). `links` maps other pages
    ('qkv.md') to what the notebook's text links to instead: their notebook's path in the site
    ('notebooks/qkv.ipynb') or a URL; `css`: stylesheets in docs/ that the notebook shows with;
    `lines`: where each block starts in the page file, if snippets moved them.
    """
    import nbformat
    from nbformat import v4

    links = links or {}
    parts = split(markdown)
    blocks = [p for p in parts if isinstance(p, Block)]
    if not blocks:
        return None
    if lines is not None and len(lines) == len(blocks):  # the lines of the file, not of the text with snippets
        where = iter(lines)
        parts = [dataclasses.replace(p, line=next(where)) if isinstance(p, Block) else p for p in parts]
        blocks = [p for p in parts if isinstance(p, Block)]

    here = posixpath.dirname(notebook_uri(src_uri))

    lang = language_of(src_uri)

    def relink(text: str) -> str:  # [page 4](qkv.md) -> [page 4](qkv.ipynb), the notebook beside this one
        def fix(m):
            path = posixpath.normpath(posixpath.join(posixpath.dirname(src_uri), m.group(1)))
            target = links.get(twin(path, lang), links.get(path))  # a Chinese page links the Chinese twin
            if target is None:
                return m.group(0)
            return f"]({target if '://' in target else posixpath.relpath(target, here)}{m.group(2) or ''})"
        return _MD_LINK.sub(fix, text)

    cells = [v4.new_markdown_cell(INTRO[lang].format(page=f"docs/{src_uri}")),
             v4.new_code_cell(_setup_source(src_uri, blocks, list(css)), metadata={"tags": ["setup"]})]
    for part in parts:
        if isinstance(part, Block):
            cells.append(v4.new_code_cell(part.source, metadata={
                METADATA_KEY: {"line": part.line, "options": dict(part.options)}}))
        elif part.strip():
            cells.append(v4.new_markdown_cell(relink(part.strip("\n"))))
    for n, cell in enumerate(cells):
        cell.id = f"cell-{n}"  # stable: the same page gives the same file
    nb = v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
        METADATA_KEY: {"page": f"docs/{src_uri}"},
    })
    nbformat.validate(nb)
    return nb


def page_markdown(text: str, config) -> str:
    """A page's Markdown with its `--8<--` snippets inlined by pymdownx.snippets, set up as in mkdocs.yml."""
    if "pymdownx.snippets" not in config.markdown_extensions:
        return text
    import markdown

    md = markdown.Markdown(extensions=["pymdownx.snippets"],
                           extension_configs={"pymdownx.snippets": config.mdx_configs.get("pymdownx.snippets", {})})
    return "\n".join(md.preprocessors["snippet"].run(text.split("\n")))


def notebooks(files, config) -> dict[str, object]:
    """Every page's notebook, by the page's src_uri ('rope.md'); pages that run no code have none.

    `files` is MkDocs' Files (mkdocs.structure.files.get_files(config) outside a build).
    """
    pages = list(files.documentation_pages())
    raw, texts, blocks = {}, {}, {}
    for f in pages:
        with open(f.abs_src_path, encoding="utf-8-sig") as file:
            raw[f.src_uri] = file.read()
        texts[f.src_uri] = page_markdown(raw[f.src_uri], config)
        try:
            blocks[f.src_uri] = [p for p in split(texts[f.src_uri]) if isinstance(p, Block)]
        except ValueError as e:
            raise ValueError(f"{f.src_uri}, {e}") from None
    with_code = {uri for uri, found in blocks.items() if found}
    site_url = (config.site_url or "").rstrip("/")
    links = {}  # a link to another page: to its notebook, else to the page on the site if it has a URL
    for f in pages:
        if f.src_uri in with_code:
            links[f.src_uri] = notebook_uri(f.src_uri)
        elif site_url:
            links[f.src_uri] = f"{site_url}/{f.url}"
    css = [c for c in config.extra_css if not re.match(r"[a-z][a-z0-9+.-]*:|/", c)]
    return {uri: notebook(uri, texts[uri], links=links, css=css,
                          lines=[p.line for p in split(raw[uri]) if isinstance(p, Block)])
            for uri in sorted(with_code)}
