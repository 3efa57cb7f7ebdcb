"""reference/generate.py and `python -m reference generate`: the KV cache, sampling, stopping,
the chat format and streaming text."""

import json

import pytest
import torch

from reference import batched
from reference.cli import main
from reference.errors import InputError
from reference.batched import KVCache
from reference.text.chat import llama3_chat_tokens as chat_tokens
from reference.generate import TextStream, generate, sample_top_p
from reference.text.tokenizer import load_tokenizer

PROMPT = [128000, 1820, 4320, 311, 279, 17139, 3488, 315, 2324, 11, 279, 15861, 11, 323, 4395, 374, 220]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def cached(tokens, start, tiny, cache, dtype=torch.float32):
    """The next token's logits [V] after `tokens` at positions start …, through `cache`."""
    return batched.forward(tokens, tiny.weights, tiny.args, dtype=dtype, cache=cache, start=start, last_only=True)[0]


def run(tiny, n, **options):
    return list(generate(PROMPT, tiny.weights, tiny.args, max_new_tokens=n, **options))


@pytest.fixture(scope="module")
def greedy(tiny):
    """32 greedy tokens after PROMPT on the tiny checkpoint, with the KV cache (shared: each costs time)."""
    return run(tiny, 32, temperature=0)


# --- the KV cache ---


def test_prefill_logits_equal_the_full_forward_pass(tiny):
    cache = KVCache.allocate(tiny.args, len(PROMPT), torch.float32)
    logits = cached(torch.tensor(PROMPT), 0, tiny, cache)
    torch.testing.assert_close(logits, batched.forward(torch.tensor(PROMPT), tiny.weights, tiny.args)[-1])


def test_causal_mask_is_right_when_fewer_queries_than_keys(tiny):
    """Prefill in two chunks (5 queries against 17 keys the second time) equals one prefill."""
    tokens = torch.tensor(PROMPT)
    whole = cached(tokens, 0, tiny, KVCache.allocate(tiny.args, 17, torch.float64), dtype=torch.float64)
    cache = KVCache.allocate(tiny.args, 17, torch.float64)
    cached(tokens[:12], 0, tiny, cache, dtype=torch.float64)
    chunked = cached(tokens[12:], 12, tiny, cache, dtype=torch.float64)
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)


def test_cached_and_uncached_greedy_generation_agree_token_for_token(tiny, greedy):
    assert run(tiny, 24, temperature=0, kv_cache=False) == greedy[:24]


def test_cached_and_uncached_sampling_agree_token_for_token(tiny):
    assert run(tiny, 8, temperature=1.0, seed=7) == run(tiny, 8, temperature=1.0, seed=7, kv_cache=False)


def test_the_cache_is_sized_to_the_prompt_and_new_tokens_not_the_context(tiny):
    """A legal max_seq_len of 16M positions would need 16 GB of cache for the tiny model; 4 new
    tokens need 20 positions (#14, class 4)."""
    import resource
    from dataclasses import replace

    huge = replace(tiny.args, max_seq_len=1 << 24)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    assert len(list(generate(PROMPT, tiny.weights, huge, max_new_tokens=4, temperature=0))) == 4
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 1 << 20  # under 1 GiB more


def test_cache_holds_exactly_the_positions_that_are_fed_back(tiny):
    assert KVCache.allocate(tiny.args, 5, torch.float32).k.shape == (4, 2, 5, 16)  # [n_layers, K, max_len, d]


def test_greedy_generation_equals_transformers_generate(tiny, greedy):
    from reference.verify.parity import hf_model

    model = hf_model(tiny.weights, tiny.args, tied=False)  # float32, eager attention
    with torch.no_grad():
        out = model.generate(torch.tensor([PROMPT]), attention_mask=torch.ones(1, len(PROMPT), dtype=torch.long),
                             max_new_tokens=32, do_sample=False, eos_token_id=None, pad_token_id=0)
    theirs = out[0, len(PROMPT):].tolist()
    assert len(theirs) == 32 and greedy == theirs


# --- choosing tokens ---


def test_temperature_0_takes_the_most_likely_token(tiny):
    assert run(tiny, 1, temperature=0) == [int(batched.forward(torch.tensor(PROMPT), tiny.weights, tiny.args)[-1].argmax())]


def test_the_same_seed_samples_the_same_tokens(tiny):
    assert run(tiny, 4, temperature=1.0, seed=1) == run(tiny, 4, temperature=1.0, seed=1)


def test_a_different_seed_samples_different_tokens(tiny):
    assert run(tiny, 4, temperature=1.0, seed=1) != run(tiny, 4, temperature=1.0, seed=2)


def test_top_p_draws_only_from_the_smallest_set_holding_p():
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    g = torch.Generator().manual_seed(0)
    draws = [sample_top_p(probs, 0.7, g) for _ in range(2000)]
    assert set(draws) == {1, 3}  # 0.5 + 0.3: the 0.15 would start past 0.7
    assert draws.count(1) / len(draws) == pytest.approx(0.5 / 0.8, abs=0.04)


def test_top_p_below_the_largest_probability_is_greedy():
    g = torch.Generator().manual_seed(0)
    assert {sample_top_p(torch.tensor([0.2, 0.7, 0.1]), 0.1, g) for _ in range(100)} == {1}


# --- stopping ---


def test_tokenizer_stop_tokens_are_end_of_text_eom_and_eot(tokenizer):
    assert tokenizer.stop_tokens == {128001, 128008, 128009}


