"""A page cut into its text and its executed Python blocks, reading fences as pymdownx.superfences does.

The first step of a page's notebook (_notebooks.py): each `Block` becomes a code cell, the text
between them Markdown cells.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A fence as pymdownx.superfences reads it: ``` or ~~~ (3 or more), a language, then options
# key="value" (or the braced form {.python key="value"}). Closed by the same character, at least
# as many times, alone on its line.
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")
_OPTION = re.compile(r"""([a-zA-Z][\w-]*)(?:=(?:"([^"]*)"|'([^']*)'|([^\s}]+)))?""")
_PYTHON = {"python", "py"}


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
