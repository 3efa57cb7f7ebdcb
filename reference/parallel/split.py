"""Tensor parallelism: the same forward pass split over N processes, as Meta runs the 70B and 405B.

Llama 3 70B ships as eight consolidated.NN.pth files because Meta's model code (fairscale's
model-parallel layers) runs on eight ranks, each holding a slice of every matrix. Here each
rank is one process under `torchrun`, holding 1/N of every weight, and the ranks exchange
activations through torch.distributed (gloo on CPU, nccl on CUDA). Which matrix is split along
which axis is `formats.shards.SPLIT_DIM`, the rule the checkpoint files were cut by:

    column-parallel  wq wk wv   rank r owns query heads r·H/N … and kv heads r·K/N …: attention
                                needs no exchange at all, each head only reads its own q, k, v
                     w1 w3      rank r owns F/N hidden units: silu(w1·x) ⊙ w3·x is per unit
    row-parallel     wo w2      their inputs are exactly those heads and units, so each rank
                                makes a partial [T, D] sum; an all-reduce adds the N partials
    vocab-parallel   tok_embeddings   rank r owns V/N rows: it looks up the tokens it has
                                and leaves zeros for the rest; an all-reduce fills them in
                     output     rank r scores its V/N tokens; an all-gather joins the logits
    replicated       the RMSNorm weights: every rank normalises the whole residual stream

So a layer costs two all-reduces of [T, D], and everything else stays on the rank.
The single-process pass (`model.py`, `batched.py`) is unchanged: this file hands
`model.forward` split versions of its embed, attention, feed-forward and output steps.
`tests/test_parallel.py` proves the trace equal to a single process's; `torchrun.py` runs
the commands on ranks.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch
import torch.distributed as dist

from .. import batched, model
from ..config import ModelArgs
from ..formats.shards import split_dim
from ..model import Trace, Weights


class RankWeights(Mapping):
    """One rank's slice of every weight, from the shard files (or the one file) it was given.

    `shards` are the files this rank reads, in rank order; the rank's slice of a split tensor
    is part `part` of `parts` equal chunks of their concatenation. With as many ranks as shard
    files, that is one file, whole (parts = 1); with fewer ranks, several files joined; with
    more, a slice of one. A slice of a memory-mapped tensor is a view: only its bytes are read.
    """

    def __init__(self, shards: list[Mapping[str, torch.Tensor]], part: int = 0, parts: int = 1):
        self.shards, self.part, self.parts = shards, part, parts
        self.meta = {}  # name -> a "meta" tensor: this rank's shape and dtype, no data
        for name, t in getattr(shards[0], "meta", shards[0]).items():
            shape, dim = list(t.shape), split_dim(name)
            if dim is not None:
                shape[dim] = shape[dim] * len(shards) // parts
            self.meta[name] = torch.empty(shape, dtype=t.dtype, device="meta")

    def __getitem__(self, name: str) -> torch.Tensor:
        dim = split_dim(name)
        if dim is None:
            return self.shards[0][name]  # replicated: every file holds it whole
        whole = self.shards[0][name] if len(self.shards) == 1 else torch.cat([s[name] for s in self.shards], dim)
        return whole.chunk(self.parts, dim=dim)[self.part]

    def __iter__(self):
        return iter(self.meta)

    def __len__(self) -> int:
        return len(self.meta)

    def __contains__(self, name) -> bool:
        return name in self.meta


def rank_shape(name: str, shape, world: int) -> tuple[int, ...]:
    """The shape of one rank's share of weight `name`: 1/world along its split dim, or whole.

    Llama 3 70B on 8 ranks: wq [8192, 8192] -> [1024, 8192], wo -> [8192, 1024], a norm [8192] whole.
    """
    shape, dim = list(shape), split_dim(name)
    if dim is not None:
        shape[dim] //= world
    return tuple(shape)


def rank_files(n_files: int, rank: int, world: int) -> tuple[slice, int, int]:
    """Which shard files rank `rank` of `world` reads, and which part of them it owns.

    8 files, 8 ranks: rank 3 reads file 3, all of it. 8 files, 2 ranks: rank 1 reads files
    4 … 7. 1 file, 2 ranks: rank 1 reads the second half of every split tensor of file 0.
    The caller has checked that one count divides the other.
    """
    if n_files >= world:
        per = n_files // world
        return slice(rank * per, (rank + 1) * per), 0, 1
    per = world // n_files
    return slice(rank // per, rank // per + 1), rank % per, per


# --- the collectives: every rank calls each one at the same point of the pass ---

def all_reduce(partial: torch.Tensor) -> torch.Tensor:
    """The sum of every rank's `partial`, on every rank."""
    dist.all_reduce(partial, op=dist.ReduceOp.SUM)
    return partial


