"""Meta's checkpoint format: a directory of params.json, consolidated.*.pth and tokenizer.model.

    params.json           the hyper-parameters (config.py reads them into ModelArgs)
    consolidated.00.pth   torch.save of a flat dict, tensor name -> bf16 tensor
    tokenizer.model       the BPE ranks (text/tokenizer.py reads them)

Llama 3 70B comes as eight model-parallel shards, consolidated.00.pth … 07.pth, each holding
a slice of every weight (`shards.ShardedWeights` reads them as one). (`synthesize.py` makes a
random checkpoint in this format, `hub.py` fetches a real one.)

Loading never unpickles arbitrary objects (`weights_only=True`) and never copies the weights
into RAM (`mmap=True`: a tensor's bytes are read from disk when the forward pass touches
them). Every problem is found before any compute and reported as one line naming the file
and the tensor. Memory-mapping trusts the pickle's sizes: a storage claimed larger than its
zip record would read the next record's bytes as weights, so each one is checked against its
record (`_check_layout`); and a `checklist.chk` beside the weights is verified (checklist.py).
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple

import torch

from .params import load_params
from ..errors import InputError, is_int, shown
from ..files import read_head
from .checklist import verify_checklist
from .checkpoint import Checkpoint, check_tensors, checked_tokenizer
from .shards import ShardedWeights, check_shard_count, shard_files

WEIGHTS_GLOB = "consolidated.*.pth"  # 8B and 3.2 1B/3B: one file; 70B: eight model-parallel shards
IGNORED = {"rope.freqs"}  # Llama 2 checkpoints stored the RoPE table; we recompute it


def load_meta_checkpoint(path: Path, progress: bool = False) -> Checkpoint:
    """A directory with params.json: one weights file, or model-parallel shards read as one."""
    args = load_params(path / "params.json")
    tokenizer = checked_tokenizer(path, args, path / "params.json")
    files = sorted(path.glob(WEIGHTS_GLOB))
    if not files:
        raise InputError(f"{path}: no {WEIGHTS_GLOB} weights file")
    if len(files) > 1:
        files = shard_files(path, files)  # a missing or doubled shard is named before any hashing
    verify_checklist(path, progress)
    if len(files) == 1:
        weights = read_tensors(files[0])
        check_shard_count(files, weights, args)
        check_tensors(files[0], weights, args, progress)
    else:
        weights = ShardedWeights(path, files, [read_tensors(f) for f in files], args)
        check_tensors(weights.label, weights.meta, args, progress)
    return Checkpoint(path, args, weights, tokenizer)


def read_tensors(file: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in _read_weights(file).items() if k not in IGNORED}


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    """torch.load one weights file, memory-mapped; only tensors, never code."""
    head = read_head(file)
    if not head.startswith(b"PK\x03\x04"):  # torch.save writes a zip archive
        what = "is empty" if not head else f"starts with {head[:8]!r}"
        raise InputError(f"{file}: not a torch.save checkpoint (a zip archive): it {what}")
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as e:
        # weights_only met a global other than tensors and containers: calling it could run code.
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f"calls {found.group(1)}" if found else "holds more than tensors"
        raise InputError(f"{file}: refused: its pickle {what}, which would run code on loading; "
                         "a Meta checkpoint holds only tensors") from None
    except Exception as e:  # noqa: BLE001 - zip, pickle and storage errors all mean a broken file
        _check_layout(file)  # a tensor reaching past its storage fails in torch without its name
        first = str(e).strip().split(". ")[0].splitlines()[0]
        raise InputError(f"{file}: truncated or corrupt ({type(e).__name__}: {first}); download it again") from None
    if not isinstance(obj, dict):
        raise InputError(f"{file}: holds a {type(obj).__name__}, expected a dict of tensor name -> tensor")
    for name, tensor in obj.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise InputError(f"{file}: entry {name!r} is a {type(tensor).__name__}, expected a tensor named by a string")
        if tensor.is_meta or tensor.layout != torch.strided:  # would load, then fail or mislead in the pass
            kind = "a meta tensor: a shape without data" if tensor.is_meta else f"a {tensor.layout} tensor"
            raise InputError(f"{file}: {shown(name)} is {kind}; a checkpoint holds dense tensors with their values")
    _check_layout(file)
    return obj


# --- where each tensor's bytes lie, read from the pickle without running it ---
#
# torch.save writes a zip: <prefix>/data.pkl pickles the dict, and each tensor in it as a call
#   torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)
# whose storage is a persistent id ('storage', torch.BFloat16Storage, key, 'cpu', numel): the
# bytes are the record <prefix>/data/<key>. torch.load without mmap refuses a record whose size
# is not numel × element size; with mmap it takes numel × element size bytes from wherever the
# record starts, so a claim larger than the record reads the records after it.

class _Storage(NamedTuple):
    key: str
    kind: str  # the storage class's name, "torch.BFloat16Storage"
    numel: int


class _Call:
    """What a global of data.pkl becomes here: called, it records its arguments and runs nothing."""

    def __init__(self, name: str, args: tuple = ()):
        self.name, self.args = name, args

    def __call__(self, *args):
        return _Call(self.name, args)

    def __setitem__(self, key, value):  # an OrderedDict() of backward hooks, filled in
        pass

    def __setstate__(self, state):
        pass


class _Layout(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> _Call:
        return _Call(f"{module}.{name}")  # never imported: torch.load has refused all but tensors

    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Call):
            return _Storage(str(pid[2]), pid[1].name, pid[4])
        return None


def _check_layout(file: Path) -> None:
    """Every tensor inside its storage and every storage exactly the size of its zip record;
    any other surprise is left to torch.load, which reports it."""
    try:
        with zipfile.ZipFile(file) as archive:
            infos, end = archive.infolist(), archive.start_dir
            records = {info.filename: info.file_size for info in infos}
            pkl = next(name for name in records if name.endswith("/data.pkl") and name.count("/") == 1)
            with archive.open(pkl) as f:
                obj = _Layout(f).load()
    except Exception:  # noqa: BLE001 - not readable this way: torch.load said what it thinks
        return
    _check_records_apart(file, infos, end)
    prefix = pkl[: -len("data.pkl")]
    for name, call in (obj.items() if isinstance(obj, dict) else ()):
        while isinstance(call, _Call) and call.name.endswith("._rebuild_parameter") and call.args:
            call = call.args[0]
        if not (isinstance(call, _Call) and call.name.endswith("._rebuild_tensor_v2") and len(call.args) >= 4):
            continue
        storage, offset, size, stride = call.args[:4]
        if isinstance(storage, _Storage):
            _check_storage(file, name, storage, prefix + "data/" + storage.key, records)
            _check_extent(file, name, storage, offset, size, stride)


def _check_records_apart(file: Path, infos: list[zipfile.ZipInfo], end: int) -> None:
    """No record's bytes run into the next record: a size in the zip's directory is a claim too."""
    infos = sorted(infos, key=lambda info: info.header_offset)
    for info, after in zip(infos, [*infos[1:], None]):
        limit = end if after is None else after.header_offset
        # its bytes start after a 30-byte local header and its name (and an extra field, not counted)
        start = info.header_offset + 30 + len(info.filename.encode("utf-8"))
        if start + info.compress_size > limit:
            where = "the zip's directory" if after is None else f"the record {shown(after.filename)}"
            raise InputError(f"{file}: the zip record {shown(info.filename)} claims {info.compress_size:,} bytes, "
                             f"which run into {where}; the file is corrupt: download it again")


def _check_storage(file: Path, name, storage: _Storage, record: str, records: dict[str, int]) -> None:
    itemsize = _itemsize(storage.kind)
    if itemsize is None or not isinstance(storage.numel, int):
        return
    if record not in records:
        raise InputError(f"{file}: tensor {shown(name)}'s storage {shown(record)} is not in the archive; "
                         "the file is corrupt: download it again")
    claimed, held = storage.numel * itemsize, records[record]
    if claimed != held:
        raise InputError(f"{file}: tensor {shown(name)}'s storage {shown(record)} is claimed as {storage.numel:,} "
                         f"elements of {itemsize} bytes ({claimed:,} bytes) but its record holds {held:,} bytes; "
                         "the file is corrupt: download it again")


def _check_extent(file: Path, name, storage: _Storage, offset, size, stride) -> None:
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
            and all(is_int(n) and n >= 0 for n in (offset, *size, *stride))):
        raise InputError(f"{file}: tensor {shown(name)} has shape {size!r}, stride {stride!r}, offset {offset!r}: "
                         "not a tensor's layout; the file is corrupt: download it again")
    # the elements it needs: offset + Σ (size_i - 1) · stride_i; an empty tensor needs none
    end = 0 if 0 in size else offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if end > storage.numel:
        raise InputError(f"{file}: tensor {shown(name)} (shape {list(size)}, stride {list(stride)}, offset "
                         f"{offset:,}) needs {end:,} elements of its storage, which holds {storage.numel:,}; "
                         "the file is corrupt: download it again")


def _itemsize(kind: str) -> int | None:
    """Bytes per element of a storage class named in the pickle: "torch.BFloat16Storage" -> 2."""
    if kind == "torch.UntypedStorage":
        return 1
    cls = getattr(torch, kind.removeprefix("torch."), None) if re.fullmatch(r"torch\.\w+Storage", kind) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "TypedStorage is deprecated": only its dtype is read
        dtype = getattr(cls, "dtype", None)
    return dtype.itemsize if isinstance(dtype, torch.dtype) else None
