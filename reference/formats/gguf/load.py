"""GGUF, llama.cpp's one-file format (Ollama and LM Studio keep models in it), read as Meta's names,
Meta's layout and a `ModelArgs`.

A `.gguf` file is a header of typed key/value metadata (`llama.embedding_length = 4096`, the
tokenizer's vocabulary and chat template, …), a table of tensors (name, shape, type, offset)
and the tensors' bytes. Three things differ from Meta's checkpoint:

- **Names.** `blk.3.attn_q.weight` is Meta's `layers.3.attention.wq.weight`: `GGUF_NAMES`.
- **Shapes are listed fastest axis first.** GGUF's `ne = [4096, 1024]` is torch's `[1024, 4096]`.
- **Quantization.** Most files store weights in blocks of 32 or 256 values that share a scale
  (Q8_0, Q4_K, …). A quantized tensor is handed out as a `Quantized` (quantized.py): its blocks,
  memory-mapped, expanded to float32 in RAM where the pass uses them (a cache-sized slice of rows
  at a time in `upcast.linear`), bit-identical to llama.cpp's own `gguf.quants.dequantize`.
  Nothing is written beside the file, so the file is the only copy of the weights.
  F32/F16/BF16 tensors stay views of the file itself.

The q/k rows need *no* permutation: llama.cpp's converter applies `layout.to_adjacent_pairs` to
Hugging Face's q_proj/k_proj, so a GGUF already holds Meta's adjacent-pair order (tests/
test_gguf.py checks it against transformers, which undoes it on loading). Llama 3.1/3.2 files
carry `rope_freqs.weight`, one divisor per RoPE pair (pair j turns by m·θ_j / rope_freqs[j]);
the metadata does not repeat the scaling, so it is recovered from that tensor and checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ...config import ModelArgs, expected_shapes
from ..params import args_with_ffn_width
from ...errors import InputError, shown
from ...files import read_head
from ...text.vocab_files import tokenizer_from_gguf
from ..checkpoint import OPTIONAL, Checkpoint, checked_tokenizer
from .header import MAGIC, TensorInfo, read_header, tensor_bytes, type_name
from .quantized import EXPAND, Quantized

# llama.cpp's name (N for the layer) -> Meta's name.
GGUF_NAMES = {
    "token_embd.weight": "tok_embeddings.weight",
    "blk.N.attn_q.weight": "layers.N.attention.wq.weight",  # Meta's row order already
    "blk.N.attn_k.weight": "layers.N.attention.wk.weight",
    "blk.N.attn_v.weight": "layers.N.attention.wv.weight",
    "blk.N.attn_output.weight": "layers.N.attention.wo.weight",
    "blk.N.ffn_gate.weight": "layers.N.feed_forward.w1.weight",  # the silu gate
    "blk.N.ffn_down.weight": "layers.N.feed_forward.w2.weight",  # back to D
    "blk.N.ffn_up.weight": "layers.N.feed_forward.w3.weight",  # the value
    "blk.N.attn_norm.weight": "layers.N.attention_norm.weight",
    "blk.N.ffn_norm.weight": "layers.N.ffn_norm.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "output.weight",  # absent when tied to the embeddings (SmolLM2, Llama 3.2 1B/3B)
}
ROPE_FREQS = "rope_freqs.weight"  # Llama 3.1+: per-pair RoPE divisors [d/2], not a weight
FLOATS = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}  # read as views of the file
QUANTIZED = tuple(EXPAND)  # Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K … Q6_K: expanded to float32 where used


def meta_name(gguf_name: str) -> str | None:
    """'blk.3.ffn_gate.weight' -> 'layers.3.feed_forward.w1.weight'; None if not a Llama weight."""
    m = re.fullmatch(r"blk\.(\d+)\.(.*)", gguf_name)
    meta = GGUF_NAMES.get(f"blk.N.{m.group(2)}" if m else gguf_name)
    return meta.replace(".N.", f".{m.group(1)}.") if meta and m else meta


# --- metadata -> ModelArgs ---

# ModelArgs' fields as a GGUF spells them, so that its checks ("dim 100 is not divisible by
# n_heads 3") name the keys of the user's file. The SwiGLU sizes come from feed_forward_length.
KEY_OF_FIELD = {"dim": "llama.embedding_length", "n_layers": "llama.block_count", "vocab_size": "llama.vocab_size",
                "n_heads": "llama.attention.head_count", "n_kv_heads": "llama.attention.head_count_kv",
                "norm_eps": "llama.attention.layer_norm_rms_epsilon", "rope_theta": "llama.rope.freq_base",
                "max_seq_len": "llama.context_length", "multiple_of": "llama.feed_forward_length",
                "ffn_dim_multiplier": "llama.feed_forward_length / (8/3 · llama.embedding_length)"}


def args_from_gguf(metadata: Mapping, source: str, rope_freqs: torch.Tensor | None = None) -> ModelArgs:
    """`ModelArgs` from the `llama.*` keys; every problem is one line naming `source` and the key.

    The values' types were checked as the header was read (keys.KEYS); what ModelArgs
    refuses here is how they fit together, said with the file's keys. GGUF stores the SwiGLU
    width (feed_forward_length), which is used as is (`args_with_ffn_width`).
    """
    arch = metadata.get("general.architecture")
    if arch != "llama":
        raise InputError(f"{source}: general.architecture is {shown(repr(arch))}; only Llama (\"llama\") GGUF "
                         "files load")

    def key(name, default=KeyError):
        if f"llama.{name}" in metadata:
            return metadata[f"llama.{name}"]
        if default is KeyError:
            raise InputError(f"{source}: missing metadata key 'llama.{name}'")
        return default

    n_heads = key("attention.head_count")
    vocab = key("vocab_size", None) or len(metadata.get("tokenizer.ggml.tokens", ())) or key("vocab_size")
    fields = dict(dim=key("embedding_length"), n_layers=key("block_count"), n_heads=n_heads,
                  n_kv_heads=key("attention.head_count_kv", n_heads), vocab_size=vocab,
                  norm_eps=key("attention.layer_norm_rms_epsilon"), rope_theta=key("rope.freq_base", 10_000.0),
                  max_seq_len=key("context_length", 8192))
    scaling = key("rope.scaling.type", "none")
    if scaling != "none":
        raise InputError(f"{source}: llama.rope.scaling.type is {shown(repr(scaling))}; Llama 3 scales RoPE by "
                         f"{ROPE_FREQS}")
    width = key("feed_forward_length")
    try:
        args = args_with_ffn_width(fields, width)
    except InputError as e:
        names = {**KEY_OF_FIELD, **({} if "llama.vocab_size" in metadata else {"vocab_size": "the number of tokens"})}
        said = re.sub(r"\b(" + "|".join(names) + r")\b", lambda m: names[m.group(1)], str(e))
        raise InputError(f"{source}: {said}") from None
    for name in ("rope.dimension_count", "attention.key_length", "attention.value_length"):
        if key(name, args.head_dim) != args.head_dim:
            raise InputError(f"{source}: llama.{name} is {key(name)}, but llama.embedding_length / "
                             f"llama.attention.head_count = {args.head_dim}; Meta's Llama rotates and attends over "
                             f"whole heads of dim / n_heads")
    return args if rope_freqs is None else _with_rope_scaling(args, rope_freqs, source)


def _with_rope_scaling(args: ModelArgs, rope_freqs: torch.Tensor, source: str) -> ModelArgs:
    """Llama 3.1's RoPE scaling, recovered from rope_freqs.weight and checked against it.

    The slow pairs are divided by the factor itself, so factor = max(rope_freqs); the band
    edges are Meta's (low 1, high 4, original context 8192) in every published 3.1/3.2 model.
    """
    from ...model import rope_frequencies

    if list(rope_freqs.shape) != [args.head_dim // 2]:
        raise InputError(f"{source}: {ROPE_FREQS} has shape {list(rope_freqs.shape)}, expected "
                         f"[{args.head_dim // 2}] (one divisor per RoPE pair)")
    got = rope_freqs.double()
    if torch.all(got == 1):
        return args
    try:
        scaled = args.replace(use_scaled_rope=True, rope_scale_factor=float(got.max()), rope_low_freq_factor=1.0,
                              rope_high_freq_factor=4.0, rope_original_max_seq_len=8192)
    except InputError as e:  # a largest divisor that is 0, negative, infinite or NaN
        raise InputError(f"{source}: {ROPE_FREQS}: {e}") from None
    want = rope_frequencies(args, torch.float64) / rope_frequencies(scaled, torch.float64)  # [d/2]
    if not torch.allclose(got, want, rtol=1e-5, atol=0):
        j = int((got - want).abs().argmax())
        raise InputError(f"{source}: {ROPE_FREQS}[{j}] is {got[j]:.6g}, Llama 3.1 scaling with factor "
                         f"{scaled.rope_scale_factor:g} (low 1, high 4, original context 8192) gives {want[j]:.6g}")
    return scaled


# --- the tensors ---

class GGUFWeights(Mapping):
    """The file's weights by Meta's name. Listing, `len` and `[name]` read no data: a float tensor
    is a view of the file's bytes, a quantized one a `Quantized` over its blocks."""

    def __init__(self, path: Path, tensors: dict[str, TensorInfo]):
        """`tensors`: Meta's name -> where its bytes lie in the file (header.TensorInfo)."""
        self.path, self.tensors, self._mapped = path, tensors, {}
        self.qtypes = {name: type_name(t) for name, t in tensors.items()}  # e.g. 'Q4_K'

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self._mapped:
            t, qtype = self.tensors[name], self.qtypes[name]  # KeyError for an unknown name, as a dict
            blocks = torch.from_numpy(tensor_bytes(self.path, t))  # [rows, bytes a row], copy-on-write: never written
            if qtype in FLOATS:  # the bytes as they lie in the file
                self._mapped[name] = blocks.view(FLOATS[qtype]).reshape(t.shape)
            else:
                self._mapped[name] = Quantized(blocks, qtype, t.shape)
        return self._mapped[name]

    def __iter__(self):
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __contains__(self, name) -> bool:
        return name in self.tensors


