"""A quantized GGUF is read from its own blocks (#34): nothing is written beside it, a file
replaced in place gives its new answer, a model that fits the memory budget is expanded once,
and a file of K-quants traces like transformers loading the same file."""

import shutil

import numpy as np
import pytest
import torch

from reference import batched, upcast
from reference.formats import load_checkpoint
from reference.formats.gguf.header import read_header
from reference.formats.gguf.quantized import Quantized
from reference.run import run_trace
from reference.verify import parity

from test_gguf import write_gguf


def next_token_logits(path) -> torch.Tensor:
    ckpt = load_checkpoint(path)
    tokens = torch.tensor(ckpt.tokenizer.encode("the answer is 42", bos=True, eos=False))
    return batched.forward(tokens, ckpt.weights, ckpt.args, last_only=True)[0]


def test_a_gguf_replaced_in_place_by_one_of_the_same_size_and_header_gives_the_new_files_answer(tmp_path):
    """The float32 cache was keyed by the header and the size: a file rewritten with other weights
    of the same shapes and types ran with the old weights."""
    old, new = write_gguf(tmp_path / "old.gguf", seed=0), write_gguf(tmp_path / "new.gguf", seed=1)
    header = read_header(old).data_offset
    assert old.stat().st_size == new.stat().st_size and old.read_bytes()[:header] == new.read_bytes()[:header]
    path = shutil.copyfile(old, tmp_path / "model.gguf")
    before = next_token_logits(path)
    with open(path, "r+b") as f:  # the same file, its bytes overwritten
        f.write(new.read_bytes())
    after = next_token_logits(path)
    assert torch.equal(after, next_token_logits(new)) and not torch.equal(after, before)


def test_a_gguf_named_as_ollama_names_its_blobs_loads_as_it_is(tmp_path, capsys):
    """Ollama keeps llama3:8b as blobs/sha256-<hex>: a GGUF is known by its first bytes, not its name;
    a file of another kind without a suffix is still refused in one line."""
    from reference.cli import main

    path = write_gguf(tmp_path / "q.gguf", types={"attn_q": "Q4_0"})
    blob = tmp_path / "blobs" / f"sha256-{'0123456789abcdef' * 4}"
    blob.parent.mkdir()
    shutil.copyfile(path, blob)
    assert torch.equal(next_token_logits(blob), next_token_logits(path))
    assert main(["walk", "--checkpoint", str(blob), "--prompt", "the answer"]) == 0
    assert "next token" in capsys.readouterr().out
    other = tmp_path / "blobs" / f"sha256-{'f' * 64}"
    other.write_bytes(b"PK\x03\x04 a zip, not a model")
    assert main(["walk", "--checkpoint", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and other.name in err and "not a GGUF" in err


def test_walk_and_generate_on_a_quantized_gguf_write_nothing_under_the_cache(tmp_path, monkeypatch, capsys):
    from reference.cli import main

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("LLAMA3_REFERENCE_CACHE", str(cache))
    path = write_gguf(tmp_path / "q.gguf", types={"attn_q": "Q4_0", "ffn_up": "Q4_1", "ffn_down": "Q5_0"})
    assert main(["walk", "--checkpoint", str(path), "--prompt", "the answer"]) == 0
    assert main(["generate", "--checkpoint", str(path), "--prompt", "the answer", "--max-new-tokens", "3"]) == 0
    assert "next token" in capsys.readouterr().out
    assert list(cache.iterdir()) == []


def test_a_quantized_model_within_the_budget_is_expanded_once_and_one_past_it_stays_in_blocks(tmp_path):
    ckpt = load_checkpoint(write_gguf(tmp_path / "q.gguf"))
    held = upcast.resident(ckpt.weights, torch.float32)
    assert all(type(w) is torch.Tensor and w.is_contiguous() for w in held.values())
    name = "layers.1.feed_forward.w2.weight"
    assert isinstance(ckpt.weights[name], Quantized) and torch.equal(held[name], ckpt.weights[name].expanded())
    assert upcast.resident(ckpt.weights, torch.float32, budget=1000) is ckpt.weights


# --- K-quants in a whole file: Q4_K (quantized by bench/quantize.py), Q5_K and Q6_K (blocks with small scales) ---

K_TYPES = {"attn_q": "Q4_K", "attn_k": "Q6_K", "attn_v": "Q5_K", "attn_output": "Q4_K", "ffn_gate": "Q4_K",
           "ffn_up": "Q5_K", "ffn_down": "Q6_K", "output": "Q6_K", "token_embd": "Q4_K"}


def k_quant_blocks(x: np.ndarray, kind) -> np.ndarray:
    """gguf.quants.quantize for the K-quants it cannot write: Q4_K quantized, the others random
    blocks whose float16 scales are small (each weight a few hundredths)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from quantize import q4_k  # noqa: E402 (bench/quantize.py)

    if kind.name == "Q4_K":
        return q4_k(x)
    nbytes = {"Q5_K": 176, "Q6_K": 210}[kind.name]
    raw = np.random.default_rng(x.size).integers(0, 256, (x.shape[0], x.shape[1] // 256, nbytes), dtype=np.uint8)
    for at, value in {"Q5_K": [(0, 2e-3), (2, 1e-3)], "Q6_K": [(208, 5e-4)]}[kind.name]:
        raw[:, :, at:at + 2] = np.array([value], np.float16).view(np.uint8)
    return raw.reshape(x.shape[0], -1)


@pytest.fixture
def k_quant_gguf(tmp_path, monkeypatch):
    import gguf.quants

    quantize = gguf.quants.quantize
    monkeypatch.setattr(gguf.quants, "quantize", lambda x, kind: k_quant_blocks(x, kind) if kind.name in (
        "Q4_K", "Q5_K", "Q6_K") else quantize(x, kind))
    return write_gguf(tmp_path / "k.gguf", dim=256, n_heads=4, n_kv_heads=2, ffn=512, types=K_TYPES)


def test_a_gguf_of_k_quants_traces_like_transformers_loading_it(k_quant_gguf):
    from transformers import LlamaForCausalLM

    ckpt = load_checkpoint(k_quant_gguf)
    assert {ckpt.weights.qtypes[n] for n in ckpt.weights} == {"Q4_K", "Q5_K", "Q6_K", "F32"}
    theirs = LlamaForCausalLM.from_pretrained(k_quant_gguf.parent, gguf_file=k_quant_gguf.name, dtype=torch.float32,
                                              attn_implementation="eager").eval()
    tokens = ckpt.tokenizer.encode("the answer is 42, the end", bos=True, eos=False)
    reference = parity.hf_trace(theirs, tokens)
    for path in ("literal", "batched"):  # the whole matrix expanded, and slices of rows in stored order
        errors = parity.relative_errors(run_trace(tokens, ckpt.weights, ckpt.args, path=path), reference)
        worst = max(errors, key=errors.get)
        assert errors[worst] < parity.TARGET, f"{path}: {worst}: {errors[worst]:.2e}"
