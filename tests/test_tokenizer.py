"""The tokenizer's ids: known ids, special tokens, round trips, agreement with Meta's own
`llama_models` Tokenizer, and the errors for ids or text it cannot take.

Everything runs offline on the real tokenizer.model that `pip install llama-models` ships;
tests/test_tokenizer_file.py checks how that file is found and what is wrong with a bad one.
"""

import time

import pytest
import tiktoken.load
from hypothesis import given, settings
from hypothesis import strategies as st
from llama_models.llama3.tokenizer import Tokenizer as MetaTokenizer

from reference.errors import InputError
from reference.text.tokenizer import find_tokenizer_model, load_tokenizer, read_bpe_ranks, split_long_runs

# No example database: hypothesis would otherwise write .hypothesis/ into the working directory.
PROPERTY = settings(max_examples=200, deadline=None, database=None)

PACKAGED = find_tokenizer_model()  # llama_models' copy


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def meta():
    return MetaTokenizer(PACKAGED)


# --- known ids ---

def test_walkthrough_prompt_encodes_to_known_ids(tok):
    prompt = "the answer to the ultimate question of life, the universe, and everything is "
    assert tok.encode(prompt, bos=True, eos=False) == [
        128000, 1820, 4320, 311, 279, 17139, 3488, 315, 2324, 11, 279, 15861, 11, 323, 4395, 374, 220]


def test_decode_2983_is_42(tok):
    assert tok.decode([2983]) == "42"


def test_bos_and_eos_wrap_the_ids(tok):
    assert tok.encode("This is a test sentence.", bos=True, eos=True) == [
        128000, 2028, 374, 264, 1296, 11914, 13, 128001]


def test_empty_text_is_no_ids(tok):
    assert tok.encode("", bos=False, eos=False) == []
    assert tok.encode("", bos=True, eos=True) == [128000, 128001]


# --- special tokens ---

@pytest.mark.parametrize("name, id", [
    ("<|begin_of_text|>", 128000), ("<|end_of_text|>", 128001),
    ("<|reserved_special_token_0|>", 128002), ("<|reserved_special_token_1|>", 128003),
    ("<|finetune_right_pad_id|>", 128004), ("<|step_id|>", 128005),
    ("<|start_header_id|>", 128006), ("<|end_header_id|>", 128007),
    ("<|eom_id|>", 128008), ("<|eot_id|>", 128009), ("<|python_tag|>", 128010),
    ("<|image|>", 128011), ("<|reserved_special_token_2|>", 128012),
    ("<|reserved_special_token_245|>", 128255),
])
def test_special_token_has_metas_id(tok, name, id):
    assert tok.special_tokens[name] == id
    assert tok.token_text(id) == name


def test_special_tokens_are_256_contiguous_ids_after_the_ranks(tok):
    assert sorted(tok.special_tokens.values()) == list(range(128_000, 128_256))
    assert tok.n_words == 128_256


def test_special_tokens_match_metas(tok, meta):
    assert tok.special_tokens == meta.special_tokens


def test_named_ids_and_stop_tokens(tok):
    assert (tok.bos_id, tok.eos_id, tok.start_header_id, tok.end_header_id, tok.eom_id, tok.eot_id) == (
        128000, 128001, 128006, 128007, 128008, 128009)
    assert tok.stop_tokens == {128001, 128008, 128009}


def test_special_token_text_is_plain_text_by_default(tok):
    ids = tok.encode("<|eot_id|>", bos=False, eos=False)
    assert 128009 not in ids
    assert tok.decode(ids) == "<|eot_id|>"


@pytest.mark.parametrize("allowed", [{"<|eot_id|>"}, "all"])
def test_special_token_text_is_special_when_allowed(tok, allowed):
    assert tok.encode("hi<|eot_id|>", bos=False, eos=False, allowed_special=allowed) == [6151, 128009]


def test_only_the_allowed_special_tokens_are_special(tok):
    ids = tok.encode("<|eom_id|><|eot_id|>", bos=False, eos=False, allowed_special={"<|eot_id|>"})
    assert ids[-1] == 128009 and 128008 not in ids


@pytest.mark.parametrize("allowed", [{"<|not_a_token|>"}, "<|eot_id|>"])
def test_bad_allowed_special_is_an_input_error(tok, allowed):
    with pytest.raises(InputError, match="allowed_special"):
        tok.encode("x", bos=False, eos=False, allowed_special=allowed)


# --- round trips ---

@pytest.mark.parametrize("char", ["^", "a"])
def test_million_char_run_encodes_and_decodes_back(tok, char):
    text = char * 10**6
    start = time.perf_counter()
    ids = tok.encode(text, bos=False, eos=False)
    seconds = time.perf_counter() - start
    assert tok.decode(ids) == text
    assert seconds < 10, f"encoding 10**6 {char!r} took {seconds:.1f} s"


