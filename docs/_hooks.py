"""MkDocs hooks: make the page helpers importable, and fix the links that executed code writes.

The pages' code blocks run inside the mkdocs process (markdown-exec), so the helpers' caches
(one tokenizer, one trace, one 8B-shaped meta pass; docs/_pages.py) are shared by every
page of a build.

Markdown that a code block prints is converted by markdown-exec, out of MkDocs' sight, so
its links to other pages (`[Parity](parity.md)`) would stay `parity.md` in the HTML.
`on_page_content` turns them into the pages' URLs, and a link to a page that does not exist
is a warning, which `strict: true` makes an error.
"""

from __future__ import annotations

import logging
import posixpath
import re
import sys

log = logging.getLogger("mkdocs.plugins.llama3_reference")
_MD_LINK = re.compile(r'href="(?![a-z][a-z0-9+.-]*:|/|#)([^"#?]+\.md)(#[^"]*)?"')


def on_config(config):
    if config.docs_dir not in sys.path:
        sys.path.insert(0, config.docs_dir)
    return config


def on_page_content(html, page, config, files):
    def fix(match):
        target = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), match.group(1)))
        file = files.get_file_from_path(target)
        if file is None or not file.is_documentation_page():
            log.warning(f"{page.file.src_uri}: a code block's output links to '{match.group(1)}', which is not a page")
            return match.group(0)
        return f'href="{file.url_relative_to(page.file)}{match.group(2) or ""}"'

    return _MD_LINK.sub(fix, html)
