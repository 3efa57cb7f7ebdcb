"""Meta's checkpoint format: a directory of params.json, consolidated.*.pth and tokenizer.model.

    params.json           the hyper-parameters (config.py reads them into ModelArgs)
    consolidated.00.pth   torch.save of a flat dict, tensor name -> bf16 tensor
    tokenizer.model       the BPE ranks (tokenizer.py reads them)

Llama 3 70B comes as eight model-parallel shards, consolidated.00.pth … 07.pth, each holding
a slice of every weight (`shards.ShardedWeights` reads them as one). (`synthesize.py` makes a
random checkpoint in this format, `hub.py` fetches a real one.)

Loading never unpickles arbitrary objects (`weights_only=True`) and never copies the weights
into RAM (`mmap=True`: a tensor's bytes are read from disk when the forward pass touches
them). Every problem is found before any compute and reported as one line naming the file
and the tensor.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from ..config import load_params
from ..errors import InputError
from ..files import read_head
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
    if len(files) == 1:
        weights = _tensors(files[0])
        check_shard_count(files, weights, args)
        check_tensors(files[0], weights, args, progress)
    else:
        files = shard_files(path, files)
        weights = ShardedWeights(path, files, [_tensors(f) for f in files], args)
        check_tensors(weights.label, weights.meta, args, progress)
    return Checkpoint(path, args, weights, tokenizer)


def _tensors(file: Path) -> dict[str, torch.Tensor]:
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
        first = str(e).strip().split(". ")[0].splitlines()[0]
        raise InputError(f"{file}: truncated or corrupt ({type(e).__name__}: {first}); download it again") from None
    if not isinstance(obj, dict):
        raise InputError(f"{file}: holds a {type(obj).__name__}, expected a dict of tensor name -> tensor")
    for name, tensor in obj.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise InputError(f"{file}: entry {name!r} is a {type(tensor).__name__}, expected a tensor named by a string")
    return obj
