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

Here: the hook, and what the set-up cell runs in the notebook's kernel. A page is cut into its
text and its blocks in _notebooks_blocks.py, and made a notebook in _notebooks_build.py.
"""

from __future__ import annotations

import io
import logging
import posixpath

from mkdocs.plugins import event_priority

from _notebooks_build import cell_key, notebook_uri, notebooks

# tests/test_notebooks.py reads these through this module, the one mkdocs.yml's `hooks:` loads.
from _notebooks_blocks import Block, split  # noqa: F401
from _notebooks_build import METADATA_KEY  # noqa: F401

log = logging.getLogger("mkdocs.plugins.llama3_reference.notebooks")

LINK_TEXT = {"en": "Download this page as a notebook", "zh": "下载本页的 Jupyter 笔记本"}


# --- the MkDocs hook ---

_BUILT: dict[str, object] = {}  # this build's notebooks, by page


@event_priority(-200)  # after mkdocs-static-i18n (-100) has chosen this language's pages
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
    import _lang

    href = posixpath.relpath(notebook_uri(uri), posixpath.dirname(uri) or ".")
    link = (f"[{LINK_TEXT[_lang.language_of(uri)]}]({href}){{ download }}\n"
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
