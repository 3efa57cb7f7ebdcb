"""Assertions shared by the test files."""

from pathlib import Path

import pytest

from reference.formats import load_checkpoint
from reference.errors import InputError


def one_line_error(excinfo, *parts: str) -> str:
    """The InputError's message, after checking it is one line and names every part."""
    message = str(excinfo.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message
    return message


def refused(directory, *parts: str) -> str:
    """`load_checkpoint(directory)` fails with one line naming every part; the message."""
    with pytest.raises(InputError) as excinfo:
        load_checkpoint(directory)
    return one_line_error(excinfo, *parts)


def rss_anon() -> int:
    """Anonymous memory this process holds now, in bytes: memory-mapped file pages do not count."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("RssAnon:"))) * 1024
