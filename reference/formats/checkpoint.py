"""What every checkpoint format loads into: a `Checkpoint` in Meta's names, checked the same way.

Each format (`meta.py`, `hf.py`, `gguf/`) reads its own files and hands back Meta's tensor names and
layout; the checks here are shared, so a missing or misshapen tensor reads the same whatever
the file it came from, e.g.

    ckpt/consolidated.00.pth: layers.1.attention.wk.weight has shape [64, 128], params.json
    implies [32, 128] (n_kv_heads=2, head_dim=16, dim=128)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import ModelArgs, expected_shapes
from ..errors import InputError
from ..model import output_weight_name
from ..text.tokenizer import Tokenizer, load_tokenizer
from ..text.vocab import BPETokenizer

OPTIONAL = {"output.weight"}  # absent when tied to tok_embeddings (Llama 3.2 1B/3B)


def shape_derivation(name: str, a: ModelArgs) -> str:
    """Which fields a tensor's shape comes from, with their values, for error messages."""
    heads = f"n_heads={a.n_heads}, head_dim={a.head_dim}, "
    kv_heads = f"n_kv_heads={a.n_kv_heads}, head_dim={a.head_dim}, "
    ffn = f"hidden_dim={a.hidden_dim} from multiple_of={a.multiple_of}, ffn_dim_multiplier={a.ffn_dim_multiplier}, "
    vocab = f"vocab_size={a.vocab_size}, "
    by_kind = {"wq": heads, "wo": heads, "wk": kv_heads, "wv": kv_heads, "w1": ffn, "w2": ffn, "w3": ffn,
               "tok_embeddings": vocab, "output": vocab}
    return by_kind.get(name.split(".")[-2], "") + f"dim={a.dim}"


@dataclass(frozen=True)
class Checkpoint:
    path: Path  # the checkpoint directory (or .gguf file)
    args: ModelArgs  # its hyper-parameters
    weights: Mapping[str, torch.Tensor]  # Meta's names -> tensors, memory-mapped from the file(s)
    tokenizer: Tokenizer | BPETokenizer  # Llama 3's tokenizer.model, or the vocabulary the file carries

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


def checked_tokenizer(path: Path, args: ModelArgs, config_file: Path, tokenizer=None):
    """The checkpoint's tokenizer (Llama 3's tokenizer.model unless given), after checking that
    every one of its ids fits the embedding table."""
    tokenizer = tokenizer or load_tokenizer(path)
    if args.vocab_size < tokenizer.n_words:  # a token id >= vocab_size would index past the embedding table
        raise InputError(f"{config_file}: vocab_size {args.vocab_size} is smaller than the "
                         f"{tokenizer.n_words} ids of {tokenizer.source}; the model needs vocab_size {tokenizer.n_words}")
    return tokenizer


def check_tensors(file: Path, weights: Mapping[str, torch.Tensor], args: ModelArgs, progress: bool,
                  config_name: str = "params.json") -> None:
    """Every expected name present with its shape and a floating dtype; nothing unexpected.

    Only shapes and dtypes are read, so `weights` may hold "meta" tensors (ShardedWeights.meta).
    """
    from tqdm.auto import tqdm

    expected = expected_shapes(args)
    for name in tqdm(expected, desc=f"checking {file.name}", unit="tensor", disable=not progress):
        if name not in weights:
            if name in OPTIONAL:
                continue
            raise InputError(f"{file}: missing tensor {name} ({config_name} has n_layers={args.n_layers})")
        shape, want = list(weights[name].shape), list(expected[name])
        if shape != want:
            raise InputError(f"{file}: {name} has shape {shape}, {config_name} implies {want} "
                             f"({shape_derivation(name, args)})")
        if not weights[name].is_floating_point():
            raise InputError(f"{file}: {name} has dtype {weights[name].dtype}, expected a floating type (bfloat16)")
    for name in weights:
        if name not in expected:
            raise InputError(f"{file}: unexpected tensor {name} ({config_name} has n_layers={args.n_layers})")
