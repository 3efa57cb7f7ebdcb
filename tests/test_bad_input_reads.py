"""Bounded reads (#14, class 3): a device, a FIFO or a huge file where a small file belongs is
refused in one line before it is read, by its kind and size; a stray shard number builds no
huge list; a tokenizer.model's hash is checked before it is parsed."""

import os
from pathlib import Path

import pytest

from reference.errors import InputError
from reference.text.tokenizer import load_tokenizer

from helpers import refused_by_cli, write_checkpoint


def checkpoint_with(tiny_dir, tmp_path, name: str, kind: str) -> Path:
    """The tiny checkpoint with `name` replaced by /dev/zero, a FIFO or a 100 MB sparse file."""
    ckpt = write_checkpoint(tiny_dir, tmp_path / "ckpt")
    place(ckpt / name, kind)
    return ckpt


def place(path: Path, kind: str) -> Path:
    path.unlink(missing_ok=True)
    if kind == "/dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)  # nothing ever writes to it: opening it for reading would wait forever
    else:
        with open(path, "wb") as f:
            f.truncate(100 << 20)  # sparse: 100 MB long, no disk used
    return path


def walk(ckpt):
    return ["walk", "--checkpoint", str(ckpt), "--prompt", "hi"]


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo"])
@pytest.mark.parametrize("name", ["params.json", "tokenizer.model"])
def test_a_device_or_fifo_in_a_meta_checkpoint_is_refused_unread(capsys, tiny_dir, tmp_path, name, kind):
    ckpt = checkpoint_with(tiny_dir, tmp_path, name, kind)
    refused_by_cli(capsys, walk(ckpt), name, "not a regular file")


@pytest.mark.parametrize("name", ["params.json", "tokenizer.model"])
def test_a_100_mb_file_in_a_meta_checkpoint_is_refused_by_its_size(capsys, tiny_dir, tmp_path, name):
    ckpt = checkpoint_with(tiny_dir, tmp_path, name, "huge")
    refused_by_cli(capsys, walk(ckpt), name, "104,857,600 bytes")


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "huge"])
def test_config_json_that_is_not_a_sane_file_is_refused_unread(capsys, tmp_path, kind):
    place(tmp_path / "config.json", kind)
    (tmp_path / "model.safetensors").write_bytes(b"")
    refused_by_cli(capsys, walk(tmp_path), "config.json")


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "huge"])
def test_a_prompt_file_that_is_not_a_sane_file_is_refused_unread(capsys, tiny_dir, tmp_path, kind):
    prompt = place(tmp_path / "prompt.txt", kind)
    refused_by_cli(capsys, ["walk", "--checkpoint", str(tiny_dir), "--prompt-file", str(prompt)], "prompt.txt")


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "huge"])
def test_a_prompts_file_for_goldens_that_is_not_a_sane_file_is_refused_unread(capsys, tiny_dir, tmp_path, kind):
    prompts = place(tmp_path / "prompts.json", kind)
    refused_by_cli(capsys, ["goldens", "--checkpoint", str(tiny_dir), "--prompts", str(prompts),
                            "--out", str(tmp_path / "out")], "prompts.json")


def test_a_stray_shard_with_a_huge_number_builds_no_huge_list(capsys, tiny_dir, tmp_path):
    ckpt = write_checkpoint(tiny_dir, tmp_path / "ckpt")
    (ckpt / "consolidated.99999999999.pth").write_bytes(b"")
    refused_by_cli(capsys, walk(ckpt), "consolidated.01.pth is missing", "99999999999")


def test_a_wrong_tokenizer_model_is_refused_by_its_hash_before_parsing(tmp_path):
    # 15 MB: parsing it would take seconds and gigabytes; the hash is checked first, in milliseconds.
    line = b"IQ== 0\n"
    (tmp_path / "tokenizer.model").write_bytes(line * (15_000_000 // len(line)))
    with pytest.raises(InputError, match="sha256 is .* expected"):
        load_tokenizer(tmp_path)
