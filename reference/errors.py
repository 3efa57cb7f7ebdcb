"""The one exception type the project raises for problems with the user's input, and the two
type checks that every validation of a number uses."""

import math


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
    """An int or a float (not a bool), neither infinite nor NaN."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def shown(text: str, limit: int = 120) -> str:
    """A name read from a stranger's file, safe to print in one line: control characters (a
    newline, an ANSI escape) written as escapes, and at most `limit` characters."""
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return safe if len(safe) <= limit else f"{safe[:limit]}… ({len(safe):,} characters)"
