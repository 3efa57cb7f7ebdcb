"""Model-parallel shards (Llama 3 70B: consolidated.00.pth … consolidated.07.pth).

Meta's 70B was trained and saved on 8 model-parallel ranks; each rank's file holds a slice of
every weight. Here they are checked and read back as one checkpoint, and split again the
same way when `synthesize(n_shards=N)` writes a sharded one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ..config import ModelArgs
from ..errors import InputError, is_int


# How Meta's model (llama_models/llama3/model.py, built on fairscale) splits each weight over
# the model-parallel ranks, each of which saved its own consolidated.NN.pth:
#   ColumnParallelLinear  wq wk wv w1 w3 output  splits its outputs: dim 0 of the [out, in] weight
#   RowParallelLinear     wo w2                   splits its inputs:  dim 1
#   VocabParallelEmbedding tok_embeddings         splits the vocabulary: dim 0 (Llama 2 split dim 1)
#   RMSNorm               attention_norm ffn_norm norm   is whole, the same, in every shard
SPLIT_DIM: dict[str, int | None] = {
    "wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "output": 0, "tok_embeddings": 0,
    "wo": 1, "w2": 1,
    "attention_norm": None, "ffn_norm": None, "norm": None,
}


def split_dim(name: str) -> int | None:
    """The dim Meta's model parallelism splits `name` along; None for a replicated tensor.

    "layers.3.attention.wq.weight" -> 0, "layers.3.feed_forward.w2.weight" -> 1, "norm.weight" -> None.
    """
    kind = name.split(".")[-2] if "." in name else name
    if kind not in SPLIT_DIM:
        raise KeyError(name)
    return SPLIT_DIM[kind]


def shard_files(path: Path, files: list[Path]) -> list[Path]:
    """The shard files in rank order, after checking they are exactly consolidated.00 … NN."""
    ranks = {}
    for f in files:
        found = re.fullmatch(r"consolidated\.(\d+)\.pth", f.name)
        if found is None:
            raise InputError(f"{f}: not a model-parallel shard name (expected consolidated.NN.pth, NN = 00, 01, …)")
        rank = int(found.group(1))
        if rank in ranks:
            raise InputError(f"{f}: is shard {rank} again, like {ranks[rank].name}; keep one of them")
        ranks[rank] = f
    # The first gap is at most len(ranks): a stray consolidated.99999999999.pth must not make
    # us list 1e11 names to find it.
    gap = next(i for i in range(len(ranks) + 1) if i not in ranks)
    if gap < len(ranks):
        have = ", ".join(f"{i:02d}" for i in sorted(ranks)[:12]) + (", …" if len(ranks) > 12 else "")
        raise InputError(f"{path}: model-parallel shard consolidated.{gap:02d}.pth is missing (found "
                         f"consolidated.{{{have}}}.pth); download the checkpoint again")
    return [ranks[i] for i in range(len(ranks))]


def check_shard_count(files: list[Path], first: Mapping[str, torch.Tensor], args: ModelArgs) -> None:
    """Say how many shards there should be when some are missing off the end (00 … 02 of 08).

    Every shard holds vocab_size / n_shards rows of tok_embeddings and n_heads / n_shards heads
    of wq, so the first one tells; when the two disagree, params.json is wrong instead.
    """
    name, wq = "tok_embeddings.weight", "layers.0.attention.wq.weight"
    if name not in first or wq not in first or first[name].ndim != 2 or first[wq].ndim != 2 or first[name].shape[0] == 0:
        return
    per_shard, rows = first[name].shape[0], args.vocab_size
    n = rows // per_shard
    if rows % per_shard == 0 and n != len(files) and first[wq].shape[0] * n == args.n_heads * args.head_dim:
        have = "only this one is here" if len(files) == 1 else f"{len(files)} are here ({files[0].name} … {files[-1].name})"
        should = "is one whole file" if n == 1 else f"has {n} model-parallel shards"
        raise InputError(f"{files[0]}: holds {per_shard} of the {rows} rows of {name} (vocab_size={rows}), "
                         f"so the checkpoint {should}, but {have}")


class ShardedWeights(Mapping):
    """Meta's model-parallel shards, read as one checkpoint without ever merging it whole.

    Every shard is memory-mapped; `weights[name]` concatenates that one tensor's slices along
    its split dim (see SPLIT_DIM) when asked for, so the forward pass holds one full weight at a
    time and peak memory stays near that of a single-file checkpoint. The checks (same names,
    dtypes and shapes in every shard; replicated norms equal) run once, here, on loading.
    """

    def __init__(self, path: Path, files: list[Path], shards: list[dict[str, torch.Tensor]], args: ModelArgs):
        """`shards[i]` is what `files[i]` holds (name -> memory-mapped tensor), in rank order."""
        self.label = path / f"consolidated.{{00..{len(files) - 1:02d}}}.pth"  # for messages: the shards as one
        self.shards = shards
        first, n = self.shards[0], len(files)
        for f, shard in zip(files[1:], self.shards[1:]):
            for name in first:
                if name not in shard:
                    raise InputError(f"{f}: missing tensor {name}, which {files[0].name} has; the shards do not match")
            for name in shard:
                if name not in first:
                    raise InputError(f"{f}: has tensor {name}, which {files[0].name} lacks; the shards do not match")
        self.meta = {}  # name -> a tensor on the "meta" device: the merged shape and dtype, no data
        for name, t in first.items():
            try:
                dim = split_dim(name)
            except KeyError:
                raise InputError(f"{files[0]}: unexpected tensor {name} (params.json has n_layers={args.n_layers})") from None
            for f, shard in zip(files[1:], self.shards[1:]):
                other = shard[name]
                if other.shape != t.shape or other.dtype != t.dtype:
                    raise InputError(f"{f}: {name} is {other.dtype} {list(other.shape)}, but {t.dtype} {list(t.shape)} "
                                     f"in {files[0].name}; every shard holds an equal slice")
                if dim is None and not torch.equal(other, t):
                    raise InputError(f"{f}: {name} differs from its copy in {files[0].name}; a replicated tensor "
                                     "(an RMSNorm weight) must be the same in every shard")
            shape = list(t.shape)
            if dim is not None:
                shape[dim] *= n
            self.meta[name] = torch.empty(shape, dtype=t.dtype, device="meta")
        check_shard_count(files, self.shards[0], args)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.meta:
            raise KeyError(name)
        dim = split_dim(name)
        if dim is None:
            return self.shards[0][name]
        return torch.cat([shard[name] for shard in self.shards], dim=dim)

    def __iter__(self):
        return iter(self.meta)

    def __len__(self) -> int:
        return len(self.meta)

    def __contains__(self, name) -> bool:
        return name in self.meta



def shard_slice(name: str, tensor: torch.Tensor, rank: int, n_shards: int) -> torch.Tensor:
    """Rank `rank`'s part of a full tensor, as Meta's model-parallel code holds it.

    wq [4096, 4096] over 8 shards: rank 1 holds rows 512 … 1023; a norm is whole in every shard.
    """
    dim = split_dim(name)
    if dim is None:
        return tensor
    # clone: a view would make torch.save write the whole tensor's storage into every shard
    return tensor.chunk(n_shards, dim=dim)[rank].clone()


def check_shardable(args: ModelArgs, n_shards: int, called: str = "n_shards") -> None:
    """Meta's code gives every rank whole heads and equal slices: n_shards (or the world size of
    a tensor-parallel run, `called` WORLD_SIZE) must divide them all."""
    if not is_int(n_shards) or n_shards < 1:
        raise InputError(f"{called} must be a positive integer, got {n_shards!r}")
    for what, size in (("n_heads", args.n_heads), ("n_kv_heads", args.n_kv_heads),
                       ("the SwiGLU hidden size", args.hidden_dim), ("vocab_size", args.vocab_size)):
        if size % n_shards:
            raise InputError(f"{called} {n_shards} does not divide {what} {size}; Meta's model-parallel "
                             "code gives every rank an equal share")
