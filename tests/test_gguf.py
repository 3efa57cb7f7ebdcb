"""formats/gguf/load.py: a GGUF file read as Meta's names and layout. On the built-in trained model
(SmolLM2-135M-Instruct, Q4_1) every trace tensor equals transformers loading the same file;
a GGUF written here with odd shapes reads back and traces like transformers; bad files are
refused in one line."""

import numpy as np
import pytest
import torch

from reference import WALKTHROUGH_PROMPT, batched
from reference.verify import parity
from reference.batched import KVCache
from reference.text.chat import chat_prompt
from reference.formats import layout, load_checkpoint
from reference.formats.gguf import GGUF_NAMES, meta_name
from reference.formats.gguf.header import read_header
from reference.generate import generate
from reference.run import run_trace

from helpers import refused, rss_anon

LONG = ("Once upon a time, in a small village at the edge of a great forest, there lived an old clockmaker "
        "named Elias. Every morning he opened his shop at seven, wound the forty-two clocks that hung on its "
        "walls, and listened until every one of them ticked in time. Children came to watch him work; he "
        "showed them how a spring stores energy, how an escapement lets it go one tooth at a time, and why a "
        "pendulum of one metre swings once a second. One winter the river froze, the mill stopped, and the "
        "village lost track of the hours. Elias carried his best clock to the square, set it on a post, and "
        "from then on everyone knew when to open the market, ring the school bell and light the lamps. "
        "Years later, when he was too old to climb the ladder, the children he had taught")
PROMPTS = {"walkthrough": WALKTHROUGH_PROMPT, "capital": "The capital of France is", "long": LONG}


# --- SmolLM2 against transformers, from the same file ---


@pytest.mark.parametrize("name", PROMPTS)
def test_every_trace_tensor_of_smollm2_equals_transformers_loading_the_same_gguf(name, smollm2, smollm2_hf):
    tokens = smollm2.tokenizer.encode(PROMPTS[name], bos=True, eos=False)
    assert name != "long" or len(tokens) > 150
    ours = run_trace(tokens, smollm2.weights, smollm2.args, path="literal" if len(tokens) < 64 else "batched")
    theirs = parity.hf_trace(smollm2_hf, tokens)
    errors = parity.relative_errors(ours, theirs)
    assert len(errors) == len(theirs) - 1  # every float tensor transformers shows (next_token is an id)
    worst = max(errors, key=errors.get)
    assert errors[worst] < parity.TARGET, f"{worst}: {errors[worst]:.2e}"
    assert int(ours["next_token"]) == int(theirs["next_token"])


def test_smollm2_says_paris_after_the_capital_of_france_is(smollm2):
    tokens = smollm2.tokenizer.encode("The capital of France is", bos=True, eos=False)
    logits = batched.forward(torch.tensor(tokens), smollm2.weights, smollm2.args, last_only=True)[0]
    assert smollm2.tokenizer.decode([int(logits.argmax())]) == " Paris"


def test_gguf_q_and_k_rows_are_in_metas_pair_order_already(smollm2, smollm2_hf):
    """llama.cpp's converter permutes HF's rows into Meta's order; transformers permutes them back."""
    attn = smollm2_hf.model.layers[3].self_attn
    for ours, theirs, heads in ((smollm2.weights["layers.3.attention.wq.weight"], attn.q_proj.weight, 9),
                                (smollm2.weights["layers.3.attention.wk.weight"], attn.k_proj.weight, 3)):
        assert torch.equal(layout.to_rotate_half(ours, heads), theirs)  # Meta's order, turned into HF's
        assert not torch.equal(ours, theirs)


def test_greedy_generation_equals_transformers_generate(smollm2, smollm2_hf):
    for prompt in (smollm2.tokenizer.encode("The capital of France is", bos=True, eos=False),
                   chat_prompt(smollm2.tokenizer, "What is the capital of France?")):
        ours = list(generate(prompt, smollm2.weights, smollm2.args, max_new_tokens=32, temperature=0))
        with torch.no_grad():
            out = smollm2_hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                      max_new_tokens=32, do_sample=False, eos_token_id=None, pad_token_id=0)
        assert ours == out[0, len(prompt):].tolist()  # all 32: neither side stops at <|im_end|> here


