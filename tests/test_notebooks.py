"""The pages as Jupyter notebooks (docs/_notebooks.py): every notebook runs, top to bottom.

Each notebook, generated from this checkout's pages as tests/test_notebooks_code.py generates
it, runs top to bottom in a fresh Jupyter kernel (nbclient; ipykernel in this Python),
offline, on the built-in models, two notebooks at a time; what a block prints shows as on
the site (HTML, Markdown or plain text).

`check_site(site)` checks a built site: every page with code links its notebook, and the
file there is a valid notebook of the same code. tests/test_docs_build.py calls it on the site
it builds, and the browser test of tests/test_docs.py follows each link.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from test_notebooks_code import PAGES, ROOT, _files, _page, _tools, code_cells, generated, hook

# Kernels at a time, one CPU thread each: on 2 cores, 2 one-thread kernels ran the 15 notebooks in
# 53-91 s, 1 at a time in 96-99 s, and 2 with torch's default threads (2 each) in 92-146 s.
CONCURRENCY = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
CELL_TIMEOUT_S = 300  # one cell; the slowest (a page's first, which loads the models) takes ~5 s here
STARTUP_TIMEOUT_S = 120


@dataclass
class Outcome:
    page: str
    seconds: float
    error: str | None  # None: every cell ran
    notebook: object  # the executed notebook, outputs included


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _failure(page: str, nb, e: Exception) -> str:
    """Which cell of which page failed, and how."""
    key = hook().METADATA_KEY
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                line = cell.metadata.get(key, {}).get("line")
                where = f"the block at docs/{page} line {line}" if line else "the set-up cell"
                head = "\n".join(cell.source.splitlines()[:3])
                trace = _ANSI.sub("", "\n".join(out.get("traceback", [])))[-4000:]
                return f"notebook of docs/{page}: cell {i} ({where}) raised {out.ename}: {out.evalue}\n{head}\n...\n{trace}"
    return f"notebook of docs/{page}: {type(e).__name__}: {_ANSI.sub('', str(e))[-4000:]}"


def _kernel_manager():
    """A kernel manager for this Python's ipykernel, whatever kernels Jupyter has registered elsewhere."""
    from ipykernel.kernelspec import make_ipkernel_cmd
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    class ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return KernelSpec(argv=make_ipkernel_cmd(), display_name="Python (tests)", language="python",
                              resource_dir=str(ROOT))

    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())


async def _execute(page: str, nb, cwd: Path, env: dict, slots: asyncio.Semaphore) -> Outcome:
    from nbclient import NotebookClient

    async with slots:
        start = time.perf_counter()
        km = _kernel_manager()
        client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, startup_timeout=STARTUP_TIMEOUT_S,
                                resources={"metadata": {"path": str(cwd)}})
        error = None
        try:
            await client.async_execute(env=env)
        except Exception as e:  # noqa: BLE001 — a cell's error, a timeout, a dead kernel: all reported per page
            error = _failure(page, nb, e)
        finally:
            if km.has_kernel:
                await km.shutdown_kernel(now=True)
        return Outcome(page, time.perf_counter() - start, error, nb)


async def _execute_all(books: dict, cwd: Path, env: dict, concurrency: int) -> dict[str, Outcome]:
    slots = asyncio.Semaphore(concurrency)
    longest_first = sorted(books, key=lambda page: -len(code_cells(books[page])))  # so that no slot idles at the end
    done = await asyncio.gather(*(_execute(page, books[page], cwd, env, slots) for page in longest_first))
    return {o.page: o for o in done}