def gather(part: torch.Tensor, dim: int) -> torch.Tensor:
    """Every rank's `part`, joined in rank order along `dim`, on every rank."""
    parts = [torch.empty_like(part) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, part.contiguous())
    return torch.cat(parts, dim=dim)


# --- the four steps that differ from one process's ---

def vocab_parallel_embed(tokens: torch.Tensor, table: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Rank r holds rows r·V/N … (r+1)·V/N - 1 of tok_embeddings: it looks up the tokens in
    that range, writes zeros for the others, and the sum over ranks is the whole lookup (each
    token is found on exactly one rank, so the sum is exact)."""
    rows = table.shape[0]  # V/N
    local = tokens.to(table.device) - dist.get_rank() * rows  # [T]: ids relative to this rank's rows
    mine = (local >= 0) & (local < rows)  # [T]
    x = table[local.clamp(0, rows - 1)].to(dtype) * mine[:, None].to(dtype)  # [T, D]
    return all_reduce(x)


def split_attention(x: torch.Tensor, layer: int, weights: Weights, args: ModelArgs, cis: torch.Tensor,
                    dtype: torch.dtype, device, trace: Trace | None = None, *, cache=None, start: int = 0,
                    last_query: bool = False):
    """`batched.attention_batched` on this rank's heads, then the all-reduce after wo.

    With a trace, each rank's head tensors are gathered so the trace holds every head, as one
    process records it: [heads, T, ·] joined along the heads, [T, H·d] along its columns.
    """
    heads: Trace | None = None if trace is None else {}
    out = batched.attention_batched(x, layer, weights, args, cis, dtype, device, heads, cache=cache, start=start,
                                    last_query=last_query)
    if trace is not None:
        for name, t in heads.items():
            trace[name] = gather(t, dim=0 if t.ndim == 3 else -1)
    return all_reduce(out)  # [T, D] ([1, D] with last_query): wo's partial sums over each rank's heads, added


def split_feed_forward(x: torch.Tensor, layer: int, weights: Weights, dtype: torch.dtype, device) -> torch.Tensor:
    """SwiGLU on this rank's F/N hidden units; w2's partial sums are added over the ranks."""
    return all_reduce(batched.feed_forward_batched(x, layer, weights, dtype, device))  # [T, D]


def vocab_parallel_output(x: torch.Tensor, w: torch.Tensor, dtype: torch.dtype, device, *,
                          last_only: bool = False) -> torch.Tensor:
    """Each rank scores its V/N tokens; the logits are gathered in vocabulary order."""
    rows = x[-1:] if last_only else x
    return gather(model.output_projection(rows, w, dtype, device), dim=-1)  # [T, V]


def forward(tokens: torch.Tensor, weights: Weights, args: ModelArgs, *, dtype: torch.dtype = torch.float32,
            device: torch.device | str = "cpu", trace: Trace | None = None, on_layer=None,
            cache: batched.KVCache | None = None, start: int = 0, last_only: bool = False) -> torch.Tensor:
    """`batched.forward` on one rank of a tensor-parallel group: `weights` are this rank's
    slices (`RankWeights`), `cache` holds this rank's kv heads; every rank gets the same logits.
    With `last_only`, the last layer takes the last position alone, as in `batched.forward`."""
    return model.forward(tokens, weights, args, dtype=dtype, device=device, trace=trace, on_layer=on_layer,
                         start=start, embed=vocab_parallel_embed,
                         attention=functools.partial(split_attention, cache=cache, start=start),
                         ffn=split_feed_forward, output=functools.partial(vocab_parallel_output, last_only=last_only),
                         block=batched.next_token_block if last_only else model.transformer_block)
