"""A GGUF file's header, read field by field and checked: the metadata and the table of tensors.

The layout (llama.cpp's docs/gguf.md; everything little-endian):

    b"GGUF"  version: u32  n_tensors: u64  n_kv: u64
    n_kv times:       key: string  type: u32  value            (string = u64 length + UTF-8 bytes)
    n_tensors times:  name: string  n_dims: u32  ne: u64 × n_dims  type: u32  offset: u64
    padding to `general.alignment` (32 unless the metadata says otherwise), then the tensors' bytes

Why not `gguf.GGUFReader`: it makes one NumPy view per field part, and a vocabulary is a
hundred thousand strings, so a Llama 3 header takes ~10 s to open (SmolLM2's ~5 s). Reading
the few kinds of value directly takes a fraction of a second; tests/test_gguf.py checks that
this reads exactly what `GGUFReader` reads. The tensors' bytes stay in the file: each is a
copy-on-write memory map (`tensor_bytes`), which `quantized.py` expands where it is used.

This is the one place where a GGUF's bytes become typed values, so all is checked here, each
problem one line naming the file and the key or tensor as the file spells it: what GGUFReader and
llama.cpp refuse (a key or tensor twice, an alignment not a power of two, an array of arrays,
text not UTF-8, a tensor outside the file or on another's bytes), a length or count the bytes
left cannot hold (so nothing huge is allocated), and each key the project reads as the type it
must be (`keys.py`): `formats/gguf/load.py` and `text/vocab_files.py` take the values as they are.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputError, shown
from .keys import ARRAY, SCALARS, STRING, checked_keys

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
GGML_MAX_DIMS = 4  # llama.cpp refuses a tensor of more dimensions

# Keys, tensors and array entries a header may hold in all: Llama 3's holds ~540,000 (128,256 tokens,
# as many token types, 280,147 merges). Each is a Python object read in about a microsecond, so this
# bounds a header at ~3 s and ~300 MB however the file is made.
MAX_VALUES = 1 << 22


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
    metadata: dict  # key -> str, int, float, bool, or a list of them; the keys in keys.KEYS as it says
    tensors: list[TensorInfo]
    data_offset: int  # where the tensors' bytes begin: everything before is the header


# --- reading ---

class _Cursor:
    """Reads GGUF's values from a byte buffer, front to back; `where` names what is being read."""

    def __init__(self, buf: memoryview, path: Path):
        self.buf, self.path, self.pos, self.where, self.values = buf, path, 0, "the header", 0

    def fail(self, problem: str, got: str, should: str):
        raise InputError(f"{self.path}: {self.where}: {problem} (got {got}); {should}")

    def cut(self, what: str):
        self.fail("runs past the end of the file", f"{what} at byte {self.pos:,}, {len(self.buf) - self.pos:,} bytes "
                  "left", "truncated or corrupt GGUF file; download it again")

    def charge(self, n: int, what: str):
        """Count `n` more keys, tensors or array entries against MAX_VALUES, before reading them."""
        self.values += n
        if self.values > MAX_VALUES:
            self.fail("too many values", f"{what}, {self.values:,} keys, tensors and array entries so far",
                      f"a GGUF header should hold at most {MAX_VALUES:,} (Llama 3's: ~540,000)")

    def scalar(self, code: str):
        size = struct.calcsize(code)
        if self.pos + size > len(self.buf):
            self.cut("a value")
        (value,) = struct.unpack_from("<" + code, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.scalar("Q")
        if self.pos + n > len(self.buf):
            self.cut(f"a {n:,}-byte string")
        raw = bytes(self.buf[self.pos:self.pos + n])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            around = shown(repr(raw[max(e.start - 20, 0):e.end + 20]), 80)
            self.fail("not UTF-8", f"{around} at byte {self.pos + e.start:,}",
                      "GGUF strings should be UTF-8; convert the model again")
        self.pos += n
        return text

    def value(self, kind: int):
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            item, n = self.scalar("I"), self.scalar("Q")
            # Arrays nest at most one deep: an array of arrays is legal GGUF, but llama.cpp refuses it
            # ("invalid GGUF type 9"), so no Llama file has one; refused, reading never recurses.
            if item == ARRAY:
                self.fail("an array of arrays", f"items of type 9, array, at byte {self.pos - 12:,}",
                          "GGUF arrays hold numbers or strings (llama.cpp refuses arrays of arrays)")
            if item not in SCALARS and item != STRING:
                self.fail("an unknown array item type", f"type {item}", "GGUF value types are 0 to 12")
            least = struct.calcsize(SCALARS[item]) if item in SCALARS else 8  # a string: at least its u64 length
            if n * least > len(self.buf) - self.pos:  # before anything is allocated for the n values
                self.cut(f"an array of {n:,} values")
            self.charge(n, f"an array of {n:,}")
            if item in SCALARS:  # a block of numbers: read at once (a vocabulary's scores, token types)
                values = np.frombuffer(self.buf, dtype="<" + SCALARS[item], count=n, offset=self.pos)
                self.pos += n * least
                return [_plain(v) for v in values.tolist()] if item == 6 else values.tolist()
            return [self.string() for _ in range(n)]
        if kind not in SCALARS:
            self.fail("an unknown value type", f"type {kind}", "GGUF value types are 0 to 12")
        value = self.scalar(SCALARS[kind])
        return _plain(value) if kind == 6 else value


def _plain(value: float) -> float:
    """A float32 as the decimal it was written from: 1e-05, not 9.999999747378752e-06."""
    return float(str(np.float32(value)))


def is_gguf_file(path: Path) -> bool:
    """A file named .gguf, or any file that starts as a GGUF does: Ollama keeps `llama3:8b` as
    `~/.ollama/models/blobs/sha256-<hex>`, a GGUF named by its digest."""
    if not path.is_file():
        return False
    if path.suffix == ".gguf":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == MAGIC
    except OSError:  # unreadable: the caller's own check says so, in its words
        return False


def read_header(path: Path) -> Header:
    """The metadata and tensor table of a GGUF file, checked; one line naming the file and the key or tensor."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        mapped = np.memmap(f, mode="r") if size else np.zeros(0, np.uint8)
    buf = memoryview(mapped)
    if bytes(buf[:4]) != MAGIC:
        raise InputError(f"{path}: not a GGUF file (those start with b'GGUF')")
    r = _Cursor(buf, path)
    r.pos = 4
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
    r.charge(n_kv + n_tensors, f"{n_kv:,} keys and {n_tensors:,} tensors")
    metadata, kinds = {}, {}
    for i in range(n_kv):
        r.where = f"metadata key {i}"
        key = r.string()
        r.where = shown(key)
        if key in metadata:  # GGUFReader and llama.cpp refuse it: which of the two values is meant?
            r.fail("listed twice", f"a second value at byte {r.pos:,}", "each key should appear once")
        kind = r.scalar("I")  # and an array's item type, for KEYS:
        kinds[key] = (kind, *struct.unpack_from("<I", buf, r.pos)) if kind == ARRAY and r.pos + 4 <= size else (kind,)
        metadata[key] = r.value(kind)
    checked_keys(path, metadata, kinds)
    table, names = [], set()
    for i in range(n_tensors):
        r.where = f"tensor {i}"
        name = r.string()
        r.where = f"tensor {shown(name)}"
        if name in names:  # GGUFReader and llama.cpp refuse it: which of the two is the weight?
            r.fail("listed twice", f"a second entry at byte {r.pos:,}", "each tensor should appear once")
        names.add(name)
        n_dims = r.scalar("I")
        if n_dims > GGML_MAX_DIMS:
            r.fail("too many dimensions", f"{n_dims:,}", f"ggml tensors have at most {GGML_MAX_DIMS}")
        ne = tuple(r.scalar("Q") for _ in range(n_dims))
        table.append((name, ne, r.scalar("I"), r.scalar("Q")))
    align = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    data_offset = -(-r.pos // align) * align
    return Header(version, metadata, _tensors(path, table, data_offset, size), data_offset)


def _tensors(path: Path, table: list, data_offset: int, size: int) -> list[TensorInfo]:
    """The tensor table as TensorInfo: known types, whole blocks, each inside the file and on bytes of its own."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    tensors = []
    for name, ne, kind, offset in table:
        try:
            block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
        except (ValueError, KeyError):
            raise InputError(f"{path}: tensor {shown(name)} has ggml type {kind}, which gguf {_version()} does not know") from None
        if not ne or ne[0] % block:
            raise InputError(f"{path}: tensor {shown(name)} has shape {list(ne)}, not whole blocks of {block}")
        info = TensorInfo(name, ne, kind, data_offset + offset, math.prod(ne) // block * block_bytes)
        if info.offset + info.nbytes > size:
            raise InputError(f"{path}: truncated or corrupt GGUF file: tensor {shown(name)} needs bytes {info.offset:,}–"
                             f"{info.offset + info.nbytes:,}, the file has {size:,}; download it again")
        tensors.append(info)
    placed = sorted((t for t in tensors if t.nbytes), key=lambda t: t.offset)
    for before, after in zip(placed, placed[1:]):
        if after.offset < before.offset + before.nbytes:  # two weights sharing bytes; llama.cpp refuses it too
            raise InputError(f"{path}: tensor {shown(after.name)}: overlaps tensor {shown(before.name)} (got bytes "
                             f"{after.offset:,}–{after.offset + after.nbytes:,} and {before.offset:,}–"
                             f"{before.offset + before.nbytes:,}); each tensor should have bytes of its own")
    return tensors


def tensor_bytes(path: Path, info: TensorInfo) -> np.ndarray:
    """A tensor's bytes as [rows, bytes per row] uint8, a copy-on-write map of the file (never written)."""
    rows = math.prod(info.ne[1:])
    if not info.nbytes:  # numpy cannot map zero bytes
        return np.zeros((rows, 0), np.uint8)
    return np.memmap(path, dtype=np.uint8, mode="c", offset=info.offset, shape=(rows, info.nbytes // rows))


def type_name(info: TensorInfo) -> str:
    from gguf.constants import GGMLQuantizationType

    return GGMLQuantizationType(info.type).name


def _version() -> str:
    from importlib.metadata import version

    return version("gguf")
