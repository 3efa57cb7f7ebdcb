"""A chat template is a program that came with a downloaded model: run it with a budget.

The Jinja sandbox already stops a template from reaching Python's internals (`"".__class__`
and the like); what it cannot stop is a template that loops 10¹⁰ times, pads a string to a
billion characters, computes 9**9**9 or recurses until the stack ends. So a template is
compiled and rendered in a child process (`os.fork`) with a deadline (`TIME_S`), an address-
space limit (`MEMORY_BYTES` above what the process already maps) and a cap on what it may
write (`OUTPUT_CHARS`). Whatever stops it — the deadline, the memory limit, an exception it
raises on purpose (`raise_exception`) or by accident — is one line naming the file it came from.

This is a boundary by class, not a list of cases: no template, however written, can run past
the deadline, grow past the memory limit or reach the user's terminal with a control character
(every message goes through `errors.shown`). Rendering a real template costs the fork, a few
milliseconds. Where `os.fork` does not exist (Windows) the template renders in this process,
with the sandbox alone.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import InputError, shown

TIME_S = 5.0  # SmolLM2's and Llama 3's templates render in about a millisecond
MEMORY_BYTES = 512 << 20  # beyond what the process had mapped when the child was forked
OUTPUT_CHARS = 4 << 20  # a conversation longer than any Llama 3's context (131,072 tokens) anyway


class _Generation(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` renders its body as is.

    transformers uses the tag to find which tokens the assistant wrote; some templates have it.
    """

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


class TemplateRaised(Exception):
    """What a template's own `raise_exception(message)` raises: its message, as the template wrote it."""


def _raise_exception(message):
    # A template calls this for a conversation it cannot write, such as roles out of order.
    raise TemplateRaised(message)


def compile_template(template: str) -> jinja2.Template:
    """The template compiled as transformers compiles it: sandboxed, trim_blocks, lstrip_blocks.

    The extra names are those transformers provides: `raise_exception`, `strftime_now` and a
    `tojson` that does not escape HTML.
    """
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols, _Generation])
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: \
        json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda format: datetime.now().strftime(format)
    return env.from_string(template)


def render_template(template: str, source: str | None, **variables) -> str:
    """`template` rendered with `variables`, within the budget; any failure is one line naming
    `source`, the file the template came from."""
    where = f"{shown(source)}: " if source else ""
    if not isinstance(template, str):
        raise InputError(f"{where}the chat template must be text, got {type(template).__name__}")
    if not hasattr(os, "fork"):
        outcome = _render(template, variables)
    else:
        outcome = _in_child(lambda: _render(template, variables))
    kind, value = outcome
    if kind == "error":
        raise InputError(f"{where}chat template: {value}")
    return value


def _render(template: str, variables: dict) -> tuple[str, str]:
    """("text", the rendering) or ("error", one sentence): never raises."""
    try:
        text = compile_template(template).render(**variables)
    except TemplateRaised as e:
        return "error", f"it refused the conversation: {shown(e, 200)}"
    except jinja2.TemplateSyntaxError as e:
        return "error", f"line {e.lineno}: {shown(e.message, 200)}"
    except MemoryError:
        return "error", f"needs more than {MEMORY_BYTES >> 20} MiB of memory; a template that builds huge " \
                        "strings or numbers is refused"
    except RecursionError:
        return "error", "recurses too deeply (a macro or include that calls itself without end)"
    except Exception as e:  # noqa: BLE001 - a template is a stranger's program: whatever it raises is its error
        return "error", f"{type(e).__name__}: {shown(e, 200)}"
    if len(text) > OUTPUT_CHARS:
        return "error", f"writes {len(text):,} characters; at most {OUTPUT_CHARS:,} are accepted"
    return "text", text


def _in_child(work) -> tuple[str, str]:
    """Run `work` (which never raises) in a forked child with a deadline and an address-space
    limit; its result comes back as JSON through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run, write, leave at once (no atexit, no flushing the parent's buffers)
        try:
            os.close(read_end)
            _limit_memory()
            data = json.dumps(work()).encode("utf-8")
            view = memoryview(data)
            while view:
                view = view[os.write(write_end, view):]
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        data, finished = _read_until(read_end, time.monotonic() + TIME_S)
    finally:
        os.close(read_end)
    if not finished:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if not finished:
        return "error", f"still running after {TIME_S:g} s; a template that loops or computes without end is refused"
    if not data:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit code {os.WEXITSTATUS(status)}"
        return "error", f"stopped without an answer ({how}), out of memory or stack"
    kind, value = json.loads(data)
    return kind, value


def _read_until(fd: int, deadline: float) -> tuple[bytes, bool]:
    """Everything written to `fd` until its writer closes it; (bytes, False) at the deadline."""
    chunks, size = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return b"", False
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
        if size > 8 * OUTPUT_CHARS:  # JSON escapes at most 6 bytes a character; more is not ours
            return b"", False


def _limit_memory() -> None:
    """Cap the child's address space at what it maps now plus MEMORY_BYTES (Linux: /proc)."""
    try:
        import resource

        mapped = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = mapped + MEMORY_BYTES
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (OSError, ValueError, ImportError):
        pass  # not Linux, or a hard limit already lower: the deadline still holds
