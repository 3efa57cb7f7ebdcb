"""Every page that runs code, as a Jupyter notebook generated from the page itself while the site builds.

An MkDocs hook (mkdocs.yml, `hooks:`), also imported by tests/test_notebooks.py, which runs
every notebook. A page's Markdown becomes Markdown cells, and each of its executed blocks,
```python exec="on" ...```, a code cell with the same code; the page's blocks share one
markdown-exec session, so the notebook's cells share one kernel. `--8<--` snippets are
resolved by pymdownx.snippets with the site's own settings, as in the page. Nothing is kept
by hand: change the page and the next build writes its new notebook, to notebooks/PAGE.ipynb
in the site, with a link to it under the page's title.

The notebook's first code cell, added to the page's, finds the repository the notebook runs
in (a clone installed with `pip install -e .`), puts docs/ on sys.path for the pages' helpers
(_pages.py, _figures.py) and calls `show_output_like_the_site()`: what a page's block prints
is Markdown (or HTML with html="true", or plain text with result="text"), and the notebook
shows it as the site does, pictures included.

Written with nbformat, Jupyter's own library for the format (and its validator); cell ids are
numbered, not random, so a rebuild writes the same file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import posixpath
import re
import dataclasses
from dataclasses import dataclass, field

log = logging.getLogger("mkdocs.plugins.llama3_reference.notebooks")

NOTEBOOK_DIR = "notebooks"  # in the site: notebooks/rope.ipynb for rope.md
LINK_TEXT = "Download this page as a notebook"
METADATA_KEY = "llama3_reference"  # our cell metadata: the page line a code cell comes from, its fence's options

# A fence as pymdownx.superfences reads it: ``` or ~~~ (3 or more), a language, then options
# key="value" (or the braced form {.python key="value"}). Closed by the same character, at least
# as many times, alone on its line.
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")
_OPTION = re.compile(r"""([a-zA-Z][\w-]*)(?:=(?:"([^"]*)"|'([^']*)'|([^\s}]+)))?""")
_PYTHON = {"python", "py"}
_MD_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|/|#)([^)\s#]+\.md)(#[^)\s]*)?\)")


@dataclass(frozen=True)
class Block:
    """One executed code block of a page."""

    language: str
    source: str  # the code, as markdown-exec runs it
    line: int  # where its opening fence is in the page's file (1-based)
    options: dict[str, str] = field(default_factory=dict)  # the fence's options: exec, session, html, result, ...

    @property
    def mode(self) -> str:
        """How markdown-exec shows what the block prints: "html" (raw), "text" (a code block) or "markdown"."""
        if _true(self.options.get("html", "")):
            return "html"
        return "text" if self.options.get("result") else "markdown"


def _true(value: str) -> bool:  # markdown-exec's reading of exec="on", html="true", ...
    return value.lower() not in {"", "no", "off", "false", "0"}


def _info(info: str) -> tuple[str, dict[str, str]]:
    """'python exec="on" session="rope"' (or '{.python exec="on"}') -> ("python", {"exec": "on", ...})."""
    info = info.strip()
    if info.startswith("{") and info.endswith("}"):
        info = info[1:-1].strip()
    language, _, rest = info.partition(" ")
    options = {m.group(1): next((g for g in m.groups()[1:] if g is not None), m.group(1))
               for m in _OPTION.finditer(rest)}
    return language.lstrip(".").lower(), options


def split(markdown: str) -> list[str | Block]:
    """A page's Markdown cut into its text (str) and its executed Python blocks (Block), in order.

    Fences that are not executed (```bash, ```json, a ```python without exec) stay in the text.
    An executed block in another language (bash, console, ...) raises ValueError: a Python
    kernel cannot run it, and the notebook would silently lack what the page shows.
    """
    parts: list[str | Block] = []
    text: list[str] = []
    lines = markdown.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            text.append(lines[i])
            i += 1
            continue
        indent, fence = m.group("indent"), m.group("fence")
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            j += 1
        language, options = _info(m.group("info"))
        body = lines[i + 1:j]
        if _true(options.get("exec", "")):
            if language not in _PYTHON:
                raise ValueError(f"line {i + 1}: an executed {language or 'unnamed'} block; only Python "
                                 "blocks can become notebook cells")
            if text:
                parts.append("\n".join(text))
                text = []
            code = "\n".join(line[len(indent):] if line.startswith(indent) else line.lstrip() for line in body)
            parts.append(Block(language, code, i + 1, options))
        else:
            text.extend(lines[i:j + 1])
        i = j + 1
    if text:
        parts.append("\n".join(text))
    return parts


