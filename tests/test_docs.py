"""The docs site in headless Chromium: every page of the built site (tests/docs_site.py), served
on localhost, installing Debian's `chromium` and `chromium-driver` first if it must and can.

The browser test fails on console errors, failed requests, images that do not load, internal
links that lead nowhere and notebook links that save no notebook of the page's code; it saves
screenshots of the RoPE and attention pages, light and dark, under its temporary directory. At
a phone's width, figure text stays legible. tests/test_serve.py shares `chromium` and `browser`.
"""

from __future__ import annotations

import base64
import os
import posixpath
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag

import pytest

pytest.register_assert_rewrite("docs_site")  # imported here, before pytest loads it as a plugin (below)
from docs_site import nav_pages  # noqa: E402

pytest_plugins = ["docs_site"]  # the built site, shared with tests/test_docs_build.py

APT_TIMEOUT_S = 900
SCREENSHOT_PAGES = ("rope", "attention")


def _chromium_paths() -> tuple[str, str] | None:
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    driver = shutil.which("chromedriver") or ("/usr/lib/chromium/chromedriver"
                                              if Path("/usr/lib/chromium/chromedriver").exists() else None)
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Paths of Chromium and its chromedriver; installs Debian's packages if missing and root."""
    pytest.importorskip("selenium", reason="the browser test needs selenium: pip install -e '.[docs]'")
    found = _chromium_paths()
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("Chromium is not installed and there is no apt-get to install it "
                    "(install chromium and its chromedriver)")
    if os.geteuid() != 0:
        pytest.skip("Chromium is not installed and installing it needs root: "
                    "sudo apt-get install -y chromium chromium-driver")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium", "chromium-driver"]):
            subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        pytest.skip(f"installing Chromium did not finish within {APT_TIMEOUT_S} s ({' '.join(e.cmd)})")
    except subprocess.CalledProcessError as e:
        last = (e.stderr or e.stdout or "").strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"could not install Chromium: `{' '.join(e.cmd)}` exited {e.returncode}: {last[0]}")
    found = _chromium_paths()
    if not found:
        pytest.skip("apt-get installed chromium and chromium-driver, but chromium or chromedriver is not on PATH")
    return found


