"""Meta's checkpoint format: check and load one, make a random one, fetch a real one.

A Meta checkpoint is a directory of three kinds of file:

    params.json           the hyper-parameters (config.py reads them into ModelArgs)
    consolidated.00.pth   torch.save of a flat dict, tensor name -> bf16 tensor
    tokenizer.model       the BPE ranks (tokenizer.py reads them)

Llama 3 70B comes as eight model-parallel shards, consolidated.00.pth … 07.pth, each holding
a slice of every weight (`ShardedWeights` reads them as one). A Hugging Face directory
(config.json, model*.safetensors) loads too: its names and q/k row order are turned into
Meta's by `hf.py`, so everything downstream sees one format.

Loading never unpickles arbitrary objects (`weights_only=True`) and never copies the weights
into RAM (`mmap=True`: a tensor's bytes are read from disk when the forward pass touches
them). Every problem is found before any compute and reported as one line naming the file
and the tensor, e.g.

    ckpt/consolidated.00.pth: layers.1.attention.wk.weight has shape [64, 128], params.json
    implies [32, 128] (n_kv_heads=2, head_dim=16, dim=128)
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import shutil
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import config
from .config import ModelArgs, load_params, save_params
from .errors import InputError

WEIGHTS_GLOB = "consolidated.*.pth"  # 8B and 3.2 1B/3B: one file; 70B: eight model-parallel shards


def expected_shapes(args: ModelArgs) -> dict[str, tuple[int, ...]]:
    """Every tensor name in Meta's checkpoint, in Meta's order, with its shape.

    Llama 3 8B: tok_embeddings.weight (128256, 4096), layers.0.attention.wk.weight (1024, 4096), ...
    """
    D, H, K, d, F, V = args.dim, args.n_heads, args.n_kv_heads, args.head_dim, args.hidden_dim, args.vocab_size
    shapes = {"tok_embeddings.weight": (V, D)}
    for i in range(args.n_layers):
        shapes.update({
            f"layers.{i}.attention.wq.weight": (H * d, D),
            f"layers.{i}.attention.wk.weight": (K * d, D),
            f"layers.{i}.attention.wv.weight": (K * d, D),
            f"layers.{i}.attention.wo.weight": (D, H * d),
            f"layers.{i}.feed_forward.w1.weight": (F, D),
            f"layers.{i}.feed_forward.w2.weight": (D, F),
            f"layers.{i}.feed_forward.w3.weight": (F, D),
            f"layers.{i}.attention_norm.weight": (D,),
            f"layers.{i}.ffn_norm.weight": (D,),
        })
    shapes["norm.weight"] = (D,)
    shapes["output.weight"] = (V, D)  # absent when tied to tok_embeddings (Llama 3.2 1B/3B)
    return shapes


OPTIONAL = {"output.weight"}
IGNORED = {"rope.freqs"}  # Llama 2 checkpoints stored the RoPE table; we recompute it


def _derivation(name: str, a: ModelArgs) -> str:
    """Which params.json fields a tensor's shape comes from, with their values."""
    heads = f"n_heads={a.n_heads}, head_dim={a.head_dim}, "
    kv_heads = f"n_kv_heads={a.n_kv_heads}, head_dim={a.head_dim}, "
    ffn = f"hidden_dim={a.hidden_dim} from multiple_of={a.multiple_of}, ffn_dim_multiplier={a.ffn_dim_multiplier}, "
    vocab = f"vocab_size={a.vocab_size}, "
    by_kind = {"wq": heads, "wo": heads, "wk": kv_heads, "wv": kv_heads, "w1": ffn, "w2": ffn, "w3": ffn,
               "tok_embeddings": vocab, "output": vocab}
    return by_kind.get(name.split(".")[-2], "") + f"dim={a.dim}"


@dataclass(frozen=True)
class Checkpoint:
    path: Path  # the checkpoint directory
    args: ModelArgs  # from its params.json
    weights: Mapping[str, torch.Tensor]  # Meta's names -> tensors, memory-mapped from the file(s)
    tokenizer_path: Path  # its tokenizer.model (or the one bundled with llama_models)

    @property
    def tied(self) -> bool:
        """True when the checkpoint has no output.weight and reuses tok_embeddings.weight."""
        return "output.weight" not in self.weights

    @property
    def output_name(self) -> str:
        """The tensor that maps the final hidden state to logits (V, D)."""
        return "tok_embeddings.weight" if self.tied else "output.weight"

    @property
    def output_weight(self) -> torch.Tensor:
        return self.weights[self.output_name]


