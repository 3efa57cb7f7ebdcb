"""Text to ids in linear time, with a deadline (#31, class 3): a byte the vocabulary lacks costs
no quadratic fallback, a pre-tokenizer regex from a file either compiles or is refused in one
line, and one that backtracks without end stops at its deadline."""

import time

import pytest

from reference.errors import InputError
from reference.text import vocab
from reference.text.vocab import NORMAL, BPETokenizer, bytes_to_unicode


def byte_tokenizer(*patterns: str) -> BPETokenizer:
    """A vocabulary of the 256 bytes alone, split by `patterns` (the last one tiktoken's)."""
    tokens = list(bytes_to_unicode().values())
    return BPETokenizer(source="/models/x/tokenizer.json", tokens=tokens, types=[NORMAL] * 256, merges=[],
                        pre="test", patterns=patterns, bos_id=None, eos_id=0, add_bos=False)


@pytest.mark.parametrize("char", ["\U00040000", "\x04", "!\x04"], ids=["U+40000", "x04", "!x04"])
def test_a_long_run_of_a_character_the_vocabulary_lacks_a_byte_of_encodes_in_linear_time(smollm2, char):
    def seconds(n):
        start = time.perf_counter()
        smollm2.tokenizer.encode(char * n, bos=False, eos=False)
        return time.perf_counter() - start

    seconds(100)  # warm
    assert seconds(60_000) < 1.0  # minutes when each piece went through the quadratic from-scratch BPE


def test_the_lossy_path_still_merges_across_a_dropped_byte(smollm2):
    t = smollm2.tokenizer
    assert t.encode("!\x04!", bos=False, eos=False) == t.encode("!!", bos=False, eos=False)


@pytest.mark.parametrize("pattern", [r"(unclosed", r"\p{NoSuchProperty}", r"a{2,1}"])
def test_a_pre_tokenizer_regex_that_does_not_compile_is_one_line(pattern):
    with pytest.raises(InputError) as e:
        byte_tokenizer(pattern)
    assert str(e.value).startswith("/models/x/tokenizer.json: ") and "does not compile" in str(e.value)
    assert "\n" not in str(e.value)


def test_a_regex_that_backtracks_without_end_stops_at_its_deadline(monkeypatch):
    monkeypatch.setattr(vocab, "REGEX_TIMEOUT_S", 0.5)
    t = byte_tokenizer(r"(a|a)+$", r"[\s\S]+")  # the first runs in Python's regex, the last in tiktoken
    start = time.monotonic()
    with pytest.raises(InputError, match="ran past 0.5 s on this text"):
        t.encode("a" * 40 + "!", bos=False, eos=False)
    assert time.monotonic() - start < 5