@pytest.fixture(scope="session")
def executed(private_cache, tiny_dir, tmp_path_factory) -> dict[str, Outcome]:
    """Every notebook, run to the end (or its first error), CONCURRENCY at a time, each in its own kernel.

    The kernels get this checkout on PYTHONPATH (so `import reference` is this one, whatever
    is installed) and the session's private cache, with the tiny checkpoint made by the session
    already in it (SmolLM2's GGUF writes nothing there: each kernel expands it in RAM). The
    working directory is an empty one; the set-up cell finds the repository from `reference`.
    """
    _tools()
    pytest.importorskip("nbclient", reason="running the notebooks needs nbclient: pip install -e '.[docs]'")
    pytest.importorskip("ipykernel", reason="running the notebooks needs ipykernel: pip install -e '.[docs]'")
    import copy

    if not (private_cache / "tiny-seed0").exists():
        (private_cache / "tiny-seed0").symlink_to(tiny_dir, target_is_directory=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "PYTHONDONTWRITEBYTECODE": "1", "JUPYTER_PLATFORM_DIRS": "1", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # one thread per kernel: CONCURRENCY kernels share the CPUs
    env.pop("LLAMA3_REFERENCE_8B", None)  # the built-in models; the real 8B is opt-in
    books = {page: copy.deepcopy(nb) for page, nb in generated().items()}
    start = time.perf_counter()
    outcomes = asyncio.run(_execute_all(books, tmp_path_factory.mktemp("notebook-cwd"), env, CONCURRENCY))
    total = time.perf_counter() - start
    print(f"\n{len(outcomes)} notebooks in {total:.1f} s, {CONCURRENCY} at a time: "
          + ", ".join(f"{o.page} {o.seconds:.1f} s" for o in sorted(outcomes.values(), key=lambda o: -o.seconds)))
    return outcomes


@pytest.mark.parametrize("page", PAGES)
def test_notebook_runs_top_to_bottom(page, executed):
    outcome = executed[_page(page)]
    assert outcome.error is None, outcome.error
    key = hook().METADATA_KEY
    for cell in code_cells(outcome.notebook):
        mode = hook().Block("python", cell.source, 0, cell.metadata[key]["options"]).mode
        kinds = {o.output_type for o in cell.outputs}
        shown = {mime for o in cell.outputs if o.output_type == "display_data" for mime in o.data}
        where = f"docs/{page} line {cell.metadata[key]['line']} ({mode})"
        if mode == "text":
            assert "display_data" not in kinds, f"{where}: its plain-text output was shown as {shown}"
        else:
            assert "stream" not in kinds or all(o.name == "stderr" for o in cell.outputs if o.output_type == "stream"), (
                f"{where}: print wrote to stdout instead of showing as on the site")
            if shown:
                assert ("text/html" if mode == "html" else "text/markdown") in shown, f"{where}: shown as {shown}"
    assert any(o.output_type == "display_data" for c in code_cells(outcome.notebook) for o in c.outputs), (
        f"docs/{page}: its notebook showed nothing")


# --- the built site: links and files (tests/test_docs_build.py and tests/test_docs.py call these) ---


def expected_notebooks() -> dict[str, str]:
    """Page HTML file (relative to the site, e.g. 'rope/index.html') -> its notebook's path there."""
    return {site_html(page): hook().notebook_uri(page) for page in generated()}


def site_html(page: str) -> str:
    """'rope.md' -> 'rope/index.html', and its Chinese twin 'rope.zh.md' -> 'zh/rope/index.html':
    mkdocs-static-i18n's suffix structure builds each language into a folder of its own."""
    twin = re.fullmatch(r"(.+)\.([a-z]{2})\.md", page)
    if twin is None:
        return _files().get_file_from_path(page).dest_uri
    return f"{twin.group(2)}/{_files().get_file_from_path(twin.group(1) + '.md').dest_uri}"


_LINK = re.compile(r'<a download href="([^"]+\.ipynb)">')


def notebook_problems(text: str, where: str, notebook_path: str) -> list[str]:
    """What is wrong with a notebook file's text, as the site serves it: not a valid notebook, or
    not the code its page runs now (the site is stale)."""
    import nbformat

    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as e:  # noqa: BLE001 — a JSON error or a schema error
        return [f"{where}: not a valid notebook: {type(e).__name__}: {str(e)[:300]}"]
    page = {hook().notebook_uri(p): p for p in generated()}[notebook_path]
    if [c.source for c in code_cells(nb)] != [c.source for c in code_cells(generated()[page])]:
        return [f"{where}: its code is not docs/{page}'s (a stale build?)"]
    return []


def check_site(site: Path) -> list[str]:
    """A built site: every page that runs code links its notebook once, under the title, and the
    file it links to is a valid notebook of the page's code; pages without code link none."""
    import posixpath

    problems = []
    expected = expected_notebooks()
    for html in sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")):
        links = _LINK.findall((site / html).read_text(encoding="utf-8"))
        if html not in expected:
            problems += [f"{html}: links a notebook, {link}, but its page runs no code" for link in links]
            continue
        if len(links) != 1:
            problems.append(f"{html}: {len(links)} notebook links, expected 1 to {expected[html]}")
            continue
        target = posixpath.normpath(posixpath.join(posixpath.dirname(html), links[0]))
        if target != expected[html]:
            problems.append(f"{html}: links {links[0]} ({target}), expected {expected[html]}")
        elif not (site / target).is_file():
            problems.append(f"{html}: links {links[0]}, which is not in the site")
        else:
            problems += notebook_problems((site / target).read_text(encoding="utf-8"), target, target)
    missing = set(expected) - {p.relative_to(site).as_posix() for p in site.rglob("*.html")}
    problems += [f"{html}: not built" for html in sorted(missing)]
    return problems
