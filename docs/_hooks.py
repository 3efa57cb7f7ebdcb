"""MkDocs hooks: make the page helpers importable, and fix the links that executed code writes.

The pages' code blocks run inside the mkdocs process (markdown-exec), so the helpers' caches
(one tokenizer, one trace, one 8B-shaped meta pass; docs/_pages.py) are shared by every
page of a build.

Markdown that a code block prints is converted by markdown-exec, out of MkDocs' sight, so
its links to other pages (`[Parity](parity.md)`) would stay `parity.md` in the HTML.
`on_page_content` turns them into the pages' URLs, and a link to a page that does not exist
is a warning, which `strict: true` makes an error. In the Chinese edition (mkdocs-static-i18n),
`parity.md` finds `parity.zh.md` first.

`on_page_markdown` tells the helpers which language the page is in (docs/_lang.py), before its
code runs: rope.zh.md runs rope.md's code, and its figures and tables speak Chinese.

`on_post_page` drops the head's `<link rel="alternate" hreflang>`: mkdocs-static-i18n points them
at the same page in the other language, and Material's script fetches `sitemap.xml` beside each
(zh/rope/sitemap.xml: a 404 on every page). The language switch's own links stay, per page; on
the two home pages the plugin leaves them absolute (/zh/), which would leave a site served from a
sub-path, so they are made relative like every other link.
"""

from __future__ import annotations

import logging
import posixpath
import re
import sys

from mkdocs.plugins import event_priority

log = logging.getLogger("mkdocs.plugins.llama3_reference")
_SWITCH_ABSOLUTE = re.compile(r'(<a href=")/([^"]*)(" hreflang="[a-z]{2}")')
_HEAD_ALTERNATE = re.compile(r'\s*<link rel="alternate" href="[^"]*" hreflang="[^"]*">')
_MD_LINK = re.compile(r'href="(?![a-z][a-z0-9+.-]*:|/|#)([^"#?]+\.md)(#[^"]*)?"')


def on_config(config):
    if config.docs_dir not in sys.path:
        sys.path.insert(0, config.docs_dir)
    return config


@event_priority(100)  # before anything reads or runs the page
def on_page_markdown(markdown, page, config, files):
    import _lang

    _lang.set_language(_lang.language_of(page.file.src_uri))
    return markdown


def on_page_content(html, page, config, files):
    def fix(match):
        target = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), match.group(1)))
        file = files.get_file_from_path(target)
        if file is None or not file.is_documentation_page():
            log.warning(f"{page.file.src_uri}: a code block's output links to '{match.group(1)}', which is not a page")
            return match.group(0)
        return f'href="{file.url_relative_to(page.file)}{match.group(2) or ""}"'

    return _MD_LINK.sub(fix, html)


def on_post_page(output, page, config):
    here = page.url.rstrip("/") or "."

    def relative(m):
        return m.group(1) + posixpath.relpath(m.group(2).rstrip("/") or ".", here) + "/" + m.group(3)

    head, _, body = output.partition("</head>")
    if not body:
        return output
    return _HEAD_ALTERNATE.sub("", head) + "</head>" + _SWITCH_ABSOLUTE.sub(relative, body)