def test_chat_answer_names_paris(smollm2):
    prompt = chat_prompt(smollm2.tokenizer, "What is the capital of France?")
    answer = smollm2.tokenizer.decode(generate(prompt, smollm2.weights, smollm2.args, max_new_tokens=16,
                                               temperature=0, stop_tokens=smollm2.tokenizer.stop_tokens))
    assert "Paris" in answer


def test_cached_prefill_of_smollm2_equals_the_full_pass(smollm2):
    tokens = torch.tensor(smollm2.tokenizer.encode(LONG, bos=True, eos=False))
    cache = KVCache.allocate(smollm2.args, len(tokens), torch.float32)
    batched.forward(tokens[:100], smollm2.weights, smollm2.args, cache=cache, last_only=True)
    chunked = batched.forward(tokens[100:], smollm2.weights, smollm2.args, cache=cache, start=100, last_only=True)
    whole = batched.forward(tokens, smollm2.weights, smollm2.args, last_only=True)
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-4)


def test_quantized_weights_are_read_from_the_file_never_expanded_on_disk_nor_held(smollm2_file, tmp_path, monkeypatch):
    """Every tensor, as the pass asks for it, is the file's blocks: nothing in anonymous memory, nothing
    written under the cache (the float32 copies this once kept there were 514 MB beside a 93 MB file)."""
    monkeypatch.setenv("LLAMA3_REFERENCE_CACHE", str(tmp_path))
    ckpt = load_checkpoint(smollm2_file)
    before = rss_anon()
    weights = [ckpt.weights[name] for name in ckpt.weights]
    assert sum(w.numel() * 4 for w in weights) > 500e6  # what expanding them would take
    assert rss_anon() - before < 20e6
    assert {type(w).__name__ for w, name in zip(weights, ckpt.weights) if ckpt.weights.qtypes[name] != "F32"} == {
        "Quantized"}
    list(generate([1, 2, 3], ckpt.weights, ckpt.args, max_new_tokens=2, temperature=0))
    assert list(tmp_path.iterdir()) == []


# --- a GGUF written here: odd shapes, Q8_0 and F16 ---


def write_gguf(path, *, dim=96, n_layers=2, n_heads=6, n_kv_heads=2, ffn=160, arch="llama", types=None,
               skip=(), extra_keys=None, seed=0):
    """A small Llama GGUF with gguf's own writer: a byte-level vocabulary of 256 bytes + 44 merges
    + 2 control tokens (vocab 302), random weights quantized as `types` says (Q8_0 by default)."""
    import gguf
    from gguf.quants import quantize

    from reference.text.vocab import bytes_to_unicode

    rng = np.random.default_rng(seed)
    alphabet = list(bytes_to_unicode().values())
    merges, tokens = [], list(alphabet)
    for a, b in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a")] + [(c, c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO"][:39]:
        merges.append(f"{a} {b}")
        tokens.append(a + b)
    tokens += ["<|endoftext|>", "<|im_end|>"]
    w = gguf.GGUFWriter(str(path), arch)
    keys = {"block_count": n_layers, "context_length": 512, "embedding_length": dim, "feed_forward_length": ffn,
            "head_count": n_heads, "head_count_kv": n_kv_heads, "rope_freq_base": 10000.0, "layer_norm_rms_eps": 1e-6,
            "vocab_size": len(tokens)}
    for key, value in keys.items():
        if key not in skip:
            getattr(w, f"add_{key}")(value)
    for key, value in (extra_keys or {}).items():
        w.add_string(key, value) if isinstance(value, str) else w.add_uint32(key, value)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([1] * (len(tokens) - 2) + [3, 3])
    w.add_token_merges(merges)
    w.add_eos_token_id(len(tokens) - 2)
    w.add_add_bos_token(False)
    d, V = dim // n_heads, len(tokens)
    shapes = {"token_embd.weight": (V, dim), "output_norm.weight": (dim,), "output.weight": (V, dim)}
    for i in range(n_layers):
        shapes.update({f"blk.{i}.attn_q.weight": (n_heads * d, dim), f"blk.{i}.attn_k.weight": (n_kv_heads * d, dim),
                       f"blk.{i}.attn_v.weight": (n_kv_heads * d, dim), f"blk.{i}.attn_output.weight": (dim, n_heads * d),
                       f"blk.{i}.ffn_gate.weight": (ffn, dim), f"blk.{i}.ffn_down.weight": (dim, ffn),
                       f"blk.{i}.ffn_up.weight": (ffn, dim), f"blk.{i}.attn_norm.weight": (dim,),
                       f"blk.{i}.ffn_norm.weight": (dim,)})
    for name, shape in shapes.items():
        if name in skip:
            continue
        x = (rng.standard_normal(shape) * (0.1 if len(shape) == 2 else 0.1) + (1 if len(shape) == 1 else 0))
        qtype = (types or {}).get(name.split(".")[-2], "F32" if len(shape) == 1 else "Q8_0")
        kind = gguf.GGMLQuantizationType[qtype]
        data = quantize(x.astype(np.float32), kind)
        w.add_tensor(name, data, raw_dtype=kind if qtype not in ("F32", "F16") else None)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