def load_gguf_checkpoint(path: Path, progress: bool = False) -> Checkpoint:
    """A Llama .gguf file as a Checkpoint: its weights, its metadata's ModelArgs, its own tokenizer."""
    args, weights, metadata = read_gguf(path)
    tokenizer = checked_tokenizer(path, args, path, tokenizer_from_gguf(metadata, path))
    return Checkpoint(path, args, weights, tokenizer)


def read_gguf(path: Path) -> tuple[ModelArgs, GGUFWeights, dict]:
    """(args, weights in Meta's names, metadata) of a Llama .gguf file, memory-mapped.

    Every problem is found here, before any compute, as one line naming the file and the key
    or tensor: not a GGUF file, truncated, another architecture, a missing key, a block type
    that cannot be expanded, a tensor whose shape the metadata does not imply.
    """
    head = read_head(path)
    if not head.startswith(MAGIC):
        what = "is empty" if not head else f"starts with {head[:8]!r}"
        raise InputError(f"{path}: not a GGUF file (those start with b'GGUF'): it {what}")
    header = read_header(path)
    metadata = header.metadata
    by_gguf = {t.name: t for t in header.tensors}
    rope_freqs = by_gguf.pop(ROPE_FREQS, None)
    if rope_freqs is not None:
        if type_name(rope_freqs) != "F32":
            raise InputError(f"{path}: tensor {ROPE_FREQS} is {type_name(rope_freqs)}; llama.cpp writes it as F32")
        rope_freqs = torch.from_numpy(tensor_bytes(path, rope_freqs).reshape(-1).view(np.float32).copy())
    args = args_from_gguf(metadata, str(path), rope_freqs)
    expected, tensors = expected_shapes(args), {}
    for gguf_name, t in by_gguf.items():
        name = meta_name(gguf_name)
        if name not in expected:
            raise InputError(f"{path}: unexpected tensor {shown(gguf_name)} (llama.block_count is {args.n_layers})")
        if type_name(t) not in FLOATS and type_name(t) not in QUANTIZED:
            raise InputError(f"{path}: tensor {shown(gguf_name)} is {type_name(t)}, which is not read "
                             f"(readable: {', '.join([*FLOATS, *QUANTIZED])}); use a file quantized as Q4_K_M or Q8_0")
        if t.shape != expected[name]:
            raise InputError(f"{path}: tensor {shown(gguf_name)} has shape {list(t.shape)}, the metadata implies "
                             f"{list(expected[name])} (dim={args.dim}, n_heads={args.n_heads}, n_kv_heads="
                             f"{args.n_kv_heads}, hidden_dim={args.hidden_dim}, vocab_size={args.vocab_size})")
        tensors[name] = t
    missing = [n for n in expected if n not in tensors and n not in OPTIONAL]
    if missing:
        back = {meta: gguf for gguf, meta in GGUF_NAMES.items()}
        layer = re.search(r"\.(\d+)\.", missing[0])
        generic = back[re.sub(r"\.\d+\.", ".N.", missing[0])]
        raise InputError(f"{path}: missing tensor {generic.replace('.N.', f'.{layer.group(1)}.') if layer else generic} "
                         f"({len(missing)} missing)")
    return args, GGUFWeights(path, tensors), metadata

