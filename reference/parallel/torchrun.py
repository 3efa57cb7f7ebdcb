"""`walk`, `trace` and `generate` under `torchrun`: one process per rank, each holding 1/N of the model.

    torchrun --nproc-per-node 2 -m reference trace --checkpoint DIR --prompt "…" --out t.npz

torchrun starts N copies of the command and tells each its RANK and the WORLD_SIZE (and where
to meet: MASTER_ADDR, MASTER_PORT); the CLI sees WORLD_SIZE > 1 and comes here. Each rank
loads only its slice of the weights (`load_rank`), the pass runs split (`split.py`), and
rank 0 prints and writes for all of them: the same output as one process. Which rank a process
is travels as one value, `Ranks`, handed to the command that runs on it.

A group of processes must fail together. A rank that stops with an error while the others
wait in a collective would leave them hanging, so every check that can differ between ranks
(a shard missing on one machine, a file that fails to load) ends in `agree`: each rank
tells the others whether it failed, and then all stop, each with one line naming the culprit,
or all go on. The collectives also have a timeout (LLAMA3_REFERENCE_DIST_TIMEOUT seconds),
so a rank that dies outright is noticed by the others instead of waited for.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from ..errors import InputError, shown
from ..formats import Checkpoint, load_checkpoint
from ..formats.checkpoint import check_tensors, checked_tokenizer
from ..formats.checklist import verify_checklist
from ..formats.hub import resolve_checkpoint
from ..formats.meta import WEIGHTS_GLOB, read_tensors
from ..formats.params import load_params
from ..formats.shards import check_shard_count, check_shardable, shard_files, split_dim
from . import split

SPLIT_COMMANDS = ("walk", "trace", "generate")
TIMEOUT_S = 300.0  # long enough for ranks to hash their shards at once, short enough that a hang is noticed


@dataclass(frozen=True)
class Ranks:
    """This process's place in the group torchrun started: its rank, how many there are, its device."""

    rank: int
    world: int
    device: torch.device


def launched() -> bool:
    """True in a process that torchrun started as one of several ranks."""
    return os.environ.get("WORLD_SIZE", "1").strip() not in ("", "1")


def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    if not value.isdigit():
        raise InputError(f"environment variable {name}={value!r}: torchrun sets it to a non-negative integer")
    return int(value)


def run(options, command) -> None:
    """Join the group torchrun started, run `command(options, ranks)` on this rank, leave the group."""
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    if options.command not in SPLIT_COMMANDS:
        raise InputError(f"{options.command} runs as one process, but torchrun started {world} (WORLD_SIZE={world}); "
                         f"run it with `python -m reference {options.command}`, or use one of {', '.join(SPLIT_COMMANDS)}")
    if rank >= world:
        raise InputError(f"RANK={rank} is not below WORLD_SIZE={world}")
    device = _rank_device(options.device)
    seconds = _timeout()
    try:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world,
                                timeout=timedelta(seconds=seconds), device_id=device if device.type == "cuda" else None)
    except (RuntimeError, ValueError) as e:  # no MASTER_ADDR, or the rendezvous timed out
        raise InputError(f"rank {rank} of {world} could not join the others: {str(e).splitlines()[0]}") from None
    ranks = Ranks(rank, world, device)  # the command loads this rank's slice (`load_rank`)
    try:
        # Rank 0 speaks for every rank. The others are silent while the command runs; their
        # errors still reach stderr, printed by cli.main after the command has stopped.
        with open(os.devnull, "w") as silent, contextlib.redirect_stdout(sys.stdout if rank == 0 else silent), \
                contextlib.redirect_stderr(sys.stderr if rank == 0 else silent):
            command(options, ranks)
    except (RuntimeError, dist.DistError) as e:
        if not lost_touch(e):
            raise
        raise InputError(f"rank {rank} of {world}: lost the other ranks ({shown(str(e).splitlines()[0], 160)}); one "
                         "of them stopped (its own message says why) or was slower than LLAMA3_REFERENCE_DIST_TIMEOUT "
                         f"({seconds:g} s)") from None
    finally:
        dist.destroy_process_group()


def _timeout() -> float:
    text = os.environ.get("LLAMA3_REFERENCE_DIST_TIMEOUT", str(TIMEOUT_S))
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 1e7:
        raise InputError(f"LLAMA3_REFERENCE_DIST_TIMEOUT={text!r}: expected a number of seconds, e.g. {TIMEOUT_S:g}")
    return seconds


def lost_touch(e: BaseException) -> bool:
    """Whether `e` is a collective failing because another rank is gone or too slow."""
    text = str(e)
    return isinstance(e, dist.DistError) or any(s in text for s in ("gloo", "NCCL", "Connection", "Timed out"))