@pytest.mark.parametrize("text", [
    "日本語のテキストを分割します。", "中文分词测试", "한국어 문장입니다",
    "مرحبا بالعالم", "नमस्ते दुनिया", "Привет, мир!", "Ελληνικά",
    "emoji 😀👍🏽👨‍👩‍👧 flags 🇫🇷", "def f(x):\n\treturn x ** 2  # square\n",
    "   leading and trailing   ", "\n\n\n\t\t  \r\n \u00a0\u3000", "naïve café – “quotes” …",
])
def test_decode_inverts_encode_on_multilingual_text(tok, text):
    assert tok.decode(tok.encode(text, bos=False, eos=False)) == text


@PROPERTY
@given(st.text())
def test_decode_inverts_encode_on_any_text(tok, text):
    assert tok.decode(tok.encode(text, bos=False, eos=False)) == text


def test_decode_replaces_a_split_character_and_decode_bytes_keeps_it(tok):
    ids = tok.encode("😀", bos=False, eos=False)
    assert len(ids) == 2
    assert "\ufffd" in tok.decode(ids[:1])
    assert tok.decode_bytes(ids[:1]) + tok.decode_bytes(ids[1:]) == "😀".encode()


def test_token_text_shows_partial_utf8_as_escapes(tok):
    first, _ = tok.encode("😀", bos=False, eos=False)
    assert tok.token_text(first) == "\\xf0\\x9f\\x98"


# --- agreement with Meta's implementation ---

AGREEMENT_TEXTS = [
    "", " ", "  ", "\n", "\n\n", "\r\n", "\t", "a", "A", "Hello, world!", "hello world",
    "HELLO WORLD", "I'm can't we've they're she'll he'd", "I'M CAN'T WE'VE", "1", "12", "123",
    "1234", "1234567890", "3.14159", "-42", "$1,000,000.00", "2024-05-01T12:00:00Z",
    "snake_case camelCase kebab-case", "https://example.com/a?b=c&d=e#f", "user@example.com",
    "def f(x):\n    return x + 1\n", "if (a && b) { c(); }", "    indented\n\tTabbed",
    "trailing spaces   ", "   leading spaces", "a\n\n\nb", "...!!!???", "«quotes» “curly” 'single'",
    "日本語", "中文测试", "한국어", "العربية", "हिन्दी", "Ελληνικά", "Русский текст", "😀👍🏽",
    "<|begin_of_text|>", "<|eot_id|>", "x<|eot_id|>y", "<|start_header_id|>user<|end_header_id|>",
    "<|reserved_special_token_7|>", "<|not_special|>", "<|", "|>",
    "a" * 60_000 + " " * 30_000 + "b",  # cut inside both runs, as Meta cuts
]


@pytest.mark.parametrize("text", AGREEMENT_TEXTS, ids=range(len(AGREEMENT_TEXTS)))
def test_encode_agrees_with_meta(tok, meta, text):
    # Meta's defaults (allowed_special=set(), disallowed_special=()) also treat special-token
    # text as plain text; spelled out here so a change of default there cannot hide a difference.
    assert tok.encode(text, bos=True, eos=True) == meta.encode(
        text, bos=True, eos=True, allowed_special=set(), disallowed_special=())


@PROPERTY
@given(st.text())
def test_encode_agrees_with_meta_on_any_text(tok, meta, text):
    assert tok.encode(text, bos=False, eos=False) == meta.encode(
        text, bos=False, eos=False, allowed_special=set(), disallowed_special=())


@PROPERTY
@given(st.text(alphabet="ab \n\t\u00a0\u2003", max_size=60), st.integers(1, 8))
def test_split_long_runs_cuts_where_meta_cuts(text, max_run):
    assert list(split_long_runs(text, max_run)) == list(
        MetaTokenizer._split_whitespaces_or_nonwhitespaces(text, max_run))


def test_ranks_match_tiktokens_loader(monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # "" turns off tiktoken's copy in the temp dir
    assert read_bpe_ranks(PACKAGED) == tiktoken.load.load_tiktoken_bpe(str(PACKAGED))


# --- bad input ---

@pytest.mark.parametrize("bad", [128_256, -1, 10**12])
def test_out_of_range_id_is_an_input_error_naming_it(tok, bad):
    for call in (tok.decode, tok.decode_bytes):
        with pytest.raises(InputError, match=f"token id {bad} is out of range"):
            call([1, bad])
    with pytest.raises(InputError, match=f"token id {bad} "):
        tok.token_text(bad)


@pytest.mark.parametrize("bad", [[1.5], ["7"], 7])
def test_non_integer_ids_are_an_input_error(tok, bad):
    with pytest.raises(InputError, match="integers"):
        tok.decode(bad)


@pytest.mark.parametrize("bad", [b"bytes", None, ["a", "list"]])
def test_encode_of_non_str_is_an_input_error(tok, bad):
    with pytest.raises(InputError, match="expects a str"):
        tok.encode(bad, bos=False, eos=False)
