"""reference/formats/meta.py: Meta's on-disk format, read and checked.

Every test writes real files under tmp_path; nothing is mocked and nothing goes to the network.
"""

import json
import os
from pathlib import Path

import pytest
import torch

from reference.formats import load_checkpoint
from reference.formats.synthesize import synthesize
from reference.config import ModelArgs
from reference.errors import InputError

from helpers import one_line_error, refused, rss_anon, write_checkpoint

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
    assert ckpt.tokenizer.path.name == "tokenizer.model" and ckpt.tokenizer.path.parent != d.resolve()


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
