"""Hugging Face's checkpoint format (config.json + model*.safetensors), read as Meta's: the
config, and the weights renamed and permuted into Meta's layout by `layout.py` (which explains
why q and k are permuted, and holds the name map).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from ..config import ModelArgs
from ..errors import InputError, is_finite_number, is_int, shown
from ..files import read_head, read_json
from ..text.vocab_files import tokenizer_from_json
from .checkpoint import Checkpoint, check_tensors, checked_tokenizer
from .layout import hf_to_meta_state_dict
from .params import args_with_ffn_width


# --- config ---

_HF_REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size",
                "rms_norm_eps", "max_position_embeddings")
_HF_LLAMA3_ROPE = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
# Keys that size something: each must be a positive int (not 0, a string or a bool) before use.
_HF_COUNTS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size",
              "intermediate_size", "max_position_embeddings", "head_dim")


def args_from_hf_config(config) -> ModelArgs:
    """`ModelArgs` from a Hugging Face config (a `LlamaConfig` or the parsed config.json).

    HF stores the SwiGLU width itself (intermediate_size), used as is (`args_with_ffn_width`).
    """
    c = config if isinstance(config, Mapping) else config.to_dict()
    rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
    if not isinstance(rope, Mapping):
        raise InputError(f"config: rope_scaling must be an object or null, got {rope!r}")
    for key in _HF_COUNTS:  # checked here so the message names config.json's key, not Meta's field
        if c.get(key) is not None and not (is_int(c[key]) and c[key] >= 1):
            raise InputError(f"config: {key} must be a positive integer, got {c[key]!r}")
    rope_type = rope.get("rope_type", rope.get("type", "default"))  # 4.x config.json files say "type"
    missing = [k for k in _HF_REQUIRED if c.get(k) is None]
    if rope_type == "llama3":
        missing += [f"rope_scaling.{k}" for k in _HF_LLAMA3_ROPE if rope.get(k) is None]
    if missing:
        raise InputError(f"config: missing key {missing[0]!r} (a Llama config.json has {', '.join(_HF_REQUIRED)})")
    theta = rope.get("rope_theta", c.get("rope_theta", 10_000.0))
    if not is_finite_number(theta):
        raise InputError(f"config: rope_theta must be a finite number, got {theta!r}")
    kv_heads = c.get("num_key_value_heads")  # absent or null means one kv head per query head; 0 was refused above
    fields = dict(dim=c["hidden_size"], n_layers=c["num_hidden_layers"], n_heads=c["num_attention_heads"],
                  n_kv_heads=c["num_attention_heads"] if kv_heads is None else kv_heads, vocab_size=c["vocab_size"],
                  norm_eps=c["rms_norm_eps"], rope_theta=float(theta), max_seq_len=c["max_position_embeddings"])
    head_dim = c.get("head_dim") or fields["dim"] // fields["n_heads"]
    if head_dim * fields["n_heads"] != fields["dim"]:
        raise InputError(f"head_dim {head_dim} × num_attention_heads {fields['n_heads']} != hidden_size "
                         f"{fields['dim']}: Meta's format derives head_dim = dim / n_heads")
    if rope_type == "llama3":
        fields.update(use_scaled_rope=True, rope_scale_factor=rope["factor"], rope_low_freq_factor=rope["low_freq_factor"],
                      rope_high_freq_factor=rope["high_freq_factor"],
                      rope_original_max_seq_len=rope["original_max_position_embeddings"])
    elif rope_type != "default":
        raise InputError(f"rope type {rope_type!r} is not Llama 3's (default or llama3)")
    return args_with_ffn_width(fields, c["intermediate_size"])


# --- reading a directory: config.json + model*.safetensors ---

HF_WEIGHTS_GLOB = "model*.safetensors"  # model.safetensors, or model-00001-of-00004.safetensors …
HF_INDEX = "model.safetensors.index.json"  # for several files: which file holds each tensor


def load_hf_checkpoint(path: Path, progress: bool = False) -> Checkpoint:
    """A Hugging Face Llama directory, as a Checkpoint in Meta's names and layout.

    The safetensors files are memory-mapped (`safe_open`) like Meta's .pth files; every tensor
    but wq and wk stays a view of the file. Those two are turned back from Hugging Face's row
    order into Meta's (`to_adjacent_pairs`), a reshape of a transposed view that has to copy:
    about a tenth of the model (1.3 GB of Llama 3 8B's 16 GB) ends up in memory. A tied model
    (tie_word_embeddings, as Llama 3.2 1B/3B) gets no output.weight, as in Meta's format.
    """
    config_file = path / "config.json"
    config = read_json(config_file)
    if not isinstance(config, dict):
        raise InputError(f"{config_file}: expected a JSON object, got {type(config).__name__}")
    if config.get("model_type", "llama") != "llama":
        raise InputError(f"{config_file}: model_type is {config['model_type']!r}; only Llama (\"llama\") checkpoints load")
    tied = config.get("tie_word_embeddings", False)
    if not isinstance(tied, bool):  # the string "false" is truthy: it would drop lm_head silently
        raise InputError(f"{config_file}: tie_word_embeddings must be true or false, got {tied!r}")
    try:
        args = args_from_hf_config(config)
    except KeyError as e:
        raise InputError(f"{config_file}: missing key {e.args[0]!r}") from None
    except (InputError, TypeError, ValueError) as e:
        raise InputError(f"{config_file}: {e}") from None
    own = path / "tokenizer.json"  # a Hub repo has one; a bare save_pretrained of the model has not
    tokenizer = checked_tokenizer(path, args, config_file, tokenizer_from_json(own) if own.exists() else None)
    state = _read_safetensors(path)
    if tied:
        state.pop("lm_head.weight", None)  # a saved copy of embed_tokens; Meta's format has none
    elif "lm_head.weight" not in state:
        raise InputError(f"{path}: no file holds lm_head.weight, and config.json says tie_word_embeddings is "
                         "false; a model without it must be tied")
    try:
        weights = hf_to_meta_state_dict(state, args)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
    check_tensors(path / HF_WEIGHTS_GLOB, weights, args, progress)
    return Checkpoint(path, args, weights, tokenizer)


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
        parsed = read_json(index)
        weight_map = parsed.get("weight_map") if isinstance(parsed, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise InputError(f"{index}: has no \"weight_map\" object (tensor name -> file name)")
        for name, file_name in weight_map.items():  # a stranger's index: names only, in this directory
            if not (isinstance(file_name, str) and file_name.endswith(".safetensors") and "/" not in file_name
                    and "\\" not in file_name and not file_name.startswith(".")):
                raise InputError(f"{index}: weight_map[{shown(name)!r}] is {shown(repr(file_name))}, expected "
                                 "the name of a .safetensors file in this directory")
        files = [path / name for name in dict.fromkeys(weight_map.values())]
        for file in files:
            if not file.exists():
                raise InputError(f"{index}: names {file.name}, which is missing; download it again")
    else:
        files = sorted(path.glob(HF_WEIGHTS_GLOB))
        weight_map = None
    state, where = {}, {}
    for file in files:
        read_head(file)
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
