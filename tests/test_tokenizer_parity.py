"""Three tokenizers, one answer: ours, Meta's own (`llama_models`) and Hugging Face's fast
tokenizer converted from the same tokenizer.model give identical ids on a corpus of more than
1,000 strings and on hypothesis-generated text, and decoding gives the text back.

tests/test_tokenizer.py checks ours against Meta's on hand-picked strings; this file adds the
corpus and the third, independent implementation: HF's `tokenizers` has its own regex engine
(Oniguruma) and its own BPE, where tiktoken has fancy-regex and its own, so agreement on
whitespace, digits and contractions is not a foregone conclusion.
"""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llama_models.llama3.tokenizer import Tokenizer as MetaTokenizer
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

from reference.text.tokenizer import PAT_STR, SPECIAL_TOKENS, find_tokenizer_model, load_tokenizer

PROPERTY = settings(max_examples=200, deadline=None, database=None)


def corpus() -> dict[str, list[str]]:
    """Deterministic test strings by kind: fragments of each script, combined at random (seed 0)."""
    r = random.Random(0)
    words = ("the answer to the ultimate question of life universe and everything is forty two "
             "Hitchhiker Guide Galaxy towel DON'T PANIC Mostly Harmless").split()
    kinds = {
        "english": lambda: " ".join(r.choice(words) for _ in range(r.randint(1, 14))) + r.choice(["", ".", "!", "?", ",", " "]),
        "contractions": lambda: " ".join(r.choice(["don't", "I'LL", "we've", "She'd", "it's", "they're", "I'm",
                                                   "y'all'd've", "rock 'n' roll", "o'clock", "'s", "''", "can’t",
                                                   "'tis", "Ma'am", "'LL", "'Re", "''s"]) for _ in range(r.randint(1, 6))),
        "cjk": lambda: r.choice(["", " "]).join(r.choice(["生命", "宇宙", "そして万物", "についての", "究極の疑問", "答えは",
                                                        "四十二", "。", "、", "「引用」", "カタカナ", "한국어", "문장입니다",
                                                        "中文句子", "（全角）", "ｈａｎｋａｋｕ"]) for _ in range(r.randint(1, 8))),
        "arabic": lambda: " ".join(r.choice(["الجواب", "هو", "اثنان وأربعون", "٤٢", "الحياة", "والكون", "مَرْحَبًا",
                                             "\u200f", "كتاب", "؟", "،", "١٢٣٤٥٦٧"]) for _ in range(r.randint(1, 8))),
        "hindi": lambda: " ".join(r.choice(["उत्तर", "बयालीस", "है", "जीवन", "ब्रह्मांड", "और", "सब कुछ", "।", "४२",
                                            "क्षत्रिय", "हिन्दी"]) for _ in range(r.randint(1, 8))),
        "emoji": lambda: r.choice(["", " "]).join(r.choice(["😀", "🙂", "🚀", "👩‍💻", "👨‍👩‍👧‍👦", "👍🏽", "🇯🇵", "🇪🇺", "1️⃣",
                                                          "❤️", "🏳️‍🌈", "🤖", "✨", "☕", "🧑🏿‍🚀", "#️⃣"])
                                                for _ in range(r.randint(1, 8))),
        "code": lambda: r.choice(["", "\n", "\n\n", "    "]).join(r.choice(["def f(x):\n    return x ** 2\n", "if (a !== b) { return -1; }", "for i in range(10):\n\tprint(i)",
                                  "#include <stdio.h>\nint main(void) { return 0; }", "x = [1, 2, 3]  # list",
                                  "SELECT * FROM t WHERE id <= 42;", "a->b <=> c && d || !e", "/* comment */ y += 1;",
                                  "    indented\n        twice\n", "λx.λy.x", "print(f'{answer=}')", "```python\nx\n```"])
                                                                 for _ in range(r.randint(1, 3))),
        "whitespace": lambda: "".join(r.choice([" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2003", "\u3000", "\x0b", "\x0c",
                                                "\u2028", "\x85", "word", "x"]) * r.randint(1, 60)
                                      for _ in range(r.randint(1, 5))),
        "numbers": lambda: r.choice(["", "-", "+", "$", "№", " "]) + r.choice([
            "".join(r.choice("0123456789") for _ in range(r.randint(1, 60))),
            f"{r.randint(0, 10**12):,}", f"{r.random() * 10**r.randint(0, 9):.{r.randint(1, 8)}f}",
            f"{r.random():.3e}", "１２３４５", "٣٫١٤", "१२३४", "x²+y³", "½ ¾", "Ⅻ"]),
        "special_token_text": lambda: r.choice(["", "text ", "\n"]).join(r.choice(
            [*SPECIAL_TOKENS[:12], "<|reserved_special_token_17|>", "<|eot_id", "<|", "|>", "<||>", "<|begin_of_text|>x"])
            for _ in range(r.randint(1, 4))),
    }
    out = {kind: list(dict.fromkeys(make() for _ in range(1000)))[:100] for kind, make in kinds.items()}
    fragments = [s for strings in out.values() for s in strings]
    out["mixed"] = ["".join(r.choice(fragments) for _ in range(r.randint(2, 5))) for _ in range(100)]
    return out