# --- loading ---


def load_checkpoint(path: str | Path, progress: bool = False) -> Checkpoint:
    """Load and check a checkpoint directory, Meta's or Hugging Face's; any problem is one line
    naming file and tensor."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{path}: no such checkpoint directory")
    if not path.is_dir():
        raise InputError(f"{path}: is a file; expected a checkpoint directory (params.json, consolidated.00.pth, tokenizer.model)")
    if not any(path.iterdir()):
        raise InputError(f"{path}: directory is empty; expected params.json, consolidated.00.pth, tokenizer.model")
    if not (path / "params.json").exists() and (path / "config.json").exists():
        if any(path.glob(HF_WEIGHTS_GLOB)):
            return load_hf_checkpoint(path, progress)
        if (path / "original" / "params.json").exists():
            raise InputError(f"{path}: looks like a Hugging Face repo without its safetensors; Meta's checkpoint is in "
                             f"{path / 'original'}")
        raise InputError(f"{path}: has config.json but no {HF_WEIGHTS_GLOB} weights (.bin files are not read: "
                         "they are pickles that can run code); download the safetensors files")
    if not (path / "params.json").exists() and (path / "original" / "params.json").exists():
        raise InputError(f"{path}: looks like a Hugging Face repo; Meta's checkpoint is in {path / 'original'}")
    args = load_params(path / "params.json")
    tokenizer_path = _tokenizer_for(path, args, path / "params.json")
    files = sorted(path.glob(WEIGHTS_GLOB))
    if not files:
        raise InputError(f"{path}: no {WEIGHTS_GLOB} weights file")
    if len(files) == 1:
        weights = {k: v for k, v in _read_weights(files[0]).items() if k not in IGNORED}
        _check_shard_count(files, weights, args)
        _check_tensors(files[0], weights, args, progress)
    else:
        weights = ShardedWeights(path, _shard_files(path, files), args)
        _check_tensors(weights.label, weights.meta, args, progress)
    return Checkpoint(path, args, weights, tokenizer_path)


def _tokenizer_for(path: Path, args: ModelArgs, config_file: Path) -> Path:
    """The checkpoint's tokenizer.model, after checking every one of its ids fits the embedding table."""
    from .tokenizer import find_tokenizer_model, load_tokenizer

    tokenizer_path = find_tokenizer_model(path)
    n_words = load_tokenizer(path).n_words
    if args.vocab_size < n_words:  # a token id >= vocab_size would index past the embedding table
        raise InputError(f"{config_file}: vocab_size {args.vocab_size} is smaller than the "
                         f"{n_words} ids of {tokenizer_path}; Llama 3 uses vocab_size {n_words}")
    return tokenizer_path


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    """torch.load one weights file, memory-mapped; only tensors, never code."""
    try:
        with open(file, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise InputError(f"{file}: cannot read ({e.strerror})") from None
    if head.startswith(b"version https://git-lfs"):  # a clone made without `git lfs pull`
        raise InputError(f"{file}: is a Git LFS pointer, not the real file; run `git lfs pull` in that clone")
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


# --- model-parallel shards (70B: consolidated.00.pth … consolidated.07.pth) ---

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


def _shard_files(path: Path, files: list[Path]) -> list[Path]:
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
    n = max(ranks) + 1
    missing = [f"consolidated.{i:02d}.pth" for i in range(n) if i not in ranks]
    if missing:
        have = ", ".join(f"{i:02d}" for i in sorted(ranks))
        raise InputError(f"{path}: model-parallel shard {missing[0]} is missing (found consolidated.{{{have}}}.pth); "
                         "download the checkpoint again")
    return [ranks[i] for i in range(n)]


def _check_shard_count(files: list[Path], first: Mapping[str, torch.Tensor], args: ModelArgs) -> None:
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

    def __init__(self, path: Path, files: list[Path], args: ModelArgs):
        self.files = files
        self.label = path / f"consolidated.{{00..{len(files) - 1:02d}}}.pth"  # for messages: the shards as one
        self.shards = [{k: v for k, v in _read_weights(f).items() if k not in IGNORED} for f in files]
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
        _check_shard_count(files, self.shards[0], args)

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


def _check_tensors(file: Path, weights: Mapping[str, torch.Tensor], args: ModelArgs, progress: bool) -> None:
    """Every expected name present with its shape and a floating dtype; nothing unexpected.

    Only shapes and dtypes are read, so `weights` may hold "meta" tensors (ShardedWeights.meta).
    """
    from tqdm.auto import tqdm

    expected = expected_shapes(args)
    for name in tqdm(expected, desc=f"checking {file.name}", unit="tensor", disable=not progress):
        if name not in weights:
            if name in OPTIONAL:
                continue
            raise InputError(f"{file}: missing tensor {name} (params.json has n_layers={args.n_layers})")
        shape, want = list(weights[name].shape), list(expected[name])
        if shape != want:
            raise InputError(f"{file}: {name} has shape {shape}, params.json implies {want} ({_derivation(name, args)})")
        if not weights[name].is_floating_point():
            raise InputError(f"{file}: {name} has dtype {weights[name].dtype}, expected a floating type (bfloat16)")
    for name in weights:
        if name not in expected:
            raise InputError(f"{file}: unexpected tensor {name} (params.json has n_layers={args.n_layers})")


# --- Hugging Face checkpoints (config.json + model*.safetensors) ---

HF_WEIGHTS_GLOB = "model*.safetensors"  # model.safetensors, or model-00001-of-00004.safetensors …
HF_INDEX = "model.safetensors.index.json"  # for several files: which file holds each tensor


def load_hf_checkpoint(path: Path, progress: bool = False) -> Checkpoint:
    """A Hugging Face Llama directory, as a Checkpoint in Meta's names and layout.

    The safetensors files are memory-mapped (`safe_open`) like Meta's .pth files; every tensor
    but wq and wk stays a view of the file. Those two are turned back from Hugging Face's row
    order into Meta's (`hf.to_adjacent_pairs`), a reshape of a transposed view that has to copy:
    about a tenth of the model (1.3 GB of Llama 3 8B's 16 GB) ends up in memory. A tied model
    (tie_word_embeddings, as Llama 3.2 1B/3B) gets no output.weight, as in Meta's format.
    """
    from . import hf

    config_file = path / "config.json"
    config = _read_json(config_file)
    if not isinstance(config, dict):
        raise InputError(f"{config_file}: expected a JSON object, got {type(config).__name__}")
    if config.get("model_type", "llama") != "llama":
        raise InputError(f"{config_file}: model_type is {config['model_type']!r}; only Llama (\"llama\") checkpoints load")
    try:
        args = hf.args_from_hf_config(config)
    except KeyError as e:
        raise InputError(f"{config_file}: missing key {e.args[0]!r}") from None
    except (InputError, TypeError, ValueError) as e:
        raise InputError(f"{config_file}: {e}") from None
    tokenizer_path = _tokenizer_for(path, args, config_file)
    state = _read_safetensors(path)
    tied = config.get("tie_word_embeddings", False)
    if tied:
        state.pop("lm_head.weight", None)  # a saved copy of embed_tokens; Meta's format has none
    elif "lm_head.weight" not in state:
        raise InputError(f"{path}: no file holds lm_head.weight, and config.json says tie_word_embeddings is "
                         "false; a model without it must be tied")
    try:
        weights = hf.hf_to_meta_state_dict(state, args)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
    _check_tensors(path / HF_WEIGHTS_GLOB, weights, args, progress)
    return Checkpoint(path, args, weights, tokenizer_path)


def _read_json(file: Path):
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{file}: not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{file}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{file}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the directory's safetensors files, by Hugging Face name, memory-mapped.

    With model.safetensors.index.json, each tensor must be in the file the index names;
    without one, the files are model*.safetensors and no tensor may be in two of them.
    """
    try:
        from safetensors import SafetensorError, safe_open
    except ModuleNotFoundError:
        raise InputError(f"{path}: reading Hugging Face checkpoints needs the safetensors package; "
                         "pip install safetensors") from None
    index = path / HF_INDEX
    if index.exists():
        parsed = _read_json(index)
        weight_map = parsed.get("weight_map") if isinstance(parsed, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise InputError(f"{index}: has no \"weight_map\" object (tensor name -> file name)")
        files = [path / name for name in dict.fromkeys(weight_map.values())]
        for file in files:
            if not file.exists():
                raise InputError(f"{index}: names {file.name}, which is missing; download it again")
    else:
        files = sorted(path.glob(HF_WEIGHTS_GLOB))
        weight_map = None
    state, where = {}, {}
    for file in files:
        try:
            with open(file, "rb") as f:
                head = f.read(64)
        except OSError as e:
            raise InputError(f"{file}: cannot read ({e.strerror})") from None
        if head.startswith(b"version https://git-lfs"):
            raise InputError(f"{file}: is a Git LFS pointer, not the real file; run `git lfs pull` in that clone")
        try:
            with safe_open(file, framework="pt") as reader:  # mmap: bytes are read when touched
                for name in reader.keys():
                    if weight_map is not None and weight_map.get(name) != file.name:
                        continue  # the index says another file holds it (or nothing needs it)
                    if name in state:
                        raise InputError(f"{file}: {name} is also in {where[name].name}; which one is meant?")
                    state[name], where[name] = reader.get_tensor(name), file
        except (SafetensorError, OSError) as e:
            raise InputError(f"{file}: not a valid safetensors file ({e}); download it again") from None
    if weight_map is not None:
        for name, file_name in weight_map.items():
            if name not in state:
                raise InputError(f"{path / file_name}: has no {name}, which {HF_INDEX} says it holds")
    return state


# --- a deterministic random checkpoint ---


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


SCRATCH_ABOVE = 1 << 30  # bytes of bf16 weights above which synthesize generates into files


def synthesize(preset: str | ModelArgs, seed: int, out_dir: str | Path,
               n_layers: int | None = None, tied: bool | None = None, n_shards: int = 1) -> Path:
    """Write a random checkpoint in exactly Meta's format; the same seed gives the same bytes.

    `tied=True` leaves out output.weight, as Llama 3.2 1B/3B do; by default a preset named in
    config.TIED_PRESETS is tied and anything else is not. `n_shards=N` writes N model-parallel
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
    if tied is None:
        tied = isinstance(preset, str) and preset in config.TIED_PRESETS
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    _check_shardable(args, n_shards)
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(f"{out_dir}: already exists and is not empty; not overwriting it")
    from .tokenizer import find_tokenizer_model

    tokenizer_model = find_tokenizer_model(None)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        # Write beside out_dir, then rename: out_dir is either absent or complete, never half-written.
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    except OSError as e:
        raise InputError(f"{out_dir}: cannot create ({e.strerror})") from None
    try:
        tmp.chmod(0o755)
        save_params(args, tmp / "params.json")
        shutil.copyfile(tokenizer_model, tmp / "tokenizer.model")
        shapes = {name: shape for name, shape in expected_shapes(args).items() if not (tied and name == "output.weight")}
        scratch = None
        if 2 * sum(math.prod(shape) for shape in shapes.values()) > SCRATCH_ABOVE:
            scratch = tmp / "scratch"
            scratch.mkdir()
        weights = {name: _random_tensor(name, shape, args, seed, scratch) for name, shape in shapes.items()}
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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def shard_slice(name: str, tensor: torch.Tensor, rank: int, n_shards: int) -> torch.Tensor:
    """Rank `rank`'s part of a full tensor, as Meta's model-parallel code holds it.

    wq [4096, 4096] over 8 shards: rank 1 holds rows 512 … 1023; a norm is whole in every shard.
    """
    dim = split_dim(name)
    if dim is None:
        return tensor
    # clone: a view would make torch.save write the whole tensor's storage into every shard
    return tensor.chunk(n_shards, dim=dim)[rank].clone()


def _check_shardable(args: ModelArgs, n_shards: int) -> None:
    """Meta's code gives every rank whole heads and equal slices: n_shards must divide them all."""
    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
        raise InputError(f"n_shards must be a positive integer, got {n_shards!r}")
    for what, size in (("n_heads", args.n_heads), ("n_kv_heads", args.n_kv_heads),
                       ("the SwiGLU hidden size", args.hidden_dim), ("vocab_size", args.vocab_size)):
        if size % n_shards:
            raise InputError(f"n_shards {n_shards} does not divide {what} {size}; Meta's model-parallel "
                             "code gives every shard an equal share")


def cache_dir() -> Path:
    """$LLAMA3_REFERENCE_CACHE, else $XDG_CACHE_HOME/llama3-reference, else ~/.cache/llama3-reference."""
    if os.environ.get("LLAMA3_REFERENCE_CACHE"):
        return Path(os.environ["LLAMA3_REFERENCE_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "llama3-reference"


def builtin_checkpoint(name: str = "tiny", seed: int = 0) -> Path:
    """A synthesized preset checkpoint in the cache (`tiny-seed0/`), made on first use."""
    target = cache_dir() / f"{name}-seed{seed}"
    if target.is_dir() and any(target.iterdir()):
        return target  # only a complete checkpoint is ever renamed into place
    try:
        return synthesize(name, seed, target)
    except InputError:
        if target.is_dir() and any(target.iterdir()):
            return target  # another process finished it first
        raise


# --- the Hugging Face Hub ---


def _explain_hub_error(repo_id: str, exc: BaseException) -> InputError:
    """One line for a huggingface_hub exception: what went wrong and what to do."""
    from huggingface_hub.utils import (GatedRepoError, HfHubHTTPError, HFValidationError,
                                       LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError)

    login = "run `hf auth login` (formerly `huggingface-cli login`) or set HF_TOKEN"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, OfflineModeIsEnabled) or isinstance(exc.__cause__, OfflineModeIsEnabled):
        why = "offline mode is on (HF_HUB_OFFLINE=1) and it is not in the local cache; unset HF_HUB_OFFLINE"
    elif isinstance(exc, GatedRepoError):
        why = f"is gated: request access at https://huggingface.co/{repo_id}" + (f", then {login}" if status == 401 else "")
    elif isinstance(exc, RepositoryNotFoundError) and status == 401:
        why = f"not found, or private/gated and you are not logged in: {login}"
    elif isinstance(exc, RepositoryNotFoundError):
        why = "no such repo on the Hugging Face Hub (nor a local directory of that name)"
    elif isinstance(exc, HfHubHTTPError) and status == 401:
        why = f"unauthorised (401): your token was refused; {login}"
    elif isinstance(exc, HFValidationError):
        why = f"not a valid Hub repo id ({str(exc).splitlines()[0]})"
    elif isinstance(exc, (LocalEntryNotFoundError, TimeoutError)) or any(  # httpx's, requests' or Python's
            c.__name__ in ("TransportError", "ConnectionError") for c in type(exc).__mro__):
        why = "cannot reach huggingface.co and it is not in the local cache; check the connection"
    else:
        why = f"download failed ({type(exc).__name__}: {next(iter(str(exc).strip().splitlines()), '')})"
    return InputError(f"{repo_id}: {why}")


def download(repo_id: str, out_dir: str | Path | None = None) -> Path:
    """Download a Hub repo's `original/` folder (Meta's format); returns that folder.

    Files go to the Hugging Face cache, or to `out_dir`; the token comes from the usual
    places (HF_TOKEN, `hf auth login`). A gated repo needs access granted on its page.
    """
    from huggingface_hub import snapshot_download

    if out_dir is not None:
        out_dir = Path(out_dir).expanduser()
        resuming = (out_dir / ".cache" / "huggingface").is_dir()  # an earlier download into out_dir
        if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not resuming:
            raise InputError(f"{out_dir}: already exists and is not empty; not overwriting it")
    try:
        root = snapshot_download(repo_id, allow_patterns=["original/*"], local_dir=out_dir)
    except Exception as e:  # noqa: BLE001 - every Hub failure becomes one line
        raise _explain_hub_error(repo_id, e) from None
    original = Path(root) / "original"
    if not (original / "params.json").is_file():
        raise InputError(f"{repo_id}: has no original/params.json, so no checkpoint in Meta's format")
    return original


def resolve_checkpoint(spec: str) -> Path:
    """"tiny" -> the built-in checkpoint; a directory -> itself; "owner/name" -> downloaded.

    "tiny" wins over a directory of that name; write ./tiny to mean the directory.
    """
    path = Path(spec).expanduser()
    if spec == "tiny":
        return builtin_checkpoint("tiny")
    if path.is_dir():
        return path
    if path.exists():
        raise InputError(f"{spec}: is a file; expected a checkpoint directory, \"tiny\" or a Hub id like meta-llama/Meta-Llama-3-8B")
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", spec):  # owner/name, not ./x or ../x
        return download(spec)
    raise InputError(f"{spec}: no such checkpoint directory (or give \"tiny\" or a Hub id like meta-llama/Meta-Llama-3-8B)")
