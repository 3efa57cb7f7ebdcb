"""Files in and out: one atomic writer, one JSON reader, one Git LFS check, one output-path check.

Everything the project writes (traces, goldens, tables) goes through `write_atomic`, so an
interrupted run never leaves a half-written file where a good one was; everything it reads
that a person may have mistyped or half-downloaded fails in one line naming the file. A set of
files that must change together (the goldens) is rebuilt in a staging directory and swapped in
whole (`stage_dir`, `swap_in`, `recover_dir`), under a lock (`lock_beside`).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

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


def prompt_text(options) -> str | None:
    """The prompt that --prompt TEXT, --prompt - (standard input) or --prompt-file PATH gives,
    read as UTF-8 text; None when the command has neither."""
    if options.prompt_file is not None:
        return read_text_file(Path(options.prompt_file), what="prompt file")
    if options.prompt == "-":
        data = sys.stdin.buffer.read(TEXT_LIMIT + 1)  # `< /dev/zero` must not fill memory
        if len(data) > TEXT_LIMIT:
            raise too_big("standard input", len(data), "prompt", TEXT_LIMIT)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"standard input: the prompt is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r})") from None
    return options.prompt


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


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write beside `path`, then rename over it: an interrupted write leaves the old file whole."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; ours are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(Path(path), text.encode("utf-8"))


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """np.savez_compressed, but with fixed timestamps (same arrays, same bytes) and atomic."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as f:
                np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)
    return write_atomic(Path(path), buffer.getvalue())


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz file; never unpickles (an object array is refused, not run)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {name: f[name] for name in f.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:  # pickles, truncation, garbage
        problem = "holds pickled objects" if "allow_pickle" in str(e) else f"is not a readable .npz ({type(e).__name__})"
        raise InputError(f"{path}: {problem}; an .npz of plain arrays is expected") from None


# --- a directory replaced whole: all of the new files or all of the old ones, never a mix ---
#
# stage_dir builds NEW beside DIR; swap_in renames DIR -> OLD, NEW -> DIR (the commit point),
# then deletes OLD. A run killed at any moment leaves one of these states, and recover_dir, run
# first by the next run, ends each one the same way:
#   NEW beside DIR        killed while building: NEW is unfinished; delete it (DIR is the old set)
#   OLD and NEW, no DIR   killed between the renames: NEW is complete (OLD only exists once it
#                         is); rename NEW -> DIR, delete OLD
#   OLD beside DIR        killed while deleting OLD: delete it (DIR is the new set)

def staging_paths(directory: Path) -> tuple[Path, Path]:
    """NEW and OLD for `directory`: hidden, beside it (a rename is atomic only within one disk),
    named so that no one else's directory is mistaken for them."""
    return (directory.parent / f".{directory.name}.llama3-reference-new",
            directory.parent / f".{directory.name}.llama3-reference-old")


def recover_dir(directory: Path) -> str | None:
    """End a replacement a killed run left half-done (see above); what was done, or None."""
    new, old = staging_paths(directory)
    done = None
    if old.exists() and not directory.exists():
        back = new if new.exists() else old  # no NEW (someone deleted it): put OLD back
        os.rename(back, directory)
        done = f"an interrupted run had swapped out the old set; put the {'new' if back == new else 'old'} set in place"
    if new.exists():
        shutil.rmtree(new)
        done = "an interrupted run left an unfinished new set beside it; deleted that (the old set is as it was)"
    if old.exists():
        shutil.rmtree(old)
        done = done or "an interrupted run left the replaced set beside it; deleted that"
    return done


def stage_dir(directory: Path) -> Path:
    """NEW: a copy of `directory` (empty if it does not exist) whose files are hard links, so no
    byte is copied and an unchanged file keeps its inode and mtime through the swap. Replace a
    file in it by renaming over it (write_atomic), never by writing into it: that would change
    the linked original too."""
    new, _ = staging_paths(directory)
    if not directory.exists():
        new.mkdir()
        return new
    # the hidden temporary files of a write_atomic killed before this scheme existed: not carried over
    junk = shutil.ignore_patterns(".*.npz.*.tmp", ".*.json.*.tmp")
    shutil.copytree(directory, new, symlinks=True, copy_function=_link_or_copy, ignore=junk)
    return new


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a filesystem without hard links
        shutil.copy2(src, dst)


def swap_in(directory: Path) -> None:
    """Put NEW in place of `directory`: two renames, then the old set deleted."""
    new, old = staging_paths(directory)
    if directory.exists():
        os.rename(directory, old)
    os.rename(new, directory)  # the commit point
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def lock_beside(directory: Path, what: str):
    """Hold an exclusive lock while `what` rewrites `directory`; a second run is refused at once.

    The lock is flock on the parent directory itself, not on a lock file: nothing is left
    behind (goldens/ stays clean for git), it stays valid while `directory` is renamed away and
    back, and the kernel releases it when the holder dies, even of kill -9."""
    import fcntl  # POSIX; imported here so that reading files works everywhere

    fd = os.open(directory.parent, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{directory}: another {what} is running in {directory.parent}; "
                             "wait for it to finish, then run again") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def cache_dir() -> Path:
    """$LLAMA3_REFERENCE_CACHE, else $XDG_CACHE_HOME/llama3-reference, else ~/.cache/llama3-reference."""
    if os.environ.get("LLAMA3_REFERENCE_CACHE"):
        return user_path(os.environ["LLAMA3_REFERENCE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return user_path(xdg) / "llama3-reference"