def _rank_device(name: str) -> torch.device:
    if name == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available on this machine")
        device = torch.device("cuda", _env_int("LOCAL_RANK"))  # one GPU per rank on each machine
        torch.cuda.set_device(device)
        return device
    if name != "cpu":
        raise InputError(f"--device {name}: tensor parallelism runs on cpu (gloo) or cuda (nccl)")
    return torch.device("cpu")


def agree(error: str | None) -> None:
    """Every rank says whether it failed; if any did, every rank stops, each with one line."""
    rank, world = dist.get_rank(), dist.get_world_size()
    errors: list[str | None] = [None] * world
    dist.all_gather_object(errors, error)
    if error is not None:
        raise InputError(f"rank {rank} of {world}: {error}")
    for other, problem in enumerate(errors):
        if problem is not None:
            raise InputError(f"rank {rank} of {world} stops because rank {other} failed: {problem}")


def load_rank(checkpoint: str, ranks: Ranks) -> tuple[torch.device, Checkpoint]:
    """This rank's device and checkpoint, its weights only this rank's slices (`RankWeights`).

    Rank 0 resolves the checkpoint first (it may build a built-in one, which the others then
    find made); then every rank loads its own part at once (reading and, with a checklist.chk,
    hashing only its own shards), and the ranks agree that all of them did.
    """
    rank, world, device = ranks.rank, ranks.world, ranks.device
    progress = rank == 0 and sys.stderr.isatty()
    error = ckpt = None
    if rank == 0:  # the others wait in `agree` meanwhile
        try:
            resolve_checkpoint(checkpoint)
        except InputError as e:
            error = str(e)
    agree(error)
    try:
        ckpt = _load_slices(resolve_checkpoint(checkpoint), rank, world, progress)
    except InputError as e:
        error = str(e)
    agree(error)
    return device, ckpt


def _load_slices(path: Path, rank: int, world: int, progress: bool) -> Checkpoint:
    if path.is_dir() and (path / "params.json").exists() and len(list(path.glob(WEIGHTS_GLOB))) > 1:
        return _load_meta_shards(path, rank, world, progress)
    # One file (Meta's 8B, a Hugging Face safetensors set, a .gguf): memory-mapped as a whole,
    # and each rank touches only the bytes of its slices.
    ckpt = load_checkpoint(path, progress)
    check_shardable(ckpt.args, world, called="WORLD_SIZE")
    part, parts = split.rank_files(1, rank, world)[1:]
    return Checkpoint(ckpt.path, ckpt.args, split.RankWeights([ckpt.weights], part, parts), ckpt.tokenizer)


def _load_meta_shards(path: Path, rank: int, world: int, progress: bool) -> Checkpoint:
    """Meta's model-parallel files: rank r maps only the consolidated.NN.pth it owns.

    Each file is checked on its own as one N-th of the model (the names, and the shapes times
    N along their split dims), so a rank never needs to open another rank's file.
    """
    args = load_params(path / "params.json")
    check_shardable(args, world, called="WORLD_SIZE")
    tokenizer = checked_tokenizer(path, args, path / "params.json")
    files = shard_files(path, sorted(path.glob(WEIGHTS_GLOB)))
    if len(files) % world and world % len(files):
        raise InputError(f"{path}: has {len(files)} model-parallel shards and WORLD_SIZE is {world}; one must divide "
                         "the other, so that each rank reads whole shards or an equal slice of one")
    mine, part, parts = split.rank_files(len(files), rank, world)
    verify_checklist(path, progress, only={f.name for f in files[mine]} | {"params.json", "tokenizer.model"})
    shards = []
    for file in files[mine]:
        tensors = read_tensors(file)
        check_shard_count(files, tensors, args)
        check_tensors(file, _as_whole(file, tensors, len(files)), args, progress)
        shards.append(tensors)
    return Checkpoint(path, args, split.RankWeights(shards, part, parts), tokenizer)


def _as_whole(file: Path, tensors: dict[str, torch.Tensor], n_files: int) -> dict[str, torch.Tensor]:
    """The shapes the whole model would have if every file is one n_files-th of it ("meta": no data)."""
    whole = {}
    for name, t in tensors.items():
        try:
            dim = split_dim(name)
        except KeyError:
            raise InputError(f"{file}: unexpected tensor {name}") from None
        shape = list(t.shape)
        if dim is not None:
            shape[dim] *= n_files
        whole[name] = torch.empty(shape, dtype=t.dtype, device="meta")
    return whole


def split_options(ranks: Ranks | None, args) -> dict:
    """What `run_trace` and `generate` take to run split: the split pass, and for the KV cache
    this rank's K/N kv heads. Nothing for one process (`ranks` None)."""
    if ranks is None:
        return {}
    return {"forward": split.forward, "kv_heads": args.n_kv_heads // ranks.world}
