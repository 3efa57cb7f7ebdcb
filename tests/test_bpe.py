"""reference/bpe.py: the from-scratch merge loop, on the toy corpus and against tiktoken."""

from pathlib import Path

import pytest

from reference.text import bpe
from reference.text.tokenizer import load_tokenizer, read_bpe_ranks

TOY = ["ab", "bc", "bcd", "cde"]


@pytest.fixture(scope="module")
def llama3():
    tokenizer = load_tokenizer()
    return tokenizer, read_bpe_ranks(tokenizer.path)


def test_merge_replaces_every_occurrence_left_to_right():
    assert bpe.merge([b"a", b"a", b"a"], (b"a", b"a")) == [b"aa", b"a"]
    assert bpe.merge([b"b", b"c", b"d", b"b", b"c"], (b"b", b"c")) == [b"bc", b"d", b"bc"]


def test_training_on_the_toy_corpus_merges_the_most_frequent_pair_first():
    assert bpe.train(TOY, n_merges=10) == [(b"b", b"c"), (b"a", b"b"), (b"bc", b"d"), (b"c", b"d"), (b"cd", b"e")]


def test_training_stops_when_every_word_is_one_token():
    assert len(bpe.train(TOY, n_merges=100)) == 5


def test_encoding_follows_the_learned_merge_order():
    ranks = bpe.ranks_from_merges(bpe.train(TOY, n_merges=10))
    assert bpe.encode_piece(b"abcde", ranks) == [ord("a"), ranks[b"bcd"], ord("e")]


def test_split_cuts_words_numbers_and_punctuation():
    assert bpe.split("it's 42!") == ["it", "'s", " ", "42", "!"]


@pytest.mark.parametrize("text", [
    "the answer to the ultimate question of life, the universe, and everything is ",
    "日本語のテキスト، مرحبا بالعالم 😀 नमस्ते",
    "don't WON'T 1234567890 3.14159\n\n\t  tabs and   spaces  ",
    "def f(x):\n    return x ** 2  # code\n",
])
def test_from_scratch_bpe_gives_tiktokens_ids(llama3, text):
    tokenizer, ranks = llama3
    assert bpe.encode(text, ranks) == tokenizer.encode(text, bos=False, eos=False)


def test_from_scratch_bpe_gives_tiktokens_ids_on_the_readme(llama3):
    tokenizer, ranks = llama3
    text = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert bpe.encode(text, ranks) == tokenizer.encode(text, bos=False, eos=False)
