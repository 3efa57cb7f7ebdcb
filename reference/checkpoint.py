"""Meta's checkpoint format: check and load one. (`synthesize.py` makes a random one, `hub.py`
fetches a real one, `shards.py` reads the 70B's model-parallel files.)

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
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ModelArgs, load_params
from .errors import InputError
from .model import output_weight_name
from .shards import ShardedWeights, check_shard_count, shard_files

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
        return output_weight_name(self.weights)

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
        weights = _tensors(files[0])
        check_shard_count(files, weights, args)
        _check_tensors(files[0], weights, args, progress)
    else:
        files = shard_files(path, files)
        weights = ShardedWeights(path, files, [_tensors(f) for f in files], args)
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


def _tensors(file: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in _read_weights(file).items() if k not in IGNORED}


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