def cell_key(source: str) -> str:
    """A code cell's fingerprint: how the set-up cell tells the kernel how each page block's output shows."""
    return hashlib.sha1(source.strip().encode("utf-8")).hexdigest()[:10]


def notebook_uri(src_uri: str) -> str:
    """'rope.md' -> 'notebooks/rope.ipynb': where a page's notebook is in the site."""
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

# What a block prints shows as on the site: Markdown, or HTML (the pictures), or plain text.
import _notebooks
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

    def relink(text: str) -> str:  # [page 4](qkv.md) -> [page 4](qkv.ipynb), the notebook beside this one
        def fix(m):
            target = links.get(posixpath.normpath(posixpath.join(posixpath.dirname(src_uri), m.group(1))))
            if target is None:
                return m.group(0)
            return f"]({target if '://' in target else posixpath.relpath(target, here)}{m.group(2) or ''})"
        return _MD_LINK.sub(fix, text)

    cells = [v4.new_markdown_cell(f"*This notebook is the page `docs/{src_uri}` of llama3-reference, generated "
                                  "when the site was built: the same text and the same code, run in one kernel.*"),
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


# --- the MkDocs hook ---

_BUILT: dict[str, object] = {}  # this build's notebooks, by page


def on_files(files, config):
    from mkdocs.structure.files import File
    import nbformat

    _BUILT.clear()
    try:
        built = notebooks(files, config)
    except ValueError as e:
        log.warning(f"no notebooks: {e}")  # strict: the build fails
        return files
    for uri, nb in built.items():
        files.append(File.generated(config, notebook_uri(uri), content=nbformat.writes(nb)))
    _BUILT.update(built)
    return files


def on_page_markdown(markdown, page, config, files):
    """The link to the page's notebook, under its title (excluded from search, like the source line)."""
    uri = page.file.src_uri
    if uri not in _BUILT:
        return markdown
    href = posixpath.relpath(notebook_uri(uri), posixpath.dirname(uri) or ".")
    link = (f"[{LINK_TEXT}]({href}){{ download }}\n"
            "{: .l3-notebook data-search-exclude }\n")
    lines = markdown.split("\n")
    at = next((i + 1 for i, line in enumerate(lines) if line.startswith("# ")), 0)  # after the first H1
    return "\n".join(lines[:at] + ["", link] + lines[at:])


# --- in the notebook's kernel: print as the site shows it ---


def _buffer_print(buffer, *texts, end="\n", **kwargs):  # as markdown-exec's print: one string per block
    buffer.write(" ".join(str(t) for t in texts) + end)


def show_output_like_the_site(shell, blocks: dict[str, str], css: list[str] = ()) -> None:
    """Make each cell's `print` collect its text and show it, when the cell ends, as the site does.

    `blocks` maps a mode, "markdown", "html" or "text", to the `cell_key`s (space-separated) of
    the page's blocks shown that way. A cell not among them (one you wrote or edited) shows
    as HTML if its output starts with "<", as Markdown otherwise. `css`: the site's stylesheets
    (in docs/), shown once. Called by the notebook's set-up cell; calling it again replaces
    the earlier hooks.
    """
    import builtins
    import functools
    from pathlib import Path

    from IPython.display import HTML, Markdown, display

    for event, hook in getattr(shell, "_l3_hooks", ()):
        shell.events.unregister(event, hook)
    modes = {key: mode for mode, keys in blocks.items() for key in keys.split()}
    state: dict = {}

    def pre_run_cell(info):
        state["mode"] = modes.get(cell_key(info.raw_cell or ""))
        if state["mode"] == "text":
            state["buffer"] = None
            shell.user_ns["print"] = builtins.print
        else:
            state["buffer"] = io.StringIO()
            shell.user_ns["print"] = functools.partial(_buffer_print, state["buffer"])

    def post_run_cell(result):
        buffer = state.pop("buffer", None)
        text = buffer.getvalue() if buffer is not None else ""
        if not text.strip():
            return
        html = state.get("mode") == "html" or (state.get("mode") is None and text.lstrip().startswith("<"))
        display(HTML(text) if html else Markdown(text))

    shell._l3_hooks = [("pre_run_cell", pre_run_cell), ("post_run_cell", post_run_cell)]
    for event, hook in shell._l3_hooks:
        shell.events.register(event, hook)
    docs = Path(__file__).resolve().parent
    styles = "\n".join((docs / c).read_text(encoding="utf-8") for c in css if (docs / c).is_file())
    if styles:  # the site's classes for the pictures and the token spans
        display(HTML(f"<style>\n{styles}\n</style>"))
