"""The docs site, built once per session with `mkdocs build --strict` into a temporary directory,
and served on localhost: fixtures for tests/test_docs_build.py and tests/test_docs.py.

Both load this module with `pytest_plugins = ["docs_site"]`, which registers its fixtures once
for the whole session, so that the two files share one build (importing `built` into each would
build the site once per file).
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 600


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
