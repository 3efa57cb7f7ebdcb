"""Code on a page, included from reference/ when the site is built, never copied: a function,
a class or a module-level constant, or the lines between two markers of one, as a block titled
with its file and line numbers. A marker that is no longer in the code fails the build.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def code(obj, name: str | None = None, *, start: str | None = None, end: str | None = None) -> str:
    """The source of a function or class (or of a module-level constant `name`), as a titled block.

    Read from reference/ at build time, so the page always shows the code that ran. `start`
    and `end` cut out the lines from the first one containing `start` to the next one
    containing `end`; if either is not found the build fails, so a page cannot go on
    describing code that has changed.
    """
    file = Path(inspect.getsourcefile(obj))
    if name is None:
        lines, first = inspect.getsourcelines(obj)
    else:
        lines, first = _constant_source(file, name)
    if start is not None or end is not None:
        i = _find(lines, start, 0, obj) if start is not None else 0
        j = _find(lines, end, i, obj) if end is not None else len(lines) - 1
        lines, first = lines[i:j + 1], first + i
        lines = textwrap.dedent("".join(lines)).splitlines(keepends=True)
    where = file.resolve().relative_to(ROOT)
    last = first + len(lines) - 1
    span = f"line {first}" if first == last else f"lines {first}–{last}"
    return f'````python title="{where} · {span}"\n{"".join(lines).rstrip()}\n````\n'


def _find(lines: list[str], text: str, after: int, obj) -> int:
    for i in range(after, len(lines)):
        if text in lines[i]:
            return i
    raise LookupError(f"{getattr(obj, '__qualname__', obj)}: no line containing {text!r}")


def _constant_source(file: Path, name: str) -> tuple[list[str], int]:
    """A module-level assignment `name = ...`, with the comment lines right above it."""
    source = file.read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            first = node.lineno - 1
            while first > 0 and lines[first - 1].lstrip().startswith("#"):
                first -= 1
            return lines[first:node.end_lineno], first + 1
    raise LookupError(f"{file}: no module-level assignment to {name}")
