"""vocab.py, vocab_files.py and chat.py: the vocabulary a GGUF or tokenizer.json carries, run by
tiktoken with llama.cpp's pre-tokenizers, gives the model's own ids; chat templates give the ids
transformers' apply_chat_template gives.

SmolLM2's own tokenizer cuts every digit off before GPT-2's pattern runs (a Digits step, then
ByteLevel). transformers' converter for GGUF files leaves the Digits step out, so its ids for
"  42" are not SmolLM2's; the comparisons below use transformers' tokenizer with SmolLM2's
pre-tokenizer put back (and llama.cpp agrees with it: the same sequence of regexes).
"""

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.text.chat import chat_prompt, llama3_chat_tokens, render_chat
from reference.errors import InputError
from reference.text.tokenizer import SPECIAL_TOKENS, find_tokenizer_model, load_tokenizer
from reference.text.vocab_files import tokenizer_from_gguf, tokenizer_from_json

from test_tokenizer_parity import CORPUS

PROPERTY = settings(max_examples=200, deadline=None, database=None)
LLAMA3_CHAT_TEMPLATE = (  # Meta-Llama-3-8B-Instruct's tokenizer_config.json
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")


@pytest.fixture(scope="module")
def smollm2_true(smollm2_hf_tokenizer):
    """transformers' tokenizer from the GGUF with SmolLM2's own pre-tokenizer (its tokenizer.json's)."""
    from tokenizers import pre_tokenizers

    true = copy.deepcopy(smollm2_hf_tokenizer)
    true.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    true.split_special_tokens = True  # "<|im_end|>" typed in text is text, as in ours
    return true


@pytest.fixture(scope="module")
def llama3_gguf_vocab():
    """Llama 3's tokenizer.model as a GGUF carries it: byte-alphabet tokens, merges (every split
    of a token into two, by rank, as transformers' TikTokenConverter writes them), control tokens."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    path = str(find_tokenizer_model())
    vocab, merges = TikTokenConverter(vocab_file=path).extract_vocab_merges_from_model(path)
    tokens = [None] * len(vocab)
    for token, rank in vocab.items():
        tokens[rank] = token
    metadata = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "llama-bpe",
                "tokenizer.ggml.tokens": tokens + list(SPECIAL_TOKENS),
                "tokenizer.ggml.token_type": [1] * len(vocab) + [3] * len(SPECIAL_TOKENS),
                "tokenizer.ggml.merges": [f"{a} {b}" for a, b in merges], "tokenizer.ggml.bos_token_id": 128000,
                "tokenizer.ggml.eos_token_id": 128009, "tokenizer.ggml.add_bos_token": True,
                "tokenizer.chat_template": LLAMA3_CHAT_TEMPLATE}
    return tokenizer_from_gguf(metadata, "Meta-Llama-3-8B-Instruct.gguf")


# --- SmolLM2 ---


@pytest.mark.parametrize("kind", CORPUS)
def test_smollm2_ids_equal_its_own_tokenizer_on_the_corpus(kind, smollm2, smollm2_true):
    for text in CORPUS[kind]:
        ours = smollm2.tokenizer.encode(text, bos=False, eos=False)
        assert ours == smollm2_true.encode(text, add_special_tokens=False), text


@PROPERTY
@given(st.text())
def test_smollm2_ids_equal_its_own_tokenizer_on_any_text(smollm2, smollm2_true, text):
    assert smollm2.tokenizer.encode(text, bos=False, eos=False) == smollm2_true.encode(text, add_special_tokens=False)


def test_transformers_gguf_converter_leaves_out_smollms_digit_split(smollm2, smollm2_hf_tokenizer, smollm2_true):
    """Why the comparisons above put SmolLM2's pre-tokenizer back: "  42" is "  " + "4" + "2"."""
    ours = smollm2.tokenizer.encode("  42", bos=False, eos=False)
    assert ours == smollm2_true.encode("  42", add_special_tokens=False) == [256, 36, 34]
    assert smollm2_hf_tokenizer.encode("  42", add_special_tokens=False) == [216, 216, 36, 34]


def test_smollm2_adds_no_bos_and_stops_at_im_end(smollm2):
    tok = smollm2.tokenizer
    assert tok.encode("Hello world", bos=True, eos=False) == [19556, 905]
    assert tok.special_tokens["<|im_end|>"] in tok.stop_tokens and tok.eos_id == 2


def test_special_token_text_stays_text_unless_allowed(smollm2):
    tok = smollm2.tokenizer
    assert tok.encode("<|im_end|>", bos=False, eos=False) != [2]
    assert tok.encode("<|im_end|>", bos=False, eos=False, allowed_special={"<|im_end|>"}) == [2]
    assert tok.decode(tok.encode("a <|im_end|> b", bos=False, eos=False)) == "a <|im_end|> b"


@pytest.mark.parametrize("system", [None, "You are a pirate."])
def test_smollm2_chat_prompt_equals_transformers_apply_chat_template(smollm2, smollm2_hf_tokenizer, system):
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": "What is the capital of France?"}]
    theirs = smollm2_hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    theirs = theirs["input_ids"] if isinstance(theirs, dict) or hasattr(theirs, "keys") else theirs
    assert chat_prompt(smollm2.tokenizer, "What is the capital of France?", system) == list(theirs)


def test_smollm2_template_adds_its_own_system_prompt(smollm2):
    text = render_chat(smollm2.tokenizer.chat_template, [{"role": "user", "content": "Hi"}],
                       bos_token="<|im_start|>", eos_token="<|im_end|>")
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_a_smollm2_tokenizer_json_reads_as_the_gguf_vocabulary(smollm2, smollm2_true, tmp_path):
    smollm2_true.save_pretrained(tmp_path)
    from_json = tokenizer_from_json(tmp_path / "tokenizer.json")
    for text in CORPUS["numbers"] + CORPUS["whitespace"] + CORPUS["code"]:
        assert from_json.encode(text, bos=False, eos=False) == smollm2.tokenizer.encode(text, bos=False, eos=False)


# --- Llama 3 from a GGUF's vocabulary ---


@pytest.mark.parametrize("kind", CORPUS)
def test_a_llama3_gguf_vocabulary_gives_exactly_the_ids_of_tokenizer_model(kind, llama3_gguf_vocab):
    reference = load_tokenizer()
    for text in CORPUS[kind]:
        assert llama3_gguf_vocab.encode(text, bos=True, eos=False) == reference.encode(text, bos=True, eos=False), text


def test_a_llama3_gguf_vocabulary_has_tokenizer_models_specials_and_stops(llama3_gguf_vocab):
    reference = load_tokenizer()
    assert llama3_gguf_vocab.special_tokens == reference.special_tokens
    assert llama3_gguf_vocab.stop_tokens == reference.stop_tokens and llama3_gguf_vocab.n_words == 128_256


@pytest.mark.parametrize("system", [None, "Be brief."])
def test_llama3_chat_template_gives_metas_chat_format(llama3_gguf_vocab, system):
    from llama_models.llama3.chat_format import ChatFormat
    from llama_models.llama3.tokenizer import Tokenizer as MetaTokenizer
    from llama_models.datatypes import RawMessage

    prompt = "Why is the sky blue? One sentence."
    ours = chat_prompt(llama3_gguf_vocab, prompt, system)
    assert ours == llama3_chat_tokens(load_tokenizer(), prompt, system)
    messages = ([RawMessage(role="system", content=system)] if system else []) + [RawMessage(role="user", content=prompt)]
    metas = ChatFormat(MetaTokenizer(find_tokenizer_model())).encode_dialog_prompt(messages).tokens
    assert ours == metas


# --- what is refused ---


def test_a_sentencepiece_vocabulary_is_refused_by_name(llama3_gguf_vocab):
    with pytest.raises(InputError, match="tokenizer.ggml.model = 'llama' is a SentencePiece tokenizer"):
        tokenizer_from_gguf({"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ["a"]}, "m.gguf")


def test_an_unknown_pre_tokenizer_is_refused_by_name():
    with pytest.raises(InputError, match="tokenizer.ggml.pre = 'qwen2' is not a known pre-tokenizer"):
        tokenizer_from_gguf({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "qwen2"}, "m.gguf")
