"""reference/checkpoint.py: Meta's on-disk format, read, checked, synthesized and fetched.

Every test writes real files under tmp_path; nothing is mocked and nothing goes to the network.
"""

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

import huggingface_hub
import httpx2
import pytest
import torch
from huggingface_hub.utils import OfflineModeIsEnabled, hf_raise_for_status

from reference.checkpoint import Checkpoint, expected_shapes, load_checkpoint
from reference.hub import _explain_hub_error, download, resolve_checkpoint
from reference.synthesize import builtin_checkpoint, cache_dir, synthesize
from reference.config import PRESETS, ModelArgs, preset
from reference.errors import InputError

from helpers import one_line_error, refused, rss_anon

REPO = "meta-llama/Meta-Llama-3-8B"


def sha256s(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def write_checkpoint(tiny_dir: Path, out: Path, weights=None, params: dict | None = None) -> Path:
    """A checkpoint directory like tiny_dir, with other weights (any picklable object) or params."""
    out.mkdir(parents=True)
    shutil.copy(tiny_dir / "tokenizer.model", out)
    params = json.loads((tiny_dir / "params.json").read_text()) if params is None else params
    (out / "params.json").write_text(json.dumps(params))
    if weights is not None:
        torch.save(weights, out / "consolidated.00.pth")
    else:
        shutil.copy(tiny_dir / "consolidated.00.pth", out)
    return out


# --- names and shapes ---


def test_expected_shapes_of_llama3_8b():
    shapes = expected_shapes(PRESETS["llama3-8b"])
    assert shapes["tok_embeddings.weight"] == (128256, 4096)
    assert shapes["layers.0.attention.wq.weight"] == (4096, 4096)
    assert shapes["layers.0.attention.wk.weight"] == (1024, 4096)
    assert shapes["layers.31.attention.wv.weight"] == (1024, 4096)
    assert shapes["layers.7.feed_forward.w1.weight"] == (14336, 4096)
    assert shapes["layers.7.feed_forward.w2.weight"] == (4096, 14336)
    assert shapes["layers.31.ffn_norm.weight"] == (4096,)
    assert shapes["output.weight"] == (128256, 4096)
    assert len(shapes) == 2 + 9 * 32 + 1


def test_expected_shapes_are_in_metas_order():
    names = list(expected_shapes(preset("tiny", n_layers=1)))
    assert names == [
        "tok_embeddings.weight",
        "layers.0.attention.wq.weight", "layers.0.attention.wk.weight",
        "layers.0.attention.wv.weight", "layers.0.attention.wo.weight",
        "layers.0.feed_forward.w1.weight", "layers.0.feed_forward.w2.weight", "layers.0.feed_forward.w3.weight",
        "layers.0.attention_norm.weight", "layers.0.ffn_norm.weight",
        "norm.weight", "output.weight",
    ]


# --- synthesize ---


def test_synthesize_then_load_round_trips(tiny_dir, tiny):
    assert isinstance(tiny, Checkpoint)
    assert tiny.path == tiny_dir
    assert tiny.args == PRESETS["tiny"]
    assert tiny.tokenizer_path == tiny_dir / "tokenizer.model"
    assert not tiny.tied and tiny.output_name == "output.weight"
    raw = torch.load(tiny_dir / "consolidated.00.pth", weights_only=True)
    assert all(torch.equal(raw[name], tiny.weights[name]) for name in raw)


def test_synthesized_file_has_exactly_metas_names_in_bf16(tiny_dir):
    raw = torch.load(tiny_dir / "consolidated.00.pth", weights_only=True)
    assert list(raw) == list(expected_shapes(PRESETS["tiny"]))
    assert {t.dtype for t in raw.values()} == {torch.bfloat16}
    assert sorted(p.name for p in tiny_dir.iterdir()) == ["consolidated.00.pth", "params.json", "tokenizer.model"]


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


def test_tied_checkpoint_without_output_weight_loads(tmp_path):
    ckpt = load_checkpoint(synthesize("tiny", seed=0, out_dir=tmp_path / "tied", n_layers=1, tied=True))
    assert "output.weight" not in ckpt.weights
    assert ckpt.tied and ckpt.output_name == "tok_embeddings.weight"
    assert ckpt.output_weight is ckpt.weights["tok_embeddings.weight"]


def test_rope_freqs_in_the_file_is_ignored(tiny_dir, tiny, tmp_path):
    weights = dict(tiny.weights, **{"rope.freqs": torch.ones(8, dtype=torch.bfloat16)})
    ckpt = load_checkpoint(write_checkpoint(tiny_dir, tmp_path / "ckpt", weights))
    assert "rope.freqs" not in ckpt.weights


def test_directory_without_tokenizer_model_uses_the_bundled_one(tiny_dir, tmp_path):
    d = write_checkpoint(tiny_dir, tmp_path / "ckpt")
    (d / "tokenizer.model").unlink()
    ckpt = load_checkpoint(d)
    assert ckpt.tokenizer_path.name == "tokenizer.model" and ckpt.tokenizer_path.parent != d


def test_load_maps_the_file_instead_of_reading_it_into_memory(tmp_path):
    """About 200 MB on disk; loading it must add only a few MB of anonymous (heap) memory."""
    args = ModelArgs(dim=768, n_layers=2, n_heads=12, n_kv_heads=4, vocab_size=128256, multiple_of=256)
    directory = synthesize(args, seed=0, out_dir=tmp_path / "mid", tied=True)
    file = directory / "consolidated.00.pth"

    before = rss_anon()
    ckpt = load_checkpoint(directory)
    grown = rss_anon() - before
    assert file.stat().st_size > 190e6
    assert grown < file.stat().st_size / 10, f"RssAnon grew by {grown / 1e6:.0f} MB"
    assert str(file.resolve()) in Path("/proc/self/maps").read_text()
    assert ckpt.weights["tok_embeddings.weight"][-1].float().abs().max() > 0  # the bytes are really there


def test_progress_shows_a_bar_while_checking(tiny_dir, capfd):
    load_checkpoint(tiny_dir, progress=True)
    assert "checking consolidated.00.pth" in capfd.readouterr().err


# --- bad input: one line naming the file and the tensor or key ---


def test_missing_tensor_is_named(tiny_dir, tiny, tmp_path):
    weights = {k: v for k, v in tiny.weights.items() if k != "layers.2.feed_forward.w3.weight"}
    d = write_checkpoint(tiny_dir, tmp_path / "ckpt", weights)
    refused(d, str(d / "consolidated.00.pth"), "missing tensor layers.2.feed_forward.w3.weight")


def test_unexpected_tensor_is_named(tiny_dir, tiny, tmp_path):
    weights = dict(tiny.weights, **{"layers.4.attention.wq.weight": tiny.weights["layers.3.attention.wq.weight"]})
    d = write_checkpoint(tiny_dir, tmp_path / "ckpt", weights)
    with pytest.raises(InputError) as excinfo:
        load_checkpoint(d)
    one_line_error(excinfo, str(d / "consolidated.00.pth"), "unexpected tensor layers.4.attention.wq.weight",
                   "n_layers=4")


def test_misshaped_tensor_names_the_params_that_imply_its_shape(tiny_dir, tiny, tmp_path):
    weights = dict(tiny.weights, **{"layers.1.attention.wk.weight": torch.zeros(64, 128, dtype=torch.bfloat16)})
    d = write_checkpoint(tiny_dir, tmp_path / "ckpt", weights)
    with pytest.raises(InputError) as excinfo:
        load_checkpoint(d)
    assert one_line_error(excinfo) == (
        f"{d / 'consolidated.00.pth'}: layers.1.attention.wk.weight has shape [64, 128], "
        "params.json implies [32, 128] (n_kv_heads=2, head_dim=16, dim=128)")


def test_integer_tensor_is_refused(tiny_dir, tiny, tmp_path):
    weights = dict(tiny.weights, **{"norm.weight": torch.ones(128, dtype=torch.int32)})
    d = write_checkpoint(tiny_dir, tmp_path / "ckpt", weights)
    refused(d, str(d / "consolidated.00.pth"), "norm.weight has dtype torch.int32")


def test_truncated_file_is_refused(tiny_dir, tmp_path):
    d = write_checkpoint(tiny_dir, tmp_path / "ckpt")
    file = d / "consolidated.00.pth"
    file.write_bytes(file.read_bytes()[: 10_000_000])
    refused(d, str(file), "truncated or corrupt")


def test_git_lfs_pointer_is_refused(tiny_dir, tmp_path):
    d = write_checkpoint(tiny_dir, tmp_path / "ckpt")
    (d / "consolidated.00.pth").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0123abcd\nsize 16060522885\n")
    refused(d, str(d / "consolidated.00.pth"), "Git LFS pointer", "git lfs pull")


def test_file_that_is_not_a_zip_is_refused(tiny_dir, tmp_path):
    d = write_checkpoint(tiny_dir, tmp_path / "ckpt")
    (d / "consolidated.00.pth").write_bytes(b"\x80\x02}q\x00.")  # a bare pickle, as Python's pickle writes
    refused(d, str(d / "consolidated.00.pth"), "not a torch.save checkpoint")


def test_empty_directory_is_refused(tmp_path):
    refused(tmp_path, str(tmp_path), "empty", "params.json")


def test_missing_params_json_is_named(tiny_dir, tmp_path):
    d = write_checkpoint(tiny_dir, tmp_path / "ckpt")
    (d / "params.json").unlink()
    refused(d, str(d / "params.json"), "not found")


def test_bad_params_json_field_is_named(tiny_dir, tmp_path):
    params = dict(json.loads((tiny_dir / "params.json").read_text()), n_kv_heads=3)
    d = write_checkpoint(tiny_dir, tmp_path / "ckpt", params=params)
    refused(d, str(d / "params.json"), "n_kv_heads 3")


def test_vocab_smaller_than_the_tokenizer_is_refused(tiny_dir, tmp_path):
    params = dict(json.loads((tiny_dir / "params.json").read_text()), vocab_size=128000)
    d = write_checkpoint(tiny_dir, tmp_path / "ckpt", params=params)
    refused(d, str(d / "params.json"), "vocab_size 128000", "128256")


def test_pickle_that_is_not_a_dict_is_refused(tiny_dir, tiny, tmp_path):
    d = write_checkpoint(tiny_dir, tmp_path / "ckpt", list(tiny.weights.values()))
    refused(d, str(d / "consolidated.00.pth"), "holds a list", "dict")


def test_entry_that_is_not_a_tensor_is_named(tiny_dir, tiny, tmp_path):
    d = write_checkpoint(tiny_dir, tmp_path / "ckpt", dict(tiny.weights, **{"norm.weight": [1.0, 2.0]}))
    refused(d, str(d / "consolidated.00.pth"), "'norm.weight' is a list")


class MakesADirectory:
    """Unpickling this calls os.mkdir(path): a stand-in for any code a malicious pickle runs."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_pickle_that_would_run_code_is_refused_without_running_it(tiny_dir, tmp_path):
    marker = tmp_path / "code-ran"
    d = write_checkpoint(tiny_dir, tmp_path / "ckpt", {"tok_embeddings.weight": MakesADirectory(marker)})
    file = d / "consolidated.00.pth"
    refused(d, str(file), "would run code", "mkdir")
    assert not marker.exists()
    torch.load(file, weights_only=False)  # what a trusting loader would do: the code does run
    assert marker.is_dir()


def test_directory_without_weights_is_refused(tiny_dir, tmp_path):
    d = write_checkpoint(tiny_dir, tmp_path / "ckpt")
    (d / "consolidated.00.pth").unlink()
    refused(d, str(d), "no consolidated.*.pth")


def test_hugging_face_repo_root_points_to_its_original_folder(tiny_dir, tmp_path):
    write_checkpoint(tiny_dir, tmp_path / "repo" / "original")
    (tmp_path / "repo" / "config.json").write_text("{}")
    refused(tmp_path / "repo", str(tmp_path / "repo" / "original"))


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


def test_resolve_checkpoint_returns_an_existing_directory(tiny_dir):
    assert resolve_checkpoint(str(tiny_dir)) == tiny_dir


def test_resolve_checkpoint_refuses_a_file(tiny_dir):
    with pytest.raises(InputError) as excinfo:
        resolve_checkpoint(str(tiny_dir / "params.json"))
    one_line_error(excinfo, str(tiny_dir / "params.json"), "is a file")


@pytest.mark.parametrize("spec", ["{tmp}/nope", "./nope", "../nope/x", "a/b/c"])
def test_resolve_checkpoint_refuses_a_missing_directory(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = spec.format(tmp=tmp_path)
    with pytest.raises(InputError) as excinfo:
        resolve_checkpoint(spec)
    one_line_error(excinfo, spec, "no such checkpoint directory")


# --- the Hub, without the network ---


def hub_error(status: int, url: str = f"https://huggingface.co/api/models/{REPO}/revision/main", **headers):
    """The exception huggingface_hub itself raises for this HTTP response."""
    response = httpx2.Response(status, headers=headers, request=httpx2.Request("GET", url))
    with pytest.raises(Exception) as excinfo:
        hf_raise_for_status(response)
    return excinfo.value


@pytest.mark.parametrize("exc, says", [
    (hub_error(403, **{"X-Error-Code": "GatedRepo"}), f"request access at https://huggingface.co/{REPO}"),
    (hub_error(401, **{"X-Error-Code": "GatedRepo"}), "hf auth login"),
    (hub_error(401), "hf auth login"),
    (hub_error(404, **{"X-Error-Code": "RepoNotFound"}), "no such repo"),
    (hub_error(401, **{"X-Error-Message": "Invalid credentials in Authorization header"}), "unauthorised"),
    (OfflineModeIsEnabled("offline"), "HF_HUB_OFFLINE"),
    (httpx2.ConnectError("[Errno -3] Temporary failure in name resolution"), "cannot reach huggingface.co"),
], ids=["gated-403", "gated-401", "not-logged-in", "not-found", "bad-token", "offline", "no-connection"])
def test_hub_errors_become_one_line(exc, says):
    error = _explain_hub_error(REPO, exc)
    assert isinstance(error, InputError)
    assert "\n" not in str(error) and str(error).startswith(f"{REPO}: ") and says in str(error), str(error)


def test_download_when_offline_says_so(monkeypatch, tmp_path):
    # huggingface_hub reads HF_HUB_OFFLINE once, at import, into constants.HF_HUB_OFFLINE.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError) as excinfo:
        download(REPO, out_dir=tmp_path / "dl")
    one_line_error(excinfo, REPO, "HF_HUB_OFFLINE")


def test_resolve_checkpoint_downloads_a_hub_id(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # so "meta-llama/..." is not a local path
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError) as excinfo:
        resolve_checkpoint("meta-llama/Llama-3.2-1B-Instruct-not-cached")
    one_line_error(excinfo, "meta-llama/Llama-3.2-1B-Instruct-not-cached", "HF_HUB_OFFLINE")


def test_synthesis_through_scratch_files_writes_the_same_bytes(tmp_path, monkeypatch):
    """Large models are generated into memory-mapped scratch files; the bytes must not change."""
    from reference import synthesize as synthesis

    args = preset("tiny").replace(n_layers=1)
    in_ram = synthesize(args, seed=5, out_dir=tmp_path / "ram")
    monkeypatch.setattr(synthesis, "SCRATCH_ABOVE", 0)
    via_files = synthesize(args, seed=5, out_dir=tmp_path / "files")
    digest = lambda d: {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in d.iterdir()}  # noqa: E731
    assert digest(via_files) == digest(in_ram)
    assert sorted(p.name for p in via_files.iterdir()) == ["consolidated.00.pth", "params.json", "tokenizer.model"]
