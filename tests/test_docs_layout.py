"""Every page of the built site, in both editions, in Chromium at a phone's width (390 px) and a laptop's (1280 px):
no figure wider than its column or scrolling sideways, no figure text under 8 px on the screen,
and no raw Markdown (`**`, backticks) in the rendered text.

The site is built once per session (tests/docs_site.py); Chromium and its driver come from
tests/test_docs.py's fixtures, which install them where they can and skip where they cannot.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("docs_site")  # imported here, before pytest loads it as a plugin (below)
from docs_site import nav_pages, page_dir  # noqa: E402
from test_docs import browser, chromium  # noqa: E402, F401 - the browser fixtures, shared with the docs test

pytest_plugins = ["docs_site"]

WIDTHS = (390, 1280)
EDITIONS = ("", "zh/")  # English at the root, Chinese under zh/ (mkdocs-static-i18n)
READABLE_PX = 8.0

# Run on each page: what a reader would have to scroll, squint at, or see as Markdown.
_PROBLEMS = """
const readable = arguments[0];
const article = document.querySelector('article.md-content__inner');
const column = article.getBoundingClientRect();
const problems = [];
const overflow = document.documentElement.scrollWidth - document.documentElement.clientWidth;
if (overflow > 1) problems.push(`the page is ${overflow} px wider than the window`);
let figures = 0;
document.querySelectorAll('figure.l3-figure').forEach((figure, i) => {
  figures += 1;
  const box = figure.getBoundingClientRect();
  const name = (figure.querySelector('svg') || figure).getAttribute('aria-label') || `figure ${i + 1}`;
  if (figure.scrollWidth > figure.clientWidth + 1)
    problems.push(`"${name}" scrolls sideways: ${figure.scrollWidth} px in a ${figure.clientWidth} px frame`);
  if (box.left < column.left - 1 || box.right > column.right + 1)
    problems.push(`"${name}" is wider than its column: ${Math.round(box.width)} px in ${Math.round(column.width)}`);
  figure.querySelectorAll('svg').forEach(svg => {
    const r = svg.getBoundingClientRect();
    const panel = svg.getAttribute('aria-label');
    if (r.left < column.left - 1 || r.right > column.right + 1)
      problems.push(`"${panel}" runs out of the column: ${Math.round(r.left)}..${Math.round(r.right)} px`);
    const view = svg.viewBox.baseVal;
    const scale = r.width / (view && view.width ? view.width : svg.width.baseVal.value);
    let smallest = Infinity, example = '';
    svg.querySelectorAll('text').forEach(t => {
      const px = parseFloat(getComputedStyle(t).fontSize) * scale;  // the font's height on the screen
      if (px > 0 && px < smallest) { smallest = px; example = t.textContent.trim(); }
    });
    if (smallest < readable)
      problems.push(`"${panel}": text ${smallest.toFixed(1)} px high ("${example.slice(0, 30)}")`);
  });
});
const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  if (node.parentElement.closest('code, pre, script, style, kbd, samp')) continue;
  const text = node.textContent;
  if (text.includes('**') || text.includes('`')) problems.push(`raw Markdown: "${text.trim().slice(0, 80)}"`);
}
return {problems, figures};
"""


def test_every_page_reads_at_a_phone_and_a_laptop_width(chromium, browser, served):  # chromium first: skip before building
    base, _ = served
    problems, with_figures = [], set()
    for width in WIDTHS:
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600})
        for md in nav_pages():
            for edition in EDITIONS:  # the English page and its Chinese twin
                browser.get(base + edition + page_dir(md))
                seen = browser.execute_script(_PROBLEMS, READABLE_PX)
                problems += [f"{edition}{md} at {width} px: {p}" for p in seen["problems"]]
                if seen["figures"]:
                    with_figures.add(edition + md)
    assert len(with_figures) >= 20, f"only {len(with_figures)} pages with figures: {sorted(with_figures)}"
    assert not problems, "\n".join(problems)
