"""Bad GGUF input (#31): every key the project reads is checked by type and value as the header is
read (`keys.KEYS`), and what GGUFReader and llama.cpp refuse is refused: a key or tensor
listed twice, an alignment that is not a power of two, an array of arrays, a string that is not
UTF-8, a tensor outside the file or on another's bytes. Each is one line naming the file and the
key as the file spells it (`llama.block_count`, not `n_layers`), in well under a second; a fuzz
over the llama.* and tokenizer.* values finds nothing but a load or an InputError."""

import math
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from gguf import GGUFValueType as T
from hypothesis import HealthCheck, given, settings, strategies as st

from reference.errors import InputError
from reference.formats import load_checkpoint
from reference.formats.gguf.header import MAX_VALUES, read_header
from reference.formats.gguf.keys import KEYS

from gguf_files import (FAST, MERGES, TOKENS, V, patched, raw_gguf, refused_fast, valid_keys, with_key, with_tensor_field,
                        write_tiny)

@pytest.mark.parametrize("alignment", [None, 64])
def test_the_tiny_file_loads_and_encodes(tmp_path, alignment):
    ckpt = load_checkpoint(write_tiny(tmp_path / "tiny.gguf", alignment=alignment))
    assert (ckpt.args.dim, ckpt.args.n_layers, ckpt.args.vocab_size, ckpt.args.hidden_dim) == (16, 1, V, 32)
    assert ckpt.tokenizer.encode(" the", bos=False, eos=False) == [TOKENS.index("Ġthe")]


# --- each key the project reads: the wrong type, an impossible value ---

WRONG = {T.UINT32: (T.STRING, "4", "string '4'"), T.FLOAT32: (T.UINT32, 1, "uint32 1"),
         T.STRING: (T.UINT32, 1, "uint32 1"), T.BOOL: (T.UINT8, 1, "uint8 1"),
         (T.ARRAY, T.STRING): (T.ARRAY, [1, 2], "array of 2 int32", T.INT32),
         (T.ARRAY, T.INT32): (T.ARRAY, ["1"], "array of 1 string", T.STRING)}
RIGHT = {**valid_keys(), "general.alignment": (T.UINT32, 32), "general.architecture": (T.STRING, "llama"),
         "llama.attention.key_length": (T.UINT32, 8), "llama.attention.value_length": (T.UINT32, 8),
         "llama.rope.scaling.type": (T.STRING, "none"), "tokenizer.chat_template": (T.STRING, "{{ x }}")}


@pytest.mark.parametrize("key", sorted(KEYS))
def test_a_key_of_the_wrong_type_is_refused_by_its_name(tmp_path, key):
    right = RIGHT[key]
    kind, value, got, *item = WRONG[right[0] if right[0] != T.ARRAY else (T.ARRAY, right[2])]
    message = refused_fast(with_key(tmp_path / "w.gguf", key, kind, value, *item),
                           f": {key}: wrong type (got {got}); it should be ")
    assert "n_layers" not in message and "vocab_size must" not in message


@pytest.mark.parametrize("key, typed, says", [
    ("llama.block_count", (T.UINT32, 0), "block_count: wrong value (got uint32 0); it should be a positive integer"),
    ("llama.attention.layer_norm_rms_epsilon", (T.FLOAT32, math.nan), "epsilon: wrong value (got float32 nan)"),
    ("llama.attention.layer_norm_rms_epsilon", (T.FLOAT64, math.inf), "epsilon: wrong value (got float64 inf)"),
    ("llama.rope.freq_base", (T.FLOAT32, -1.0), "llama.rope.freq_base: wrong value (got float32 -1.0)"),
    ("tokenizer.ggml.eos_token_id", (T.INT32, -1), "tokenizer.ggml.eos_token_id: wrong value (got int32 -1)"),
    ("tokenizer.ggml.bos_token_id", (T.UINT32, V), f"bos_token_id: outside the vocabulary (got uint32 {V})"),
    ("tokenizer.ggml.token_type", (T.ARRAY, [1, 1], T.INT32), f"token_type: 2 entries for {V} tokens"),
    ("llama.vocab_size", (T.UINT32, V - 1), f"llama.vocab_size: smaller than the vocabulary (got uint32 {V - 1})"),
])
def test_a_value_of_the_right_type_but_impossible_is_refused_by_its_key(tmp_path, key, typed, says):
    refused_fast(with_key(tmp_path / "v.gguf", key, *typed), says)


