"""Files in and out: one atomic writer, one JSON reader, one Git LFS check, one output-path check.

Everything the project writes (traces, goldens, tables) goes through `write_atomic`, so an
interrupted run never leaves a half-written file where a good one was; everything it reads
that a person may have mistyped or half-downloaded fails in one line naming the file.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Mapping
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


def read_text_file(file: Path, what: str) -> str:
    """A UTF-8 text file's contents; not found, a directory or not UTF-8 is one line naming the file."""
    try:
        data = Path(file).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{file}: not found ({what})") from None
    except OSError as e:
        raise InputError(f"{file}: cannot read the {what} ({e.strerror or e})") from None
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
        data = sys.stdin.buffer.read()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"standard input: the prompt is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r})") from None
    return options.prompt


def read_json(file: Path, missing: str | None = None):
    """Parse a JSON file; not found, unreadable or invalid is one line naming the file.

    `missing` says what the file is for, in the not-found message.
    """
    try:
        return json.loads(Path(file).read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except InputError as e:
        raise InputError(f"{file}: {e}") from None
    except FileNotFoundError:
        raise InputError(f"{file}: not found" + (f" ({missing})" if missing else "")) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{file}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{file}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None


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
    with np.load(path, allow_pickle=False) as f:
        return {name: f[name] for name in f.files}


def cache_dir() -> Path:
    """$LLAMA3_REFERENCE_CACHE, else $XDG_CACHE_HOME/llama3-reference, else ~/.cache/llama3-reference."""
    if os.environ.get("LLAMA3_REFERENCE_CACHE"):
        return Path(os.environ["LLAMA3_REFERENCE_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "llama3-reference"
