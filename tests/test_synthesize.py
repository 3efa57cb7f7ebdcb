"""reference/synthesize.py: deterministic random checkpoints in Meta's format, and the built-in cache.

Every test writes real files under tmp_path; nothing is mocked.
"""

import hashlib
import threading
from pathlib import Path

import pytest
import torch

from reference.config import expected_shapes
from reference.formats import Checkpoint, load_checkpoint
from reference.formats.hub import resolve_checkpoint
from reference.files import cache_dir
from reference.formats.synthesize import builtin_checkpoint, synthesize
from reference.config import PRESETS, preset
from reference.errors import InputError

from helpers import one_line_error, sha256s

# --- synthesize ---


def test_synthesize_then_load_round_trips(tiny_dir, tiny):
    assert isinstance(tiny, Checkpoint)
    assert tiny.path == tiny_dir
    assert tiny.args == PRESETS["tiny"]
    assert tiny.tokenizer.path == (tiny_dir / "tokenizer.model").resolve()
    assert not tiny.tied and tiny.output_name == "output.weight"
    raw = torch.load(tiny_dir / "consolidated.00.pth", weights_only=True)
    assert all(torch.equal(raw[name], tiny.weights[name]) for name in raw)


def test_synthesized_file_has_exactly_metas_names_in_bf16(tiny_dir):
    raw = torch.load(tiny_dir / "consolidated.00.pth", weights_only=True)
    assert list(raw) == list(expected_shapes(PRESETS["tiny"]))
    assert {t.dtype for t in raw.values()} == {torch.bfloat16}
    assert sorted(p.name for p in tiny_dir.iterdir()) == ["consolidated.00.pth", "params.json", "synthesized.json", "tokenizer.model"]


def test_synthesized_weights_have_the_documented_scales(tiny):
    w = {name: t.float() for name, t in tiny.weights.items()}
    D = tiny.args.dim
    assert w["tok_embeddings.weight"].std().item() == pytest.approx(1.0, rel=0.01)
    assert w["layers.0.attention.wq.weight"].std().item() == pytest.approx(D**-0.5, rel=0.05)
    assert w["layers.0.feed_forward.w2.weight"].std().item() == pytest.approx(tiny.args.hidden_dim**-0.5, rel=0.05)
    assert w["output.weight"].std().item() == pytest.approx(D**-0.5, rel=0.01)
    norm = w["layers.3.ffn_norm.weight"]
    assert 0.9 <= norm.min().item() and norm.max().item() <= 1.1


def test_same_seed_writes_the_same_bytes(tiny_dir, tmp_path):
    again = synthesize("tiny", seed=0, out_dir=tmp_path / "again")
    assert sha256s(again) == sha256s(tiny_dir)


def test_different_seed_writes_different_weights(tiny_dir, tmp_path):
    other = sha256s(synthesize("tiny", seed=1, out_dir=tmp_path / "seed1"))
    ours = sha256s(tiny_dir)
    assert other["consolidated.00.pth"] != ours["consolidated.00.pth"]
    assert other["params.json"] == ours["params.json"] and other["tokenizer.model"] == ours["tokenizer.model"]


def test_a_tensor_does_not_depend_on_the_number_of_layers(tiny, tmp_path):
    one_layer = load_checkpoint(synthesize("tiny", seed=0, out_dir=tmp_path / "one", n_layers=1))
    for name in ("tok_embeddings.weight", "layers.0.attention.wk.weight", "layers.0.ffn_norm.weight", "output.weight"):
        assert torch.equal(one_layer.weights[name], tiny.weights[name]), name


def test_synthesize_refuses_a_non_empty_out_dir(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(InputError) as excinfo:
        synthesize("tiny", seed=0, out_dir=out)
    one_line_error(excinfo, str(out), "not empty")
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no half-written temp dir left beside it


def test_synthesize_fills_an_existing_empty_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    out = synthesize("tiny", seed=0, out_dir=tmp_path / "empty", n_layers=1)
    assert (out / "consolidated.00.pth").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]


def test_synthesis_through_scratch_files_writes_the_same_bytes(tmp_path, monkeypatch):
    """Large models are generated into memory-mapped scratch files; the bytes must not change."""
    from reference.formats import synthesize as synthesis

    args = preset("tiny").replace(n_layers=1)
    in_ram = synthesize(args, seed=5, out_dir=tmp_path / "ram")
    monkeypatch.setattr(synthesis, "SCRATCH_ABOVE", 0)
    via_files = synthesize(args, seed=5, out_dir=tmp_path / "files")
    digest = lambda d: {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in d.iterdir()}  # noqa: E731
    assert digest(via_files) == digest(in_ram)
    assert sorted(p.name for p in via_files.iterdir()) == ["consolidated.00.pth", "params.json", "synthesized.json", "tokenizer.model"]


# --- the cache and resolve_checkpoint ---


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LLAMA3_REFERENCE_CACHE", str(tmp_path / "ours"))
    assert cache_dir() == tmp_path / "ours"
    monkeypatch.delenv("LLAMA3_REFERENCE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "llama3-reference"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "llama3-reference"


def test_builtin_checkpoint_is_made_once_and_reused(monkeypatch, tmp_path, tiny_dir):
    monkeypatch.setenv("LLAMA3_REFERENCE_CACHE", str(tmp_path))
    results = []
    threads = [threading.Thread(target=lambda: results.append(builtin_checkpoint())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [tmp_path / "tiny-seed0"] * 2
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-seed0"]  # no temp dir left behind
    first = (tmp_path / "tiny-seed0" / "consolidated.00.pth").stat().st_mtime_ns
    assert resolve_checkpoint("tiny") == tmp_path / "tiny-seed0"
    assert (tmp_path / "tiny-seed0" / "consolidated.00.pth").stat().st_mtime_ns == first
    assert sha256s(tmp_path / "tiny-seed0") == sha256s(tiny_dir)
