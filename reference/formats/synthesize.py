"""Deterministic random checkpoints in Meta's exact format, and the built-in ones.

`synthesize("tiny", seed=0, out_dir)` writes params.json, consolidated.00.pth (bf16) and the
real tokenizer.model: what tests, docs and the walk run on when the real weights are not here.
The same seed gives the same bytes on any machine with the pinned versions.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch

from .. import config
from ..config import ModelArgs, expected_shapes
from .params import save_params
from ..errors import InputError, is_int
from ..files import cache_dir, check_free_space, read_json, user_path, write_text
from .shards import check_shardable, shard_slice, split_dim


def _random_tensor(name: str, shape: tuple[int, ...], args: ModelArgs, seed: int,
                   scratch: Path | None = None) -> torch.Tensor:
    """U(center - a, center + a) as bf16, from a stream seeded by (seed, name) alone.

    Projections get std 1/sqrt(fan_in) (a = std·√3), so activations keep their size layer
    after layer; norms get 1 ± 0.1. numpy's PCG64 and float32 arithmetic are exact bit
    operations, so every machine writes the same bytes; the stream does not depend on the
    order of tensors or the number of layers. With a `scratch` directory the tensor lives in a
    memory-mapped file there, so a 16 GB model is made without 16 GB of RAM.
    """
    if name.endswith("norm.weight"):
        center, a = 1.0, 0.1
    elif name == "tok_embeddings.weight":
        center, a = 0.0, math.sqrt(3.0)
    elif name == "output.weight":
        center, a = 0.0, math.sqrt(3.0 / args.dim)
    else:
        center, a = 0.0, math.sqrt(3.0 / shape[1])  # nn.Linear weight (out, in): fan_in = in
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(name.encode())])))
    if scratch is None:
        out = torch.empty(shape, dtype=torch.bfloat16)
    else:  # file pages, which the kernel writes back and drops under memory pressure
        out = torch.from_file(str(scratch / name), shared=True, size=math.prod(shape), dtype=torch.bfloat16)
        out = out.view(shape)
    flat = out.view(-1)
    chunk = 1 << 22  # 16 MB of float32 at a time, so no float32 copy of a whole tensor exists
    for start in range(0, flat.numel(), chunk):
        u = rng.random(min(chunk, flat.numel() - start), dtype=np.float32)  # [0, 1)
        x = (u * np.float32(2) - np.float32(1)) * np.float32(a) + np.float32(center)
        flat[start:start + len(x)] = torch.from_numpy(x)  # float32 -> bf16, round to nearest even
    return out


def _copy(t: torch.Tensor, name: str, scratch: Path | None) -> torch.Tensor:
    """A copy of `t` with storage of its own (in a scratch file, where there is one), as Meta's
    files hold a tied model's output.weight: equal bytes, not a second view of the embeddings."""
    if scratch is None:
        return t.clone()
    out = torch.from_file(str(scratch / name), shared=True, size=t.numel(), dtype=t.dtype).view(t.shape)
    return out.copy_(t)


SCRATCH_ABOVE = 1 << 30  # bytes of bf16 weights above which synthesize generates into files


def synthesize(preset: str | ModelArgs, seed: int, out_dir: str | Path,
               n_layers: int | None = None, tied: bool | None = None, n_shards: int = 1,
               tied_copy: bool | None = None) -> Path:
    """Write a random checkpoint in exactly Meta's format; the same seed gives the same bytes.

    params.json is Meta's (`params.meta_params`), so Meta's own `Llama3.build` loads the result.
    Llama 3.2 1B/3B tie the output projection to the embeddings, and Meta's files store
    output.weight all the same, an exact copy of tok_embeddings.weight (Meta's loader needs every
    weight): `tied_copy=True` writes that, by default for a preset named in config.TIED_PRESETS.
    `tied=True` leaves output.weight out instead, as Hugging Face's and GGUF's tied files do;
    otherwise output.weight is random of its own. `n_shards=N` writes N model-parallel
    shards consolidated.00.pth … as Meta's N-way model-parallel code saves them (see SPLIT_DIM);
    merged, they are exactly the tensors of the one-file checkpoint with the same seed.
    torch.save needs the whole dict at once, so a model over SCRATCH_ABOVE bytes is generated
    into memory-mapped scratch files beside the output (twice its size on disk for a moment,
    little RAM); smaller ones are generated in RAM.
    """
    if isinstance(preset, ModelArgs):
        args = preset if n_layers is None else preset.replace(n_layers=n_layers)
    else:
        args = config.preset(preset, n_layers)
    if tied_copy is None:
        tied_copy = not tied and isinstance(preset, str) and preset in config.TIED_PRESETS
    if tied and tied_copy:
        raise InputError("tied=True leaves output.weight out and tied_copy=True stores it as a copy: choose one")
    tied = bool(tied)
    if not is_int(seed) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    check_shardable(args, n_shards)
    out_dir = user_path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(f"{out_dir}: already exists and is not empty; not overwriting it")
    from ..text.tokenizer import find_tokenizer_model

    tokenizer_model = find_tokenizer_model(None)
    shapes = {name: shape for name, shape in expected_shapes(args).items() if not (tied and name == "output.weight")}
    scratch = None
    check_free_space(out_dir, _bytes_written(shapes, n_shards, tokenizer_model), "the checkpoint",
                     _leftovers(out_dir))
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        # Write beside out_dir, then rename: out_dir is either absent or complete, never half-written.
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    except OSError as e:
        raise InputError(f"{out_dir}: cannot create ({e.strerror})") from None
    try:
        tmp.chmod(0o755)
        save_params(args, tmp / "params.json")
        _mark_synthesized(tmp, preset if isinstance(preset, str) else "custom", seed)
        shutil.copyfile(tokenizer_model, tmp / "tokenizer.model")
        if 2 * sum(math.prod(shape) for shape in shapes.values()) > SCRATCH_ABOVE:
            scratch = tmp / "scratch"
            scratch.mkdir()
        weights = {}
        for name, shape in shapes.items():  # output.weight comes last, after the embeddings it may copy
            copied = tied_copy and name == "output.weight"
            weights[name] = (_copy(weights["tok_embeddings.weight"], name, scratch) if copied else
                             _random_tensor(name, shape, args, seed, scratch))
        for rank in range(n_shards):
            shard = weights if n_shards == 1 else {name: shard_slice(name, t, rank, n_shards) for name, t in weights.items()}
            torch.save(shard, tmp / f"consolidated.{rank:02d}.pth")  # the zip's inner folder is named after the file
            del shard
        del weights
        if scratch is not None:
            shutil.rmtree(scratch)
        os.rename(tmp, out_dir)  # atomic; fails if out_dir became non-empty meanwhile
    except (OSError, RuntimeError) as e:  # torch.save reports a full disk as a RuntimeError
        raise InputError(f"{out_dir}: cannot write the checkpoint ({getattr(e, 'strerror', None) or e})") from None
    finally:  # any failure, a full disk or Ctrl-C: the half-written checkpoint goes too
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