@pytest.mark.parametrize("key, value, says", [
    ("llama.embedding_length", 15, "llama.embedding_length 15 is not divisible by llama.attention.head_count 2"),
    ("llama.block_count", 5000, "llama.block_count 5,000 is not a plausible model"),
    ("llama.attention.head_count_kv", 3, "head_count 2 is not a multiple of llama.attention.head_count_kv 3"),
])
def test_how_the_sizes_fit_together_is_said_with_the_files_keys(tmp_path, key, value, says):
    message = refused_fast(with_key(tmp_path / "f.gguf", key, T.UINT32, value), says)
    assert "n_heads" not in message and "n_layers" not in message


@pytest.mark.parametrize("divisors", [[1, math.nan, 1, 1], [1, 1, 1, 0], [1, 1, 1, -8], [1, 1, 1, math.inf]])
def test_rope_freqs_that_no_scaling_gives_are_refused_naming_the_tensor(tmp_path, divisors):
    refused_fast(write_tiny(tmp_path / "r.gguf", rope_freqs=divisors), "rope_freqs.weight")


@pytest.mark.parametrize("kind, value, got", [(4, 0, "uint32 0"), (5, -32, "int32 -32"), (4, 48, "uint32 48"),
                                              (5, 32, "int32 32"), (6, 32.0, "float32 32.0")])
def test_an_alignment_that_is_not_a_uint32_power_of_two_is_refused(tmp_path, kind, value, got):
    packed = struct.pack("<I" + {4: "I", 5: "i", 6: "f"}[kind], kind, value)
    bad = patched(write_tiny(tmp_path / "a.gguf", alignment=32), b"general.alignment" + struct.pack("<II", 4, 32),
                  b"general.alignment" + packed)
    refused_fast(bad, "general.alignment: wrong ", f"(got {got}); it should be a uint32 power of two")


# --- listed twice; tensors outside the file or on each other's bytes ---


@pytest.mark.parametrize("old, new, says", [
    (b"llama.block_counX", b"llama.block_count", "llama.block_count: listed twice"),
    (b"blk.0.attn_k.weight", b"blk.0.attn_q.weight", "tensor blk.0.attn_q.weight: listed twice")])
def test_a_key_or_tensor_listed_twice_is_refused(tmp_path, old, new, says):
    path = write_tiny(tmp_path / "d.gguf", {**valid_keys(), "llama.block_counX": (T.UINT32, 7)})
    refused_fast(patched(path, old, new), says)


def test_two_tensors_on_the_same_bytes_are_refused(tmp_path):
    header = read_header(path := write_tiny(tmp_path / "o.gguf"))
    q = next(t for t in header.tensors if t.name == "blk.0.attn_q.weight")
    inside_q = struct.pack("<Q", q.offset - header.data_offset + 32)
    bad = with_tensor_field(path, "blk.0.attn_k.weight", "offset", inside_q)
    refused_fast(bad, "tensor blk.0.attn_k.weight: overlaps tensor blk.0.attn_q.weight")


@pytest.mark.parametrize("field, value", [("offset", 1 << 40), ("last_ne", 1 << 62)])  # 16·2^62 values: int64 wraps
def test_a_tensor_outside_the_file_is_refused(tmp_path, field, value):
    bad = with_tensor_field(write_tiny(tmp_path / "e.gguf"), "blk.0.ffn_up.weight", field, struct.pack("<Q", value))
    refused_fast(bad, "tensor blk.0.ffn_up.weight needs bytes", "the file has")


def test_a_tensor_of_four_billion_dimensions_is_refused_unread(tmp_path):
    bad = with_tensor_field(write_tiny(tmp_path / "n.gguf"), "blk.0.ffn_up.weight", "n_dims", b"\xff" * 4)
    refused_fast(bad, "tensor blk.0.ffn_up.weight: too many dimensions (got 4,294,967,295)")


# --- strings and arrays ---


def test_a_token_that_is_not_utf8_is_refused(tmp_path):
    tokens = [*TOKENS[:-1], b"<|\xff\xfe|>"]
    refused_fast(with_key(tmp_path / "u.gguf", "tokenizer.ggml.tokens", T.ARRAY, tokens, T.STRING),
                 "tokenizer.ggml.tokens: not UTF-8", "\\xff\\xfe")


def nested(depth: int) -> bytes:
    return struct.pack("<IQ", T.ARRAY, 1) * (depth - 1) + struct.pack("<IQ", T.UINT32, 0)


@pytest.mark.parametrize("kind, value, says", [
    (T.ARRAY, nested(2), "an array of arrays (got items of type 9, array, at byte "),
    (T.ARRAY, nested(5000), "an array of arrays (got items of type 9, array, at byte "),  # no recursion
    (T.STRING, struct.pack("<Q", 1 << 62) + b"llama", "runs past the end of the file (got a 4,611,686,018,427,387,"),
    (T.ARRAY, struct.pack("<IQ", T.UINT8, MAX_VALUES + 1) + bytes(MAX_VALUES + 1), "too many values"),
    (13, b"\0" * 8, "an unknown value type (got type 13)"),
], ids=["nested 2 deep", "nested 5000 deep", "a string longer than the file", "4M+1 values", "type 13"])
def test_a_value_gguf_cannot_hold_is_refused_by_its_key(tmp_path, kind, value, says):
    refused_fast(raw_gguf(tmp_path / "raw.gguf", "general.odd", kind, value), f"general.odd: {says}")


