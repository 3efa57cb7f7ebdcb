"""Files in and out: one atomic writer, one JSON reader, one Git LFS check, one output-path check.

Everything the project writes (traces, goldens, tables) goes through `write_atomic`, so an
interrupted run never leaves a half-written file where a good one was; everything it reads
that a person may have mistyped or half-downloaded fails in one line naming the file. A set of
files that must change together (the goldens) is swapped in whole by `verify/swap.py`; an .npz
is read member by member by `npz.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .errors import InputError, shown

LFS_POINTER = b"version https://git-lfs"  # what a clone made without `git lfs pull` holds instead


def check_not_lfs_pointer(file: Path, head: bytes, what: str = "run `git lfs pull` in that clone") -> None:
    """A Git LFS pointer (a 130-byte text file) stands where the real file should be."""
    if head.startswith(LFS_POINTER):
        raise InputError(f"{file}: is a Git LFS pointer, not the real file; {what}")


def read_head(file: Path, n: int = 64) -> bytes:
    """The first `n` bytes of a weights file, after refusing a Git LFS pointer in its place."""
    try:
        with open(file, "rb") as f:
            head = f.read(n)
    except OSError as e:
        raise InputError(f"{file}: cannot read ({e.strerror})") from None
    check_not_lfs_pointer(file, head)
    return head


MiB = 1 << 20
# What a sane file of each kind can be: Llama 3's tokenizer.model is 2.2 MB, its tokenizer.json
# 9 MB, a params.json or config.json under 2 KB, a 405B index.json about 100 KB.
JSON_LIMIT, TEXT_LIMIT = 16 * MiB, 16 * MiB


def too_big(file, size: int, what: str, limit: int) -> InputError:
    return InputError(f"{file}: is {size:,} bytes, more than a {what} can be ({limit:,} at most)")


def read_bounded(file: Path, what: str, limit: int, missing: str | None = None) -> bytes:
    """A regular file's bytes, refused before opening when it is not a regular file or is
    larger than `limit`: /dev/zero would be read until memory ran out, a FIFO would hang."""
    try:
        info = os.stat(file)
    except FileNotFoundError:
        raise InputError(f"{file}: not found ({missing or what})") from None
    except OSError as e:
        raise InputError(f"{file}: cannot read the {what} ({e.strerror or e})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{file}: is a directory; expected the {what}, a file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{file}: is not a regular file (a device, FIFO or socket); expected the {what}")
    if info.st_size > limit:
        raise too_big(file, info.st_size, what, limit)
    try:
        with open(file, "rb") as f:
            data = f.read(limit + 1)  # the file may have grown since stat
    except OSError as e:
        raise InputError(f"{file}: cannot read the {what} ({e.strerror or e})") from None
    if len(data) > limit:
        raise too_big(file, len(data), what, limit)
    return data


def read_text_file(file: Path, what: str, limit: int = TEXT_LIMIT) -> str:
    """A UTF-8 text file's contents; not found, a directory, too big or not UTF-8 is one line naming the file."""
    data = read_bounded(Path(file), what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{file}: the {what} is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r})") from None


def read_json(file: Path, missing: str | None = None, limit: int = JSON_LIMIT):
    """Parse a JSON file; not found, not a regular file, too big, unreadable or invalid is one
    line naming the file. `missing` says what the file is for, in the not-found message.
    """
    data = read_bounded(Path(file), "JSON file", limit, missing=missing or "a JSON file")
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys)
    except InputError as e:
        raise InputError(f"{file}: {e}") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{file}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{file}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:  # [[[[…]]]] 100,000 deep: Python's parser recurses once a level
        raise InputError(f"{file}: JSON nested too deeply to be a config") from None


def user_path(text) -> Path:
    """A path the user typed, with ~ expanded; '~nosuchuser/x' is one line, not a RuntimeError."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        raise InputError(f"{text}: no such user for '~'") from None


def _unique_keys(pairs: list) -> dict:
    """A JSON object whose keys are all different: `{"dim": 64, "dim": 4096}` means nothing
    sure, and json's own rule (the last one wins) would take one silently."""
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise InputError(f"the key {shown(key)!r} appears twice in one object; keep the one you mean")
        obj[key] = value
    return obj


def check_out_dir(out: str | Path) -> Path:
    """An output file's directory must exist: checked before minutes of compute, not after."""
    out = Path(out)
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: no such directory")
    return out


def check_free_space(directory: Path, needed: int, what: str, hint: str = "") -> None:
    """Refuse before writing `needed` bytes into `directory` (or where it will be made) when the
    disk has less free: a write that runs out of space part-way through a memory-mapped file
    dies of SIGBUS, with no message and its temporary files left behind."""
    where = Path(directory)
    while not where.exists() and where != where.parent:  # the disk it will be made on
        where = where.parent
    free = shutil.disk_usage(where).free
    if free < needed:
        raise InputError(f"{directory}: {what} needs {needed:,} bytes but only {free:,} are free there{hint}; "
                         "free some space or choose another directory")


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (what can be allocated without swapping); None off Linux."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write beside `path`, then rename over it: an interrupted write leaves the old file whole."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _mode_for(path))  # mkstemp makes the file private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _mode_for(path: Path) -> int:
    """The mode of the file being replaced, so a private (0600) trace stays private; a new file
    gets an ordinary file's mode (0666 less the umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(Path(path), text.encode("utf-8"))


def cache_dir() -> Path:
    """$LLAMA3_REFERENCE_CACHE, else $XDG_CACHE_HOME/llama3-reference, else ~/.cache/llama3-reference."""
    if os.environ.get("LLAMA3_REFERENCE_CACHE"):
        return user_path(os.environ["LLAMA3_REFERENCE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return user_path(xdg) / "llama3-reference"