SAVE_OVERHEAD = 4096  # bytes torch.save adds per tensor at most: the zip entry, its 64-byte alignment, the pickle


def _bytes_written(shapes: dict[str, tuple[int, ...]], n_shards: int, tokenizer_model: Path) -> int:
    """What synthesize puts on the disk at its fullest: the bf16 weights (a norm whole in every
    shard), the scratch copy of all of them for a model above SCRATCH_ABOVE, and the tokenizer.

    tiny: 70,765,614 bytes (it writes 69,570,391); the 8B in one file: 32 GB, half of it scratch.
    """
    sizes = {name: 2 * math.prod(shape) for name, shape in shapes.items()}
    stored = sum(size * (n_shards if split_dim(name) is None else 1) for name, size in sizes.items())
    scratch = sum(sizes.values()) if sum(sizes.values()) > SCRATCH_ABOVE else 0  # as synthesize decides
    return stored + scratch + SAVE_OVERHEAD * len(shapes) * n_shards + os.path.getsize(tokenizer_model) + (1 << 20)


def _leftovers(out_dir: Path) -> str:
    """A hint naming the half-written checkpoints of runs killed before they could delete them
    (a .partial directory): on a full disk they are often what fills it."""
    found = sorted(p.name for p in out_dir.parent.glob(f".{out_dir.name}.*.partial")) if out_dir.parent.is_dir() else []
    return f" ({', '.join(found)} beside it is left from an interrupted run: delete it)" if found else ""


# A synthesized checkpoint says so in a file of its own, so that `walk` can say its weights are
# random rather than trained (params.json stays exactly Meta's format).
SYNTHESIZED = "synthesized.json"


def _mark_synthesized(directory: Path, preset: str, seed: int) -> None:
    write_text(directory / SYNTHESIZED, json.dumps(
        {"preset": preset, "seed": seed, "weights": "random, deterministic from the seed: not trained"}, indent=1) + "\n")


def synthesized(path: Path) -> dict | None:
    """What `synthesize` recorded about a checkpoint directory it wrote, or None for any other checkpoint."""
    marker = Path(path) / SYNTHESIZED
    if not marker.is_file():
        return None
    return read_json(marker)


def weights_origin(path) -> str:
    """Whether a checkpoint's weights are random (written by `synthesize`) or as stored in its file."""
    made = synthesized(path) if Path(path).is_dir() else None
    if made is not None:
        return (f"synthesized (random, preset {made.get('preset')!r}, seed {made.get('seed')}): not trained, "
                f"so the prediction is noise")
    return f"as stored in {Path(path).name} (trained, unless you made them)"


def builtin_checkpoint(name: str = "tiny", seed: int = 0) -> Path:
    """A synthesized preset checkpoint in the cache (`tiny-seed0/`), made on first use."""
    target = cache_dir() / f"{name}-seed{seed}"
    if target.is_dir() and any(target.iterdir()):
        if not (target / SYNTHESIZED).exists():  # made before checkpoints were marked
            _mark_synthesized(target, name, seed)
        return target  # only a complete checkpoint is ever renamed into place
    try:
        return synthesize(name, seed, target)
    except InputError:
        if target.is_dir() and any(target.iterdir()):
            return target  # another process finished it first
        raise