def test_generation_stops_at_eot_without_returning_it(tiny, tokenizer, greedy):
    free = greedy
    # A copy of the weights in which <|eot_id|> scores 1.5 times what free[3] scores: it wins by step 3.
    output = tiny.weights["output.weight"].clone()
    output[tokenizer.eot_id] = output[free[3]] * 1.5
    weights = dict(tiny.weights, **{"output.weight": output})
    stopped = list(generate(PROMPT, weights, tiny.args, max_new_tokens=8, temperature=0,
                            stop_tokens=tokenizer.stop_tokens))
    assert len(stopped) <= 3 and stopped == free[:len(stopped)]


def test_generation_stops_when_the_context_is_full(tiny):
    args = tiny.args.replace(max_seq_len=len(PROMPT) + 3)
    assert len(list(generate(PROMPT, tiny.weights, args, max_new_tokens=10, temperature=0))) == 3


@pytest.mark.parametrize("extra", [0, 1])
def test_prompt_that_fills_the_context_is_refused_before_anything_runs(tiny, extra):
    args = tiny.args.replace(max_seq_len=len(PROMPT) - extra)
    with pytest.raises(InputError, match=f"the prompt has {len(PROMPT)} tokens, but the model's context "
                                         f"\\(max_seq_len\\) is {len(PROMPT) - extra}"):
        generate(PROMPT, {}, args)  # no weights at all: nothing may be computed or allocated


@pytest.mark.parametrize("option, message", [
    ({"temperature": -1.0}, "temperature must be a finite number >= 0"),
    ({"top_p": 0.0}, "top_p must be in (0, 1]"),
    ({"top_p": 1.5}, "top_p must be in (0, 1]"),
    ({"max_new_tokens": -1}, "max_new_tokens must be a non-negative integer"),
    ({"seed": -3}, "seed must be a non-negative integer"),
    ({"seed": 2**64}, "seed must be a non-negative integer below 2**64"),
    ({"temperature": 1e-300}, "temperature 1e-300 is too small to divide by"),
])
def test_bad_options_are_one_line(tiny, option, message):
    with pytest.raises(InputError) as excinfo:
        generate(PROMPT, tiny.weights, tiny.args, **option)
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value)


# --- the chat format ---


@pytest.mark.parametrize("system", [None, "You are terse.", "  spaced  \n"])
def test_chat_tokens_equal_metas_chat_format(tokenizer, system):
    from llama_models.datatypes import RawMessage
    from llama_models.llama3.chat_format import ChatFormat
    from llama_models.llama3.tokenizer import Tokenizer as MetaTokenizer

    user = " What is 6 × 7?\n<|eot_id|> 日本語 "
    messages = ([RawMessage(role="system", content=system)] if system is not None else [])
    messages.append(RawMessage(role="user", content=user))
    expected = ChatFormat(MetaTokenizer.get_instance()).encode_dialog_prompt(messages).tokens
    assert chat_tokens(tokenizer, user, system) == expected


def test_chat_without_system_has_no_system_header(tokenizer):
    tokens = chat_tokens(tokenizer, "hi")
    assert tokenizer.decode(tokens) == ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                                        "<|start_header_id|>assistant<|end_header_id|>\n\n")


# --- streaming text ---


def test_stream_waits_for_the_rest_of_a_character(tokenizer):
    stream = TextStream(tokenizer)
    assert [stream.push(t) for t in (76460, 222)] == ["", "😀"]  # F0 9F 98 | 80
    assert stream.flush() == ""


def test_streamed_text_equals_the_decoded_text(tokenizer, greedy):
    stream = TextStream(tokenizer)
    assert "".join(stream.push(t) for t in greedy) + stream.flush() == tokenizer.decode(greedy)


# --- python -m reference generate ---


def cli(capsys, *argv):
    code = main(["generate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_is_one_object_on_the_last_line(capsys, tiny_dir, greedy):
    code, out, err = cli(capsys, "--checkpoint", str(tiny_dir), "--prompt", "the answer to the ultimate question of "
                         "life, the universe, and everything is ", "--temperature", "0", "--max-new-tokens", "6",
                         "--json")
    assert code == 0, err
    result = json.loads(out.splitlines()[-1])
    assert list(result) == ["prompt_tokens", "tokens", "text"]
    assert result["prompt_tokens"] == PROMPT and result["tokens"] == greedy[:6]
    assert result["text"] == load_tokenizer().decode(result["tokens"])


def test_cli_streams_the_text_to_stdout(capsys, tiny_dir):
    argv = ("--checkpoint", str(tiny_dir), "--prompt", "Hello", "--seed", "3", "--max-new-tokens", "4")
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    _, as_json, _ = cli(capsys, *argv, "--json")
    assert out == json.loads(as_json)["text"] + "\n"


def test_cli_chat_uses_the_chat_format(capsys, tiny_dir, tokenizer):
    code, out, err = cli(capsys, "--checkpoint", str(tiny_dir), "--prompt", "hi", "--chat", "--system", "Be kind.",
                         "--max-new-tokens", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["prompt_tokens"] == chat_tokens(tokenizer, "hi", "Be kind.")


@pytest.mark.parametrize("argv, message", [
    (["--prompt", "word " * 2100], "the prompt has 2102 tokens, but the model's context (max_seq_len) is 2048"),
    (["--prompt", "x", "--system", "s"], "--system needs --chat"),
    (["--prompt", "x", "--top-p", "2"], "top_p must be in (0, 1]"),
])
def test_cli_bad_input_is_one_line_and_exit_code_2(capsys, tiny_dir, argv, message):
    code, out, err = cli(capsys, "--checkpoint", str(tiny_dir), *argv)
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_cli_generate_has_help(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["generate", "--help"])
    assert excinfo.value.code == 0 and "--max-new-tokens" in capsys.readouterr().out