MIXED = {"attn_k": "F16", "ffn_up": "F16", "output": "F16"}  # the rest Q8_0, the norms F32


def test_a_written_gguf_with_odd_shapes_traces_like_transformers_loading_it(tmp_path):
    from transformers import LlamaForCausalLM

    path = write_gguf(tmp_path / "odd.gguf", types=MIXED)
    ckpt = load_checkpoint(path)
    assert (ckpt.args.dim, ckpt.args.head_dim, ckpt.args.hidden_dim, ckpt.args.vocab_size) == (96, 16, 160, 302)
    assert {ckpt.weights.qtypes[n] for n in ckpt.weights} == {"Q8_0", "F16", "F32"}
    theirs_model = LlamaForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float32,
                                                    attn_implementation="eager").eval()
    tokens = ckpt.tokenizer.encode("the answer is 42, the end", bos=True, eos=False)
    ours = run_trace(tokens, ckpt.weights, ckpt.args)
    errors = parity.relative_errors(ours, parity.hf_trace(theirs_model, tokens))
    worst = max(errors, key=errors.get)
    assert errors[worst] < parity.TARGET, f"{worst}: {errors[worst]:.2e}"


def test_the_name_map_covers_every_tensor_of_a_llama_gguf():
    assert meta_name("blk.7.ffn_gate.weight") == "layers.7.feed_forward.w1.weight"
    assert meta_name("token_embd.weight") == "tok_embeddings.weight"
    assert meta_name("blk.0.attn_sinks.weight") is None
    assert len(set(GGUF_NAMES.values())) == len(GGUF_NAMES)


def test_a_directory_holding_one_gguf_loads_it(tmp_path):
    write_gguf(tmp_path / "model.gguf")
    assert load_checkpoint(tmp_path).path == tmp_path / "model.gguf"


# --- bad files: one line naming the file and the key or tensor ---


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    (tmp_path / "x.gguf").write_bytes(b"PK\x03\x04 not gguf")
    refused(tmp_path / "x.gguf", "x.gguf", "not a GGUF file")


