"""A directory replaced whole: all of the new files or all of the old ones, never a mix.

The goldens are a set of files that must change together; `goldens.regenerate` builds the new
set beside the old one and swaps it in with two renames, under a lock.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError


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
