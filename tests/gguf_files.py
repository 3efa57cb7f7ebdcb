"""Small GGUF files for the bad-input tests, written with gguf's own writer or by patching the
bytes of one: a tiny valid Llama (dim 16, 2 heads of 8, 1 KV head, SwiGLU 32, 1 layer, tied
output), and the ways to spoil it."""

import struct
import time
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFValueType as T, GGUFWriter

from reference.errors import InputError
from reference.formats import load_checkpoint
from reference.text.vocab import bytes_to_unicode

from helpers import one_line_error

FAST = 3.0  # seconds: a tiny file is read in milliseconds; this leaves room for a busy machine

# --- a tiny valid Llama GGUF: dim 16, 2 heads of 8, 1 KV head, SwiGLU 32, 1 layer, tied output ---

MERGES = ["Ġ t", "h e", "Ġt he"]
TOKENS = list(bytes_to_unicode().values()) + ["Ġt", "he", "Ġthe", "<|endoftext|>"]
V = len(TOKENS)  # 260
SHAPES = {"token_embd.weight": (V, 16), "output_norm.weight": (16,), "blk.0.attn_q.weight": (16, 16),
          "blk.0.attn_k.weight": (8, 16), "blk.0.attn_v.weight": (8, 16), "blk.0.attn_output.weight": (16, 16),
          "blk.0.ffn_gate.weight": (32, 16), "blk.0.ffn_down.weight": (16, 32), "blk.0.ffn_up.weight": (32, 16),
          "blk.0.attn_norm.weight": (16,), "blk.0.ffn_norm.weight": (16,)}


def valid_keys() -> dict:
    """Every key of the tiny file but general.architecture: key -> (type, value[, item type])."""
    return {
        "llama.block_count": (T.UINT32, 1), "llama.context_length": (T.UINT32, 64),
        "llama.embedding_length": (T.UINT32, 16), "llama.feed_forward_length": (T.UINT32, 32),
        "llama.attention.head_count": (T.UINT32, 2), "llama.attention.head_count_kv": (T.UINT32, 1),
        "llama.rope.freq_base": (T.FLOAT32, 10000.0), "llama.attention.layer_norm_rms_epsilon": (T.FLOAT32, 1e-5),
        "llama.vocab_size": (T.UINT32, V), "llama.rope.dimension_count": (T.UINT32, 8),
        "tokenizer.ggml.model": (T.STRING, "gpt2"), "tokenizer.ggml.pre": (T.STRING, "smollm"),
        "tokenizer.ggml.tokens": (T.ARRAY, TOKENS, T.STRING), "tokenizer.ggml.merges": (T.ARRAY, MERGES, T.STRING),
        "tokenizer.ggml.token_type": (T.ARRAY, [1] * (V - 1) + [3], T.INT32),
        "tokenizer.ggml.bos_token_id": (T.UINT32, V - 1), "tokenizer.ggml.eos_token_id": (T.UINT32, V - 1),
        "tokenizer.ggml.add_bos_token": (T.BOOL, False),
    }


def write_tiny(path: Path, keys: dict | None = None, drop=(), alignment=None, rope_freqs=None) -> Path:
    """The tiny file, written by gguf's own writer with `keys` (type, value[, item type]) as its metadata."""
    w = GGUFWriter(str(path), "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    for key, typed in (valid_keys() if keys is None else keys).items():
        if key not in drop:
            w.add_key_value(key, typed[1], typed[0], typed[2] if len(typed) > 2 else None)
    rng = np.random.default_rng(0)
    for name, shape in SHAPES.items():
        w.add_tensor(name, (rng.standard_normal(shape) * 0.1 + (len(shape) == 1)).astype(np.float32))
    if rope_freqs is not None:
        w.add_tensor("rope_freqs.weight", np.array(rope_freqs, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def with_key(path: Path, key: str, *typed) -> Path:
    return write_tiny(path, {**valid_keys(), key: typed})


def patched(path: Path, old: bytes, new: bytes, out: str = "bad.gguf") -> Path:
    """A copy of `path` with the one occurrence of `old` replaced by `new` (same length: offsets stay valid)."""
    data = path.read_bytes()
    assert data.count(old) == 1 and len(old) == len(new)
    (bad := path.with_name(out)).write_bytes(data.replace(old, new))
    return bad


def with_tensor_field(path: Path, name: str, field: str, packed: bytes) -> Path:
    """A copy of `path` with one field of tensor `name`'s entry ("n_dims", "last_ne" or "offset") overwritten."""
    data = bytearray(path.read_bytes())
    at = data.index(struct.pack("<Q", len(name)) + name.encode()) + 8 + len(name)  # its n_dims
    n_dims = struct.unpack_from("<I", data, at)[0]
    at += {"n_dims": 0, "last_ne": 4 + 8 * (n_dims - 1), "offset": 4 + 8 * n_dims + 4}[field]
    data[at:at + len(packed)] = packed
    (bad := path.with_name("bad.gguf")).write_bytes(bytes(data))
    return bad


def raw_gguf(path: Path, key: str, kind: int, value: bytes) -> Path:
    """A GGUF of one key and nothing else, written byte by byte: the value's GGUF type and bytes as given."""
    path.write_bytes(b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, len(key)) + key.encode() + struct.pack("<I", kind) + value)
    return path


def refused_fast(path: Path, *parts: str) -> str:
    """Loading `path` is refused in one line naming the file and every part, in seconds."""
    start = time.perf_counter()
    with pytest.raises(InputError) as excinfo:
        load_checkpoint(path)
    assert time.perf_counter() - start < FAST
    return one_line_error(excinfo, path.name, *parts)