@pytest.mark.parametrize("count, length, got", [(V, 1 << 50, "a 1,125,899,906,842,624-byte string"),
                                                (1 << 60, 1, "an array of 1,152,921,504,606,846,976 values")])
def test_a_token_or_token_count_larger_than_the_file_is_refused_before_allocating(tmp_path, count, length, got):
    first = TOKENS[0].encode()
    start = struct.pack("<IQQ", T.STRING, V, len(first)) + first  # the tokens' item type and count, the first token
    bad = patched(write_tiny(tmp_path / "t.gguf"), start, struct.pack("<IQQ", T.STRING, count, length) + first)
    refused_fast(bad, f"tokenizer.ggml.tokens: runs past the end of the file (got {got}")


# --- the command line: exit 2, one line ---


@pytest.mark.parametrize("old, new, culprit", [
    (b"general.alignment\4\0\0\0\x20", b"general.alignment\4\0\0\0\0", "general.alignment"),  # 32 -> 0
    (b"bos_token_id\4\0\0\0", b"bos_token_id\6\0\0\0", "tokenizer.ggml.bos_token_id"),  # uint32 -> float32
    (b"blk.0.attn_k.weight", b"blk.0.attn_q.weight", "blk.0.attn_q.weight")], ids=["alignment 0", "float bos", "twice"])
def test_the_cli_refuses_a_bad_gguf_with_exit_2_and_one_line(tmp_path, old, new, culprit):
    path = patched(write_tiny(tmp_path / "good.gguf", alignment=32), old, new)
    done = subprocess.run([sys.executable, "-m", "reference", "walk", "--checkpoint", str(path), "--prompt", "hi"],
                          capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {path}: ") and culprit in lines[0], lines[0]


# --- fuzz: random types and values for the llama.* and tokenizer.* keys ---

INTS = {T.UINT8: (0, 255), T.INT8: (-128, 127), T.UINT16: (0, 65535), T.INT16: (-32768, 32767),
        T.UINT32: (0, 2**32 - 1), T.INT32: (-2**31, 2**31 - 1), T.UINT64: (0, 2**64 - 1), T.INT64: (-2**63, 2**63 - 1)}
TEXT = st.one_of(st.sampled_from(["gpt2", "llama", "smollm", "none", *TOKENS[-4:], *MERGES]), st.text(max_size=12),
                 st.binary(max_size=6))


@st.composite
def typed_values(draw):
    """(type, value[, item type]) as gguf's writer takes them: near-valid sizes most often, anything else too."""
    kind = draw(st.sampled_from([*INTS, T.FLOAT32, T.FLOAT64, T.BOOL, T.STRING, T.ARRAY]))
    if kind in INTS:
        low, high = INTS[kind]
        return kind, draw(st.one_of(st.integers(max(low, -2), min(high, 300)), st.integers(low, high)))
    if kind in (T.FLOAT32, T.FLOAT64):
        return kind, draw(st.floats(width=32 if kind == T.FLOAT32 else 64))
    if kind in (T.BOOL, T.STRING):
        return kind, draw(st.booleans() if kind == T.BOOL else TEXT)
    item = draw(st.sampled_from([T.INT32, T.UINT32, T.FLOAT32, T.STRING]))
    items = {T.INT32: st.integers(-3, V + 2), T.UINT32: st.integers(0, V + 2), T.FLOAT32: st.floats(width=32),
             T.STRING: TEXT}[item]
    return kind, draw(st.lists(items, min_size=1, max_size=6)), item


FUZZED = [*[k for k in valid_keys() if k.startswith(("llama.", "tokenizer."))], "llama.rope.scaling.type",
          "llama.attention.key_length", "tokenizer.chat_template"]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(FUZZED), typed_values(), min_size=1, max_size=4),
       dropped=st.sets(st.sampled_from(FUZZED), max_size=2))
def test_random_metadata_loads_or_is_refused_in_one_line_never_anything_else(changes, dropped):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_tiny(Path(tmp) / "fuzz.gguf", {**valid_keys(), **changes}, drop=dropped)
        start = time.perf_counter()
        try:
            load_checkpoint(path).tokenizer.encode("the cat", bos=True, eos=False)
        except InputError as e:
            assert "\n" not in str(e) and str(path) in str(e), str(e)
        assert time.perf_counter() - start < FAST
