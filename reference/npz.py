"""The .npz files the project writes and reads: traces, goldens, a learner's tensors.

Writing is `np.savez_compressed` with fixed timestamps, atomically. Reading is the boundary for
a stranger's file: every member's zip entry and NPY header is checked before a byte of it is
inflated (no pickles, no strings or complex values, no encrypted or foreign members, no name
with a control character, nothing that inflates past a budget), and each refusal is one line
naming the file and the member.
"""

from __future__ import annotations

import io
import math
import os
import stat
import tokenize
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import InputError, shown
from .files import MiB, available_memory, write_atomic


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


# --- reading: every member checked before a byte of it is inflated ---

# How far an .npz may inflate. Computed tensors deflate little: the goldens 1.1-1.5×, tiny's
# traces 1.1-5× whole, 14× at worst (no logits, one token repeated 1,000 times, bf16 values
# stored as float64); deflate reaches 1,032× on one repeated byte, where zip bombs sit. So a
# file may inflate to 100× its size on disk, or 256 MiB whatever its size; never past free memory.
NPZ_RATIO, NPZ_FLOOR = 100, 256 * MiB
NPZ_MEMBERS = 10_000  # a 405B trace names 126 layers × 14 steps + 6 = 1,770 tensors
CHUNK = 16 * MiB  # inflated at a time: zipfile inflates no further than it is asked to read
DTYPE_HINTS = {"c": "; store complex values as real pairs [..., 2]: np.stack([z.real, z.imag], -1)",
               "V": "; bfloat16 (ml_dtypes) is written as raw 2-byte records: store it as float32"}
UNREADABLE = (OSError, EOFError, ValueError, SyntaxError, tokenize.TokenError, zipfile.BadZipFile, zlib.error,
              NotImplementedError)  # how zipfile, zlib and NumPy's NPY header parser fail on a stranger's bytes
NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def read_npz(path: str | Path, what: str = "an .npz of plain arrays (np.savez)") -> dict[str, np.ndarray]:
    """The arrays of an .npz, each member's zip entry and NPY header checked before its data is
    inflated; anything else is one line naming the file and the member. Never unpickles."""
    try:
        zf = zipfile.ZipFile(path) if stat.S_ISREG(os.stat(path).st_mode) else None  # a FIFO would hang
    except UNREADABLE as e:  # truncation, garbage
        raise InputError(f"{path}: is not a readable .npz ({type(e).__name__}); {what} is expected") from None
    if zf is None:
        raise InputError(f"{path}: is not a regular file (a directory, device or FIFO); {what} is expected")
    with zf:
        size, free = os.stat(path).st_size, available_memory()
        budget = min((max(NPZ_FLOOR, NPZ_RATIO * size), f"256 MiB or {NPZ_RATIO}× its {size:,} bytes if more"),
                     (math.inf if free is None else free, "the memory available"))  # the smaller, and why
        members = npz_members(path, zf.infolist(), *budget)
        return {name: read_member(path, zf, info, name) for name, info in members.items()}


def npz_members(path, infos: list[zipfile.ZipInfo], budget: int, why: str) -> dict[str, zipfile.ZipInfo]:
    """Array name -> zip entry, from the zip's directory alone: nothing is inflated yet."""
    if len(infos) > NPZ_MEMBERS:
        raise InputError(f"{path}: holds {len(infos):,} members, more than a trace names ({NPZ_MEMBERS:,} at most)")
    members, total = {}, 0
    for info in infos:
        name, total, at = info.filename[:-4], total + info.file_size, f"{path}: member {shown(info.filename)}"
        if not info.filename.endswith(".npy") or not name or info.is_dir():
            raise InputError(f"{at}: is not NAME.npy; np.savez writes one NAME.npy per array")
        if not name.isprintable():  # so that no later message can print a newline or an escape code
            raise InputError(f"{at}: its name holds control characters (shown escaped); name arrays in plain text")
        if info.flag_bits & 0x41:  # bit 0: encrypted; bit 6: strongly encrypted
            raise InputError(f"{at}: is encrypted; write the arrays again with np.savez, which never encrypts")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise InputError(f"{at}: compressed by zip method {info.compress_type}; np.savez stores or deflates")
        if name in members:
            raise InputError(f"{at}: appears twice; keep the one you mean")
        if total > budget:
            raise InputError(f"{at}: takes the arrays to {total:,} bytes inflated, past {budget:,} ({why}); tensors "
                             "deflate 14× at most, so this is a zip bomb (if not, np.savez it uncompressed)")
        members[name] = info
    return members


def read_member(path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> np.ndarray:
    """One NAME.npy: its header read and checked against the entry's size, then its bytes."""
    at = f"{path}: member {shown(name)}"
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f) if f.peek(6)[:6] == b"\x93NUMPY" else None
            if version not in NPY_HEADERS:
                raise InputError(f"{at}: is not an array in the NPY format 1.0 or 2.0, which np.savez writes")
            shape, fortran, dtype = NPY_HEADERS[version](f)
            check_dtype(path, name, dtype)
            nbytes = math.prod(shape) * dtype.itemsize if min(shape, default=0) >= 0 else -1
            if f.tell() + nbytes != info.file_size:
                raise InputError(f"{at}: its header says {dtype} {list(shape)}, {nbytes:,} bytes, but "
                                 f"{info.file_size - f.tell():,} follow it")
            data, got = np.empty(nbytes, np.uint8), 0
            while got < nbytes and (chunk := f.read(min(CHUNK, nbytes - got))):
                data[got:got + len(chunk)], got = np.frombuffer(chunk, np.uint8), got + len(chunk)
            if got < nbytes:
                raise InputError(f"{at}: ends after {got:,} of its {nbytes:,} bytes")
            f.read(1)  # past the last byte: zipfile checks the CRC-32 there
    except UNREADABLE as e:
        if isinstance(e, InputError):
            raise
        raise InputError(f"{at}: cannot be read ({type(e).__name__}: {shown(e, 100)})") from None
    array = data.view(dtype).reshape(shape, order="F" if fortran else "C")
    return array if dtype.isnative else array.byteswap().view(dtype.newbyteorder("="))  # big-endian: same numbers


def check_dtype(path, name: str, dtype: np.dtype) -> None:
    """Bool, integers and floats up to float64: what a trace or a golden holds, and torch reads."""
    if dtype.hasobject:  # goldens.py keys on these words: a pickled golden is replaced, never loaded
        raise InputError(f"{path}: holds pickled objects; member {shown(name)} has dtype object, never unpickled")
    if dtype.kind not in "biuf" or dtype.itemsize > 8 or dtype.shape:
        raise InputError(f"{path}: member {shown(name)}: dtype {dtype}; expected bool, integers or floats up to "
                         f"float64{DTYPE_HINTS.get(dtype.kind, '')}")
