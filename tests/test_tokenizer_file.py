"""The tokenizer.model file: the checkpoint's copy if it has one, else the one llama_models ships;
that it is Meta's (its sha256, checked again when the file changes); and the errors for a
missing directory, a corrupted, garbled or Git LFS placeholder file, a broken link, and a
download that cannot happen offline.

Everything runs offline, on copies of the real tokenizer.model under tmp_path.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reference.errors import InputError
from reference.text.tokenizer import LLAMA3_TOKENIZER_SHA256, find_tokenizer_model, load_tokenizer, read_bpe_ranks

PACKAGED = find_tokenizer_model()  # llama_models' copy


def copy_of_tokenizer(directory: Path, edit=lambda data: data) -> Path:
    path = directory / "tokenizer.model"
    path.write_bytes(edit(PACKAGED.read_bytes()))
    return path


def test_packaged_tokenizer_has_llama3_sha256():
    assert PACKAGED.parent.parent.name == "llama_models"
    assert read_bpe_ranks(PACKAGED, sha256=LLAMA3_TOKENIZER_SHA256)


def test_checkpoint_tokenizer_is_preferred(tmp_path):
    path = copy_of_tokenizer(tmp_path)
    assert find_tokenizer_model(tmp_path) == path
    assert load_tokenizer(tmp_path).path == path.resolve()


def test_packaged_tokenizer_is_used_when_the_checkpoint_has_none(tmp_path):
    assert find_tokenizer_model(tmp_path) == PACKAGED
    assert load_tokenizer(tmp_path).path == PACKAGED.resolve()


def test_missing_checkpoint_directory_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        find_tokenizer_model(tmp_path / "nowhere")


def test_repeated_loads_share_one_tokenizer(tmp_path):
    copy_of_tokenizer(tmp_path)
    assert load_tokenizer(tmp_path) is load_tokenizer(tmp_path)


def swap_first_two_ranks(data: bytes) -> bytes:
    """Still a well-formed file of the same size, but not Meta's: "!" and '"' trade ids."""
    return data.replace(b"IQ== 0\nIg== 1\n", b"IQ== 1\nIg== 0\n", 1)


def test_corrupted_copy_names_the_file_and_its_sha256(tmp_path):
    path = copy_of_tokenizer(tmp_path, swap_first_two_ranks)
    with pytest.raises(InputError, match="sha256") as e:
        load_tokenizer(tmp_path)
    assert str(path.resolve()) in str(e.value) and LLAMA3_TOKENIZER_SHA256 in str(e.value)


def test_file_changed_after_loading_is_checked_again(tmp_path):
    path = copy_of_tokenizer(tmp_path)
    load_tokenizer(tmp_path)
    path.write_bytes(swap_first_two_ranks(path.read_bytes()))  # same size, maybe same mtime
    with pytest.raises(InputError, match="sha256"):
        load_tokenizer(tmp_path)


def test_git_lfs_pointer_is_an_input_error(tmp_path):
    (tmp_path / "tokenizer.model").write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        f"oid sha256:{LLAMA3_TOKENIZER_SHA256}\nsize 2183982\n")
    with pytest.raises(InputError, match="Git LFS"):
        load_tokenizer(tmp_path)


def test_garbled_file_names_the_bad_line(tmp_path):
    copy_of_tokenizer(tmp_path, lambda d: d.replace(b"Ig== 1\n", b"not base64 at all\n", 1))
    with pytest.raises(InputError, match="line 2 is not a `base64-token rank` pair"):
        load_tokenizer(tmp_path)


def test_broken_link_in_checkpoint_is_an_input_error(tmp_path):
    (tmp_path / "tokenizer.model").symlink_to(tmp_path / "missing")
    with pytest.raises(InputError, match="tokenizer.model"):
        load_tokenizer(tmp_path)


def test_download_offline_says_what_to_do(tmp_path):
    # The Hub is the last resort; offline, its error must say how to get the file instead.
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path))
    code = ("from reference.text.tokenizer import download_tokenizer_model\n"
            "try: download_tokenizer_model()\n"
            "except Exception as e: print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=120).stdout
    assert out.startswith("InputError") and "pip install llama-models" in out and "\n" not in out.strip()
