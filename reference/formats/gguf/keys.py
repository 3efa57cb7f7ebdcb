"""GGUF's value types, and what each metadata key the project reads must hold (`KEYS`).

`header.read_header` reads every value with its type; `checked_keys` then holds each key in
`KEYS` to the type and value it must be, and the tokenizer's keys to each other, so that one
line names the file, the key as the file spells it, what it holds and what it should.
"""

from __future__ import annotations

import math
from pathlib import Path

from ...errors import InputError, shown

# GGUF's value types: the struct code of each scalar; 8 is a string, 9 an array of values.
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
STRING, ARRAY = 8, 9
TYPE_NAMES = {0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32", 6: "float32", 7: "bool",
              8: "string", 9: "array", 10: "uint64", 11: "int64", 12: "float64"}

INTS = {(t,) for t in (0, 1, 2, 3, 4, 5, 10, 11)}  # any width: llama.cpp writes uint32
FLOATS = {(6,), (12,)}  # float32 (what llama.cpp writes) or float64
COUNT = (INTS, lambda v: v >= 1, "a positive integer")
POSITIVE = (FLOATS, lambda v: math.isfinite(v) and v > 0, "a positive finite float")
TEXT = ({(STRING,)}, None, "a string")
TOKEN_ID = (INTS, lambda v: v >= 0, "a token id, an integer from 0 up")
# key -> (the types it may be stored as, a test of its value or None, what it should be)
KEYS = {
    "general.alignment": ({(4,)}, lambda v: v > 0 and v & (v - 1) == 0,  # GGUFReader and llama.cpp: uint32 only
                          "a uint32 power of two, such as 32 (the default)"),
    **dict.fromkeys([f"llama.{name}" for name in (
        "block_count", "context_length", "embedding_length", "feed_forward_length", "vocab_size",
        "attention.head_count", "attention.head_count_kv", "attention.key_length", "attention.value_length",
        "rope.dimension_count")], COUNT),
    **dict.fromkeys(["llama.attention.layer_norm_rms_epsilon", "llama.rope.freq_base"], POSITIVE),
    **dict.fromkeys(["general.architecture", "llama.rope.scaling.type", "tokenizer.ggml.model", "tokenizer.ggml.pre",
                     "tokenizer.chat_template"], TEXT),
    "tokenizer.ggml.tokens": ({(ARRAY, STRING)}, None, "an array of strings, one per token"),
    "tokenizer.ggml.merges": ({(ARRAY, STRING)}, None, "an array of strings such as 'Ġ t'"),
    "tokenizer.ggml.token_type": ({(ARRAY, t) for (t,) in INTS}, None, "an array of integers, one per token"),
    **dict.fromkeys(["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"], TOKEN_ID),
    "tokenizer.ggml.add_bos_token": ({(7,)}, None, "a bool"),
}


def _got(kind: tuple, value) -> str:
    """'uint32 30', "string '30'", 'array of 3 int32': a value as the file holds it, for an error."""
    if kind[0] == ARRAY:
        return f"array of {len(value):,} {TYPE_NAMES.get(kind[1], kind[1])}"
    return f"{TYPE_NAMES[kind[0]]} {shown(repr(value), 60)}"


def checked_keys(path: Path, metadata: dict, kinds: dict) -> None:
    """Every key in KEYS of the type and value it must be, and the tokenizer's keys agreeing with each other."""
    for key, (types, test, should) in KEYS.items():
        if key in metadata:
            kind, value = kinds[key], metadata[key]
            if kind not in types or (test is not None and not test(value)):
                problem = "wrong type" if kind not in types else "wrong value"
                raise InputError(f"{path}: {key}: {problem} (got {_got(kind, value)}); it should be {should}")
    if "tokenizer.ggml.tokens" not in metadata:
        return
    n, types = len(metadata["tokenizer.ggml.tokens"]), metadata.get("tokenizer.ggml.token_type")
    if types is not None and len(types) != n:
        raise InputError(f"{path}: tokenizer.ggml.token_type: {len(types):,} entries for {n:,} tokens (got "
                         f"{_got(kinds['tokenizer.ggml.token_type'], types)}); it should have one per token")
    for key in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
        if key in metadata and metadata[key] >= n:
            raise InputError(f"{path}: {key}: outside the vocabulary (got {_got(kinds[key], metadata[key])}); "
                             f"it should be a token id below {n:,}, the number of tokenizer.ggml.tokens")
    if metadata.get("llama.vocab_size", n) < n:  # a token id >= vocab_size would index past the embedding table
        raise InputError(f"{path}: llama.vocab_size: smaller than the vocabulary (got "
                         f"{_got(kinds['llama.vocab_size'], metadata['llama.vocab_size'])}); "
                         f"it should be at least {n:,}, the number of tokenizer.ggml.tokens")
