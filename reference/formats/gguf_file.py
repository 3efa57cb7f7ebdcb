"""A GGUF file's header, read field by field: the metadata and the table of tensors.

The layout (llama.cpp's docs/gguf.md; everything little-endian):

    b"GGUF"  version: u32  n_tensors: u64  n_kv: u64
    n_kv times:       key: string  type: u32  value            (string = u64 length + UTF-8 bytes)
    n_tensors times:  name: string  n_dims: u32  ne: u64 × n_dims  type: u32  offset: u64
    padding to `general.alignment` (32 unless the metadata says otherwise), then the tensors' bytes

Why not `gguf.GGUFReader`: it makes one NumPy view per field part, and a vocabulary is a
hundred thousand strings, so a Llama 3 header takes ~10 s to open (SmolLM2's ~5 s). Reading
the few kinds of value directly takes a fraction of a second; tests/test_gguf.py checks that
this reads exactly what `GGUFReader` reads. The tensors' bytes stay in the file: each is a
copy-on-write memory map, and `gguf.quants` (llama.cpp's own) expands the quantized ones.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, shown

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# GGUF's value types: the struct code of each scalar; 8 is a string, 9 an array of values.
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
STRING, ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    name: str
    ne: tuple[int, ...]  # GGUF's order: the contiguous axis first
    type: int  # a ggml type: 0 F32, 1 F16, 8 Q8_0, 12 Q4_K, 30 BF16, … (gguf.GGMLQuantizationType)
    offset: int  # from the start of the file
    nbytes: int

    @property
    def shape(self) -> tuple[int, ...]:
        """Torch's order: rows first."""
        return tuple(reversed(self.ne))


@dataclass(frozen=True)
class Header:
    version: int
    metadata: dict  # key -> str, int, float, bool, or a list of them
    tensors: list[TensorInfo]
    data_offset: int  # where the tensors' bytes begin: everything before is the header


class _Cursor:
    """Reads GGUF's values from a byte buffer, front to back."""

    def __init__(self, buf: memoryview):
        self.buf, self.pos = buf, 0

    def scalar(self, code: str):
        size = struct.calcsize(code)
        if self.pos + size > len(self.buf):
            raise struct.error(f"a value at byte {self.pos:,} runs past the end of the file")
        (value,) = struct.unpack_from("<" + code, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.scalar("Q")
        if self.pos + n > len(self.buf):
            raise struct.error(f"a {n:,}-byte string runs past the end of the file")
        text = bytes(self.buf[self.pos:self.pos + n]).decode("utf-8", errors="surrogateescape")
        self.pos += n
        return text

    def value(self, kind: int):
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            item, n = self.scalar("I"), self.scalar("Q")
            if item in SCALARS:  # a block of numbers: read at once (a vocabulary's scores, token types)
                size = struct.calcsize(SCALARS[item])
                if self.pos + n * size > len(self.buf):
                    raise struct.error(f"an array of {n:,} values runs past the end of the file")
                values = np.frombuffer(self.buf, dtype="<" + SCALARS[item], count=n, offset=self.pos)
                self.pos += n * size
                return [_plain(v) for v in values.tolist()] if item == 6 else values.tolist()
            return [self.value(item) for _ in range(n)]
        if kind not in SCALARS:
            raise struct.error(f"unknown value type {kind}")
        value = self.scalar(SCALARS[kind])
        return _plain(value) if kind == 6 else value


def _plain(value: float) -> float:
    """A float32 as the decimal it was written from: 1e-05, not 9.999999747378752e-06."""
    return float(str(np.float32(value)))


def read_header(path: Path) -> Header:
    """The metadata and tensor table of a GGUF file; one line naming the file if it is cut off."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    size = path.stat().st_size
    with open(path, "rb") as f:
        mapped = np.memmap(f, mode="r") if size else np.zeros(0, np.uint8)
    buf = memoryview(mapped)
    if bytes(buf[:4]) != MAGIC:
        raise InputError(f"{path}: not a GGUF file (those start with b'GGUF')")
    r = _Cursor(buf)
    r.pos = 4
    try:
        version = r.scalar("I")
        if version & 0xFFFF == 0:
            raise InputError(f"{path}: a big-endian GGUF file, which is not read; convert it on a little-endian machine")
        if version not in (2, 3):
            raise InputError(f"{path}: GGUF version {version}, which is not read (versions 2 and 3 are)")
        n_tensors, n_kv = r.scalar("Q"), r.scalar("Q")
        for what, n, least in (("tensors", n_tensors, 24), ("metadata keys", n_kv, 13)):  # the smallest entry's bytes
            if n * least > size:
                raise InputError(f"{path}: the header claims {n:,} {what}, more than a {size:,}-byte file can hold; "
                                 f"truncated or corrupt GGUF file")
        metadata = {}
        for _ in range(n_kv):
            key = r.string()
            metadata[key] = r.value(r.scalar("I"))
        table = []
        for _ in range(n_tensors):
            name = r.string()
            ne = tuple(r.scalar("Q") for _ in range(r.scalar("I")))
            table.append((name, ne, r.scalar("I"), r.scalar("Q")))
    except struct.error as e:
        raise InputError(f"{path}: truncated or corrupt GGUF file ({e}); download it again") from None
    align = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    data_offset = -(-r.pos // align) * align
    tensors = []
    for name, ne, kind, offset in table:
        try:
            block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
        except (ValueError, KeyError):
            raise InputError(f"{path}: tensor {shown(name)} has ggml type {kind}, which gguf {_version()} does not know") from None
        count = int(np.prod(ne, dtype=np.int64))
        if not ne or ne[0] % block:
            raise InputError(f"{path}: tensor {shown(name)} has shape {list(ne)}, not whole blocks of {block}")
        info = TensorInfo(name, ne, kind, data_offset + offset, count // block * block_bytes)
        if info.offset + info.nbytes > size:
            raise InputError(f"{path}: truncated or corrupt GGUF file: tensor {shown(name)} needs bytes {info.offset:,}–"
                             f"{info.offset + info.nbytes:,}, the file has {size:,}; download it again")
        tensors.append(info)
    return Header(version, metadata, tensors, data_offset)


def tensor_bytes(path: Path, info: TensorInfo) -> np.ndarray:
    """A tensor's bytes as [rows, bytes per row] uint8, a copy-on-write map of the file (never written)."""
    rows = int(np.prod(info.ne[1:], dtype=np.int64))
    return np.memmap(path, dtype=np.uint8, mode="c", offset=info.offset, shape=(rows, info.nbytes // max(rows, 1)))


def type_name(info: TensorInfo) -> str:
    from gguf.constants import GGMLQuantizationType

    return GGMLQuantizationType(info.type).name


def _version() -> str:
    from importlib.metadata import version

    return version("gguf")
