"""The one exception type the project raises for problems with the user's input, the type checks
every validation of a value read from a file uses (`is_int`, `is_finite_number`, `expect`), and
the last resort for everything else."""

import errno
import math
import os
import sys
import traceback
from pathlib import Path


class InputError(ValueError):
    """Something the user gave us is wrong: a file, a key, a value.

    The message is one line that names what is at fault and where (file, tensor, key, value),
    and says what to do when that is not obvious. The CLI prints it as-is and exits with 2;
    it never shows a traceback for these.
    """


def is_int(value) -> bool:
    """An int and not a bool: in Python True is the int 1, and `"n_layers": true` must not pass."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value) -> bool:
    """An int or a float (not a bool), neither infinite nor NaN, nor an int too large for a float (10**400)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
         dict: "an object"}


def expect(value, kind: type, where: str):
    """`value` when it is of `kind` as JSON means it (int: not a bool; float: any finite number),
    else one line: `expect("false", bool, "cfg.json: add_bos_token")` ->
    InputError('cfg.json: add_bos_token must be true or false, got the string "false"')."""
    ok = is_int(value) if kind is int else is_finite_number(value) if kind is float else isinstance(value, kind)
    if not ok:
        raise InputError(f"{where} must be {KINDS.get(kind, kind.__name__)}, got {described(value)}")
    return value


def described(value) -> str:
    """A value read from a file, named for an error: 'the string "false"', 'null', 'a list of 3'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"the string {shown(repr(value), 60)}"
    if isinstance(value, (list, dict)):
        return f"{'a list' if isinstance(value, list) else 'an object'} of {len(value):,}"
    return shown(repr(value), 60)


def shown(text: str, limit: int = 120) -> str:
    """A name read from a stranger's file, safe to print in one line: control characters (a
    newline, an ANSI escape) written as escapes, and at most `limit` characters."""
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return safe if len(safe) <= limit else f"{safe[:limit]}… ({len(safe):,} characters)"


# --- the last resort: whatever nothing else caught, still one line ---

def last_resort(e: Exception) -> int:
    """Print the one line for an exception that no check turned into an InputError; the exit code.
    LLAMA3_REFERENCE_TRACEBACK=1 re-raises it instead, for the whole traceback."""
    if os.environ.get("LLAMA3_REFERENCE_TRACEBACK") == "1":
        raise e
    message, code = unexpected(e)
    print(f"error: {message}", file=sys.stderr)
    return code


def unexpected(e: BaseException) -> tuple[str, int]:
    """The one line and exit code for an exception that no check turned into an InputError.

    Memory or disk running out, or a file the system will not let us write, is the user's
    situation, not a bug: said plainly, exit 2. Anything else is a bug in this project, named
    with the file and line where it happened, exit 1.
    """
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, MemoryError) or "can't allocate memory" in text or "not enough memory" in text:
        return ("ran out of memory (" + shown(text or type(e).__name__, 100) + "); try a shorter prompt, a "
                "smaller model, or --dtype bfloat16"), 2
    if isinstance(e, OSError) and (e.errno in (errno.ENOSPC, errno.EDQUOT) or e.filename):
        where = shown(e.filename) if e.filename else "a file"
        return f"{where}: {e.strerror or shown(text)}" + ("; free some space and run again" if e.errno in (
            errno.ENOSPC, errno.EDQUOT) else ""), 2
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if f"{os.sep}reference{os.sep}" in f.filename] or frames
    at = f" at {_within_package(ours[-1].filename)}:{ours[-1].lineno}" if ours else ""
    return (f"internal error, a bug in llama3-reference ({type(e).__name__}: {shown(text, 160)}{at}); please report "
            "it, with LLAMA3_REFERENCE_TRACEBACK=1 for the traceback"), 1


def _within_package(filename: str) -> str:
    """'/x/reference/cli/main.py' -> 'cli/main.py': the file as the package's rooms name it."""
    parts = Path(filename).parts
    return "/".join(parts[len(parts) - parts[::-1].index("reference"):]) if "reference" in parts else Path(filename).name