@pytest.fixture
def browser(chromium, tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not try to download a driver
    binary, driver_path = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,1000",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


# JavaScript run on every page: what the page shows and links to.
_INSPECT = """
const bad = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.currentSrc || i.src);
const svgImages = [...document.querySelectorAll('figure svg image')];
bad.push(...svgImages.filter(i => { const b = i.getBBox(); return !(b.width > 0 && b.height > 0)
    || !(i.getAttribute('xlink:href') || i.getAttribute('href') || '').startsWith('data:image/'); })
  .map(i => 'an image inside a figure'));
const text = document.querySelector('figure.l3-figure svg text');
return {
  brokenImages: bad,
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  ids: [...document.querySelectorAll('[id]')].map(e => e.id),
  figures: document.querySelectorAll('figure.l3-figure svg').length,
  scheme: document.body.getAttribute('data-md-color-scheme'),
  figureInk: text ? getComputedStyle(text).fill : null,
  background: getComputedStyle(document.body).backgroundColor,
};
"""


def _luminance(css_color: str) -> float:
    """'rgb(r, g, b)' or 'rgba(...)' -> relative brightness 0..1."""
    r, g, b = (float(v) for v in css_color[css_color.index("(") + 1:].rstrip(")").split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def _screenshot(driver, path: Path) -> Path:
    """The whole page, not only the window (Chrome DevTools' captureBeyondViewport)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def _download_notebook(browser, url: str, expected: str | None, downloads: Path) -> list[str]:
    """Click the page's "Download this page as a notebook" link, as a reader does, and check the
    file Chromium saves: a valid notebook of the page's code (tests/test_notebooks.py)."""
    from selenium.webdriver.common.by import By
    from test_notebooks import notebook_problems

    found = browser.find_elements(By.CSS_SELECTOR, 'a[href$=".ipynb"]')
    if expected is None:
        return [f"{url}: links a notebook ({a.get_attribute('href')}), but its page runs no code" for a in found]
    if len(found) != 1:
        return [f"{url}: {len(found)} links to a notebook, expected one to {expected}"]
    if not found[0].get_attribute("href").endswith("/" + expected):
        return [f"{url}: its notebook link goes to {found[0].get_attribute('href')}, expected …/{expected}"]
    file = downloads / posixpath.basename(expected)
    found[0].click()
    deadline = time.monotonic() + 20
    while not file.exists() and time.monotonic() < deadline:  # Chromium renames NAME.crdownload when done
        time.sleep(0.05)
    if not file.exists():
        return [f"{url}: clicking '{found[0].text}' saved no {file.name} within 20 s"]
    return notebook_problems(file.read_text(encoding="utf-8"), f"{url} -> {file.name}", expected)


def test_site_in_chromium(chromium, browser, served, built, tmp_path):  # chromium first: skip before building
    base, failed_requests = served
    pages = sorted(p.relative_to(built.site).as_posix() for p in built.site.rglob("index.html"))
    assert len(pages) >= len(nav_pages()), pages
    problems: list[str] = []
    ids: dict[str, set[str]] = {}
    links: dict[str, set[str]] = {}  # target URL -> pages linking to it
    screenshots = tmp_path / "screenshots"
    screenshots.mkdir()
    from test_notebooks import expected_notebooks

    notebooks = expected_notebooks()  # 'rope/index.html' -> 'notebooks/rope.ipynb', from the pages as they are
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]})
    for page in pages:
        url = base + page.removesuffix("index.html")
        browser.get(url)
        seen = browser.execute_script(_INSPECT)
        for entry in browser.get_log("browser"):
            if entry["level"] == "SEVERE":
                problems.append(f"{url}: console error: {entry['message']}")
        problems += [f"{url}: image did not load: {src}" for src in seen["brokenImages"]]
        problems += _download_notebook(browser, url, notebooks.get(page), downloads)
        ids[urldefrag(url)[0]] = set(seen["ids"])
        for link in seen["links"]:
            if link.startswith(base):
                links.setdefault(link, set()).add(url)
        if seen["figures"]:
            assert seen["scheme"] == "default", f"{url}: expected the light theme, got {seen['scheme']!r}"
            assert _luminance(seen["figureInk"]) < 0.5 < _luminance(seen["background"]), (
                f"{url}: figure text {seen['figureInk']} on {seen['background']}: not readable in the light theme")
        name = page.removesuffix("/index.html")
        if name in SCREENSHOT_PAGES:
            assert seen["figures"] >= 1, f"{url}: no figure"
            _screenshot(browser, screenshots / f"{name}-light.png")

    # Dark: the system preference says dark, and the reader presses the site's theme toggle (the
    # site remembers the light palette it chose on the first visit, and would keep it).
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    browser.execute_script("document.querySelector('label[for=\"__palette_1\"]').click()")
    for name in SCREENSHOT_PAGES:
        url = f"{base}{name}/"
        browser.get(url)
        seen = browser.execute_script(_INSPECT)
        assert seen["scheme"] == "slate", f"{url}: expected the dark theme, got {seen['scheme']!r}"
        assert _luminance(seen["figureInk"]) > 0.5 > _luminance(seen["background"]), (
            f"{url}: figure text {seen['figureInk']} on {seen['background']}: not readable in the dark theme")
        problems += [f"{url} (dark): console error: {e['message']}" for e in browser.get_log("browser")
                     if e["level"] == "SEVERE"]
        _screenshot(browser, screenshots / f"{name}-dark.png")

    for link, sources in sorted(links.items()):
        target, fragment = urldefrag(link)
        where = f"{link} (linked from {', '.join(sorted(sources))})"
        if target not in ids:
            status = _status(target)
            if status != 200:
                problems.append(f"broken link, HTTP {status}: {where}")
            continue
        if fragment and fragment not in ids[target]:
            problems.append(f"broken link, no element with id {fragment!r}: {where}")
    saved = sorted(p.name for p in downloads.iterdir())
    if saved != sorted(posixpath.basename(n) for n in notebooks.values()):
        problems.append(f"notebooks saved by clicking their links: {saved}; expected one per page that runs code")
    problems += [f"request failed: {r}" for r in failed_requests]
    print(f"{len(pages)} pages, {len(links)} internal links; screenshots in {screenshots}")
    assert not problems, "\n".join(problems)
    assert sorted(p.name for p in screenshots.iterdir()) == sorted(
        f"{n}-{m}.png" for n in SCREENSHOT_PAGES for m in ("light", "dark"))


_FIGURE_TEXT = """
const sizes = [...document.querySelectorAll('figure.l3-figure svg text')].map(t => {
  const svg = t.ownerSVGElement, box = svg.viewBox.baseVal;
  const scale = svg.getBoundingClientRect().width / (box && box.width ? box.width : svg.width.baseVal.value);
  return parseFloat(getComputedStyle(t).fontSize) * scale;  // the font's size on the screen, in CSS px
}).filter(h => h > 0);
return {count: sizes.length, smallest: sizes.length ? Math.min(...sizes) : null,
        overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth};
"""


def test_figures_stay_legible_at_phone_width(chromium, browser, served, built):
    """At 390 px no figure scrolls sideways: each shrinks to fit the column, and its text is never
    below 8 px; the page itself never scrolls sideways."""
    base, _ = served
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    checked = 0
    for page in sorted(p.relative_to(built.site).as_posix() for p in built.site.rglob("index.html")):
        browser.get(base + page.removesuffix("index.html"))
        seen = browser.execute_script(_FIGURE_TEXT)
        assert seen["overflow"] <= 1, f"{page}: the page is {seen['overflow']} px wider than a 390 px screen"
        if seen["count"]:
            checked += 1
            assert seen["smallest"] >= 8, f"{page}: figure text {seen['smallest']:.1f} px high at 390 px"
    assert checked >= 8, f"only {checked} pages with figures"
