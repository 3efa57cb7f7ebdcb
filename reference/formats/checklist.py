"""Meta's `checklist.chk`: the md5 of every file of a checkpoint, as `md5sum` writes them.

    <32 hex digits: the md5>  consolidated.00.pth
    <32 hex digits>  params.json
    <32 hex digits>  tokenizer.model

Meta's download script runs `md5sum -c checklist.chk`; a copy made another way may not. Shards
of the 70B all have the same shapes, so two swapped or duplicated ones load without complaint and
give another next token: only their bytes tell them apart. When the checkpoint directory has a
checklist, every file it lists is hashed and compared before the weights are read.

Hashing a 16 GB shard takes a minute, so a file's md5 is remembered in the cache
(`verified.json`), keyed by its path and what `stat` says of it (size, mtime, ctime, inode): the
next load of an unchanged file costs one `stat`. A file renamed into another's place (swapped
shards) has another inode; one rewritten in place has another ctime, which, unlike the mtime,
no one can set back (`touch -d` changes it too); either is hashed again.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from ..errors import InputError, shown
from ..files import cache_dir, read_json, read_text_file, write_atomic

CHECKLIST = "checklist.chk"
CACHE_NAME = "verified.json"
CHUNK = 16 << 20  # bytes read at a time while hashing
LINE = re.compile(r"([0-9a-fA-F]{32}) [ *](.+)")  # md5sum's text (two spaces) and binary (" *") modes


def verify_checklist(directory: Path, progress: bool = False, only: set[str] | None = None) -> None:
    """Compare every file checklist.chk lists (or those of them named in `only`: a tensor-parallel
    rank checks its own shards) with its md5; nothing to do without a checklist."""
    checklist = directory / CHECKLIST
    if not checklist.exists():
        return
    listed = read_checklist(checklist)
    files = [(name, directory / name, _stat(directory / name, checklist)) for name in listed
             if only is None or name in only]
    files.sort(key=lambda entry: entry[2].st_size)  # the small files first: a wrong params.json fails at once
    remembered = _read_cache()
    todo = sum(info.st_size for _, path, info in files if _known_md5(remembered, path, info) is None)
    bar = _bar(todo, progress) if todo else None
    try:
        for name, path, info in files:
            md5 = _known_md5(remembered, path, info)
            if md5 is None:
                md5 = md5_of(path, bar)
                remembered = _remember(path, {"stat": _fingerprint(info), "md5": md5})
            _compare(path, name, md5, listed, checklist)
    finally:
        if bar is not None:
            bar.close()


def read_checklist(checklist: Path) -> dict[str, str]:
    """file name -> md5 (lower case), in the checklist's order; a line that is not `<md5>  <name>`
    or a name that is not a file of this directory is one line naming the checklist and the line."""
    listed: dict[str, str] = {}
    for number, line in enumerate(read_text_file(checklist, what="checklist").splitlines(), start=1):
        if not line.strip():
            continue
        found = LINE.fullmatch(line.rstrip("\r"))
        if found is None:
            raise InputError(f"{checklist}: line {number} is {shown(line)!r}, not '<md5>  <file name>' "
                             "as md5sum writes it")
        md5, name = found.group(1).lower(), found.group(2)
        if "/" in name or "\\" in name or name in (".", ".."):
            raise InputError(f"{checklist}: line {number} names {shown(name)!r}, not a file in {checklist.parent}")
        if name in listed and listed[name] != md5:
            raise InputError(f"{checklist}: lists {shown(name)} twice with different md5s ({listed[name]}, {md5})")
        listed[name] = md5
    return listed


def md5_of(path: Path, bar=None) -> str:
    """The file's md5, read CHUNK bytes at a time; `bar` (a tqdm) advances by the bytes read."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                if bar is not None:
                    bar.update(len(chunk))
    except OSError as e:
        raise InputError(f"{path}: cannot read it to check its md5 ({e.strerror or e})") from None
    return digest.hexdigest()


def _compare(path: Path, name: str, md5: str, listed: dict[str, str], checklist: Path) -> None:
    want = listed[name]
    if md5 == want:
        return
    twins = [other for other, theirs in listed.items() if theirs == md5 and other != name]
    if twins:  # the bytes of another listed file: a swap or a copy, not a broken download
        raise InputError(f"{path}: md5 {md5} does not match {CHECKLIST} ({want}): it is the md5 listed for "
                         f"{twins[0]}; shards are swapped or duplicated: put each file under its own name")
    swapped = " or shards are swapped" if name.startswith("consolidated.") else ""
    raise InputError(f"{path}: md5 {md5} does not match {CHECKLIST} ({want}); the file is corrupt{swapped}: "
                     "download it again")


def _stat(path: Path, checklist: Path) -> os.stat_result:
    """A listed file's stat, after refusing one that is absent or not a regular file (hashing
    a FIFO would wait forever, /dev/zero would never end)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: listed in {checklist} but absent; the download is incomplete") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read it to check its md5 ({e.strerror or e})") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{path}: listed in {checklist} but not a regular file (a directory, device or FIFO)")
    return info


def _bar(total: int, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"md5 ({CHECKLIST})", unit="B", unit_scale=True, disable=not progress)


# --- what was hashed before: cache_dir()/verified.json ---
#
#   {"/abs/path/consolidated.00.pth": {"stat": [size, mtime_ns, inode, device], "md5": "…"}, …}
#
# A lost or unreadable cache only costs a hash again, so every problem with it is ignored.

def _key(path: Path) -> str:
    return str(path.resolve())  # the Hugging Face cache links names to blobs: the blob is what was hashed


def _fingerprint(info: os.stat_result) -> list[int]:
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev]


def _known_md5(remembered: dict, path: Path, info: os.stat_result) -> str | None:
    """The md5 remembered for this file as it is now (same size, mtime, ctime, inode), else None."""
    entry = remembered.get(_key(path))
    if isinstance(entry, dict) and entry.get("stat") == _fingerprint(info) and isinstance(entry.get("md5"), str):
        return entry["md5"]
    return None


def cache_file() -> Path:
    return cache_dir() / CACHE_NAME


def _read_cache() -> dict:
    try:
        cached = read_json(cache_file())
    except InputError:  # none yet, or damaged: start again
        return {}
    return cached if isinstance(cached, dict) else {}


def _remember(path: Path, entry: dict) -> dict:
    """Add one file's entry to the cache (re-read first: another process may have added its own)."""
    import json

    remembered = _read_cache()
    remembered[_key(path)] = entry
    try:
        cache_file().parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache_file(), json.dumps(remembered, indent=1).encode("utf-8"))
    except OSError:  # a read-only home: hashed again next time, nothing worse
        pass
    return remembered