def test_a_gguf_cut_in_its_tensors_names_the_first_tensor_that_is_short(tmp_path):
    data = write_gguf(tmp_path / "whole.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[: len(data) // 2])
    refused(tmp_path / "cut.gguf", "cut.gguf", "truncated or corrupt", "tensor blk.", "the file has")


def test_a_gguf_cut_in_its_header_is_refused(tmp_path):
    data = write_gguf(tmp_path / "whole.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[:2000])
    refused(tmp_path / "cut.gguf", "cut.gguf", "truncated or corrupt", "runs past the end")


def test_a_tensor_name_from_the_file_reaches_the_terminal_escaped_and_short(tmp_path):
    """Names in a stranger's file may hold a newline, an ANSI escape or a megabyte: the message stays one short line."""
    from reference.errors import shown

    assert shown("blk.0.attn_q\n\x1b[31mred") == "blk.0.attn_q\\n\\x1b[31mred"
    assert shown("x" * 1_000_000).endswith("… (1,000,000 characters)") and len(shown("x" * 1_000_000)) < 160
    path = write_gguf(tmp_path / "odd.gguf")
    data = path.read_bytes()
    odd = data.replace(b"blk.1.ffn_up.weight", b"blk.1.ffn_up\n\x1b[2J.w")  # same length: offsets stay valid
    assert odd != data
    (tmp_path / "odd2.gguf").write_bytes(odd)
    message = refused(tmp_path / "odd2.gguf", "odd2.gguf", "unexpected tensor")
    assert "\x1b" not in message and "\\x1b[2J" in message


@pytest.mark.parametrize("field, offset", [("n_tensors", 8), ("n_kv", 16)])
def test_a_count_that_the_file_cannot_hold_is_refused_without_reading_on(tmp_path, field, offset):
    """A stranger's file claiming 2^60 entries ends in one line, not a loop or an allocation."""
    data = bytearray(write_gguf(tmp_path / "whole.gguf").read_bytes())
    data[offset:offset + 8] = (1 << 60).to_bytes(8, "little")
    (tmp_path / "huge.gguf").write_bytes(bytes(data))
    refused(tmp_path / "huge.gguf", "huge.gguf", "truncated or corrupt")


def test_our_header_reader_reads_what_ggufs_own_reader_reads(smollm2_file, tmp_path):
    """header.read_header replaces GGUFReader only for speed: the same keys, values and tensor table."""
    from gguf import GGUFReader

    for path in (smollm2_file, write_gguf(tmp_path / "w.gguf")):
        ours, theirs = read_header(path), GGUFReader(path)
        fields = {k: f.contents() for k, f in theirs.fields.items() if not k.startswith("GGUF.")}
        assert ours.metadata.keys() == fields.keys()
        for key, value in fields.items():
            assert ours.metadata[key] == _as_float32_decimal(value), key
        assert [(t.name, t.ne, t.type, t.offset, t.nbytes) for t in ours.tensors] == [
            (t.name, tuple(int(n) for n in t.shape), int(t.tensor_type), int(t.data_offset), int(t.n_bytes))
            for t in theirs.tensors]


def _as_float32_decimal(value):
    if isinstance(value, list):
        return [_as_float32_decimal(v) for v in value]
    return float(str(np.float32(value))) if isinstance(value, float) else value


def test_another_architecture_is_refused(tmp_path):
    refused(write_gguf(tmp_path / "q.gguf", arch="qwen2"), "q.gguf", "general.architecture is 'qwen2'")


def test_a_missing_hyper_parameter_names_its_key(tmp_path):
    refused(write_gguf(tmp_path / "m.gguf", skip=("head_count",)), "m.gguf", "llama.attention.head_count")


def test_a_missing_tensor_is_named_as_gguf_names_it(tmp_path):
    refused(write_gguf(tmp_path / "m.gguf", skip=("blk.1.ffn_up.weight",)), "m.gguf", "blk.1.ffn_up.weight")


def test_a_block_count_the_tensors_do_not_have_is_refused(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", n_layers=3, skip=tuple(f"blk.2.{n}.weight" for n in (
        "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_down", "ffn_up", "attn_norm", "ffn_norm")))
    refused(path, "m.gguf", "missing tensor blk.2.")


def test_two_gguf_files_in_one_directory_are_refused(tmp_path):
    write_gguf(tmp_path / "a.gguf")
    write_gguf(tmp_path / "b.gguf")
    refused(tmp_path, "holds 2 .gguf files", "a.gguf")
