"""The docs site: built with `mkdocs build --strict` (every page's code runs), then read in Chromium.

The build runs once per session into a temporary directory. `strict` turns every warning into
a failure: a code block that raises, a missing snippet, a broken link or a missing image. The
browser test serves the built site on localhost, opens every page in headless Chromium
(installing the Debian packages `chromium` and `chromium-driver` first if it must and can),
and fails on console errors, failed requests, images that do not load and internal links
that lead nowhere; it saves screenshots of the RoPE and attention pages, light and dark,
under its temporary directory.
"""

from __future__ import annotations

import base64
import functools
import http.server
import os
import posixpath
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urldefrag

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 600
APT_TIMEOUT_S = 900
SCREENSHOT_PAGES = ("rope", "attention")


@dataclass(frozen=True)
class Build:
    returncode: int
    output: str  # mkdocs' log, stdout and stderr together
    site: Path
    seconds: float

    def problems(self) -> str:
        """The warnings and errors of the log, or its end if there are none."""
        lines = [line for line in self.output.splitlines() if line.startswith(("WARNING", "ERROR")) or "Error" in line]
        return "\n".join(lines[:40]) or self.output[-4000:]


@pytest.fixture(scope="session")
def built(tmp_path_factory, private_cache, tiny_dir) -> Build:
    """`mkdocs build --strict` of this checkout, on the tiny checkpoint, into a temporary site/."""
    pytest.importorskip("mkdocs", reason="the docs need the docs extra: pip install -e '.[docs]'")
    if not (private_cache / "tiny-seed0").exists():  # the checkpoint the pages load: reuse the session's
        (private_cache / "tiny-seed0").symlink_to(tiny_dir, target_is_directory=True)
    site = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("LLAMA3_REFERENCE_8B", None)  # the test builds the tiny site; the real one is opt-in
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                           "--site-dir", str(site)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S)
    return Build(proc.returncode, proc.stdout + proc.stderr, site, time.perf_counter() - start)


def nav_pages() -> list[str]:
    """The Markdown files of mkdocs.yml's nav, in order."""
    import yaml

    def walk(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                yield from walk(value)

    class Loader(yaml.SafeLoader):  # mkdocs.yml uses MkDocs' own `!relative` tag
        pass

    Loader.add_constructor("!relative", lambda loader, node: loader.construct_scalar(node))
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506
    return list(walk(config["nav"]))


def page_dir(md: str) -> str:
    """'index.md' -> '', 'rope.md' -> 'rope/': where mkdocs writes a page (directory URLs)."""
    return "" if md == "index.md" else md.removesuffix(".md") + "/"


# --- the build ---


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


# --- the browser ---


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


class _Handler(http.server.SimpleHTTPRequestHandler):
    failed: list[str]  # set per server: every request answered with an error status

    def log_message(self, format, *args):  # quiet; errors are collected instead
        pass

    def send_error(self, code, message=None, explain=None):
        self.failed.append(f"{code} {self.path}")
        super().send_error(code, message, explain)


@pytest.fixture(scope="session")
def served(built):
    """The built site on http://127.0.0.1:PORT/, and the list of requests that failed."""
    assert built.returncode == 0, built.problems()
    failed: list[str] = []
    handler = type("Handler", (_Handler,), {"failed": failed})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(built.site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", failed
    server.shutdown()
    server.server_close()


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
    """At 390 px a figure may scroll sideways inside its frame, but its text is never shrunk
    below 6.5 px (its smallest labels, 7 pt, at three quarters of their size), and the page
    itself never scrolls sideways."""
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
            assert seen["smallest"] >= 6.5, f"{page}: figure text {seen['smallest']:.1f} px high at 390 px"
    assert checked >= 8, f"only {checked} pages with figures"


def test_every_page_that_runs_code_links_its_notebook(built):
    """The built site's notebooks/: one per page with code, linked under its title, valid, up to date."""
    assert built.returncode == 0, built.problems()
    from test_notebooks import check_site

    problems = check_site(built.site)
    assert not problems, "\n".join(problems)