CORPUS = corpus()


@pytest.fixture(scope="module")
def ours():
    return load_tokenizer()


@pytest.fixture(scope="module")
def meta():
    return MetaTokenizer(find_tokenizer_model())


@pytest.fixture(scope="module")
def hf_fast(tmp_path_factory):
    """transformers' fast tokenizer, converted offline from the same tokenizer.model."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIKTOKEN_CACHE_DIR", "")  # read the file itself: no cached copy in /tmp
        converted = TikTokenConverter(vocab_file=str(find_tokenizer_model()), pattern=PAT_STR,
                                      extra_special_tokens=list(SPECIAL_TOKENS)).converted()
    path = tmp_path_factory.mktemp("hf-tokenizer") / "tokenizer.json"
    converted.save(str(path))
    # split_special_tokens: "<|eot_id|>" in text is plain text, as in ours and Meta's by default.
    return PreTrainedTokenizerFast(tokenizer_file=str(path), split_special_tokens=True,
                                   clean_up_tokenization_spaces=False)


def test_corpus_holds_over_1000_strings_of_every_kind():
    assert sum(map(len, CORPUS.values())) >= 1000
    assert {kind: len(strings) for kind, strings in CORPUS.items()} == dict.fromkeys(CORPUS, 100)


def test_hf_tokenizer_has_our_vocabulary_and_special_token_ids(ours, hf_fast):
    assert len(hf_fast) == ours.n_words == 128_256
    assert {name: hf_fast.convert_tokens_to_ids(name) for name in SPECIAL_TOKENS} == ours.special_tokens


@pytest.mark.parametrize("kind", CORPUS)
def test_ours_metas_and_hfs_ids_are_identical(kind, ours, meta, hf_fast):
    for text in CORPUS[kind]:
        a = ours.encode(text, bos=False, eos=False)
        b = meta.encode(text, bos=False, eos=False)
        c = hf_fast.encode(text, add_special_tokens=False)
        assert a == b == c, f"{text!r}: ours {a}, Meta's {b}, HF's {c}"


@pytest.mark.parametrize("kind", CORPUS)
def test_decode_inverts_encode(kind, ours, hf_fast):
    for text in CORPUS[kind]:
        ids = ours.encode(text, bos=False, eos=False)
        assert ours.decode(ids) == text, f"{text!r}: ours decodes {ids} to {ours.decode(ids)!r}"
        assert hf_fast.decode(ids) == text, f"{text!r}: HF decodes {ids} to {hf_fast.decode(ids)!r}"


@PROPERTY
@given(st.text())
def test_ours_and_hfs_ids_agree_on_any_text(ours, hf_fast, text):
    assert ours.encode(text, bos=False, eos=False) == hf_fast.encode(text, add_special_tokens=False)


# Where the two regex engines could disagree: Unicode whitespace classes, digit classes, the
# contractions' apostrophe, combining marks, and the pieces of special-token text.
TRICKY = st.sampled_from([" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x85", "\u00a0", "\u1680", "\u2003", "\u2028",
                          "\u202f", "\u3000", "\ufeff", "\u200b", "'", "’", "s", "T", "l", "a", "1", "²", "½", "١",
                          "१", "Ⅷ", "日", "😀", "\u0301", "<", "|", ">", ".", "_", "\x00"])


@PROPERTY
@given(st.text(alphabet=TRICKY, max_size=40))
def test_ours_metas_and_hfs_ids_agree_on_whitespace_digits_and_apostrophes(ours, meta, hf_fast, text):
    a = ours.encode(text, bos=False, eos=False)
    assert a == meta.encode(text, bos=False, eos=False) == hf_fast.encode(text, add_special_tokens=False)
    assert ours.decode(a) == text
