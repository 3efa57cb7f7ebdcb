"""Loaded bytes that are not the file's (#14, class 6): a storage the pickle claims larger than its
zip record (memory-mapped, it would read the next record's bytes), a tensor reaching past its
storage, and swapped, duplicated or corrupt files that Meta's checklist.chk would catch — each
one line naming the file and the tensor or checklist entry; a verified checklist costs once."""

import hashlib
import json
import os
import pickletools
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from reference.formats import checklist, load_checkpoint
from reference.formats.synthesize import synthesize

from helpers import walk_refused

TENSOR = "layers.0.attention.wk.weight"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch) -> Path:
    """Each test remembers verified files in its own cache, never the user's."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LLAMA3_REFERENCE_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def two_shards(tmp_path_factory) -> Path:
    return synthesize("tiny", 0, tmp_path_factory.mktemp("storage") / "tiny-2", n_layers=1, n_shards=2)


@pytest.fixture
def ckpt(two_shards, tmp_path) -> Path:
    """A copy of the two-shard checkpoint, ours to break."""
    return Path(shutil.copytree(two_shards, tmp_path / "ckpt"))


# --- crafting a torch.save zip whose pickle and records disagree ---

def rewrite_zip(file: Path, change) -> None:
    """Read every record of the zip, let `change` edit the dict name -> bytes, write it back."""
    with zipfile.ZipFile(file) as archive:
        records = {info.filename: archive.read(info) for info in archive.infolist()}
    change(records)
    with zipfile.ZipFile(file, "w") as archive:
        for name, data in records.items():
            archive.writestr(name, data)


def pickle_of(records: dict) -> str:
    return next(name for name in records if name.endswith("/data.pkl"))


def claim(pkl: bytes, tensor: str, numel: int) -> tuple[bytes, str, int]:
    """`pkl` with `tensor`'s storage claiming `numel` elements; and its storage key, old numel.

    The persistent id ('storage', torch.BFloat16Storage, key, 'cpu', numel) is a TUPLE followed
    by BINPERSID, with numel the last item before the TUPLE; the tensor's name comes just before."""
    ops = list(pickletools.genops(pkl))
    start = next(i for i, (op, arg, _) in enumerate(ops) if op.name == "BINUNICODE" and arg == tensor)
    persid = next(i for i in range(start, len(ops)) if ops[i][0].name == "BINPERSID")
    tup = max(i for i in range(start, persid) if ops[i][0].name == "TUPLE")
    mark = max(i for i in range(start, tup) if ops[i][0].name == "MARK")
    key = next(arg for op, arg, _ in ops[mark:tup] if isinstance(arg, str) and arg.isdigit())
    op, old, pos = ops[tup - 1]
    end = ops[tup][2]
    return pkl[:pos] + b"J" + numel.to_bytes(4, "little", signed=True) + pkl[end:], key, old


def test_a_storage_claimed_larger_than_its_record_is_refused_naming_the_tensor(capsys, ckpt):
    shard = ckpt / "consolidated.01.pth"

    def bigger(records):
        name = pickle_of(records)
        records[name], _, _ = claim(records[name], TENSOR, 10**6)
    rewrite_zip(shard, bigger)
    walk_refused(capsys, ckpt, str(shard), TENSOR, "1,000,000 elements", "record holds", "corrupt")


def test_a_data_record_shorter_than_its_storage_is_refused_naming_the_tensor(capsys, ckpt):
    shard = ckpt / "consolidated.00.pth"
    key = {}

    def shorter(records):
        name = pickle_of(records)
        _, key["key"], _ = claim(records[name], TENSOR, 0)
        record = name.replace("data.pkl", f"data/{key['key']}")
        records[record] = records[record][: len(records[record]) // 2]
    rewrite_zip(shard, shorter)
    err = walk_refused(capsys, ckpt, str(shard), TENSOR, f"data/{key['key']}", "record holds")
    assert "download it again" in err


def test_an_untouched_rewritten_zip_still_loads(ckpt, two_shards):
    """The crafting itself breaks nothing: the tests above fail for the claim alone."""
    rewrite_zip(ckpt / "consolidated.00.pth", lambda records: None)
    assert torch.equal(load_checkpoint(ckpt).weights[TENSOR], load_checkpoint(two_shards).weights[TENSOR])


def test_a_tensor_reaching_past_its_storage_is_refused_naming_the_tensor(capsys, ckpt):
    shard = ckpt / "consolidated.00.pth"

    def halved(records):  # storage and record agree on half the bytes; the tensor still wants all
        name = pickle_of(records)
        _, key, numel = claim(records[name], TENSOR, 0)
        records[name], _, _ = claim(records[name], TENSOR, numel // 2)
        record = name.replace("data.pkl", f"data/{key}")
        records[record] = records[record][: len(records[record]) // 2]
    rewrite_zip(shard, halved)
    walk_refused(capsys, ckpt, str(shard), TENSOR, "needs 2,048 elements of its storage", "holds 1,024")


def grow_in_directory(file: Path, record: str, size: int) -> None:
    """Say in the zip's central directory that `record` holds `size` bytes (its bytes stay as they are)."""
    data = bytearray(file.read_bytes())
    at = data.index(b"PK\x01\x02")  # the first central directory header
    while data[at + 46: at + 46 + len(record)] != record.encode() or data[at:at + 4] != b"PK\x01\x02":
        at = data.index(b"PK\x01\x02", at + 1)
    data[at + 20: at + 28] = size.to_bytes(4, "little") * 2  # compressed and uncompressed size
    file.write_bytes(bytes(data))


def test_a_record_whose_zip_size_runs_into_the_next_record_is_refused(capsys, ckpt):
    shard = ckpt / "consolidated.00.pth"
    found = {}

    def doubled(records):  # the pickle claims twice the elements, as the directory will
        name = pickle_of(records)
        _, key, numel = claim(records[name], TENSOR, 0)
        records[name], _, _ = claim(records[name], TENSOR, 2 * numel)
        found["record"], found["bytes"] = name.replace("data.pkl", f"data/{key}"), 4 * numel
    rewrite_zip(shard, doubled)
    grow_in_directory(shard, found["record"], found["bytes"])
    walk_refused(capsys, ckpt, str(shard), found["record"], f"claims {found['bytes']:,} bytes", "run into")


# --- checklist.chk ---

def write_checklist(ckpt: Path, names=None) -> Path:
    """Meta's checklist.chk, as md5sum writes it, from the files as they are now."""
    names = names or ["consolidated.00.pth", "consolidated.01.pth", "params.json", "tokenizer.model"]
    lines = [f"{hashlib.md5((ckpt / n).read_bytes()).hexdigest()}  {n}" for n in names]
    (ckpt / "checklist.chk").write_text("\n".join(lines) + "\n")
    return ckpt / "checklist.chk"


def swap(a: Path, b: Path) -> None:
    tmp = a.with_name("swap.tmp")
    os.rename(a, tmp)
    os.rename(b, a)
    os.rename(tmp, b)


def test_swapped_shards_are_refused_by_the_checklist(capsys, ckpt):
    write_checklist(ckpt)
    swap(ckpt / "consolidated.00.pth", ckpt / "consolidated.01.pth")
    walk_refused(capsys, ckpt, str(ckpt / "consolidated.00.pth"), "checklist.chk",
                   "md5 listed for consolidated.01.pth", "swapped")


def test_a_duplicated_shard_is_refused_by_the_checklist(capsys, ckpt):
    write_checklist(ckpt)
    shutil.copy(ckpt / "consolidated.00.pth", ckpt / "consolidated.01.pth")
    walk_refused(capsys, ckpt, str(ckpt / "consolidated.01.pth"), "md5 listed for consolidated.00.pth")


def test_one_changed_byte_in_a_shard_is_refused_by_the_checklist(capsys, ckpt):
    write_checklist(ckpt)
    shard = ckpt / "consolidated.01.pth"
    data = bytearray(shard.read_bytes())
    data[-2000] ^= 1  # in the last tensor's bytes: torch.load would take it without a word
    shard.write_bytes(bytes(data))
    walk_refused(capsys, ckpt, str(shard), "does not match checklist.chk", "corrupt")


def test_a_file_the_checklist_lists_but_the_directory_lacks_is_named(capsys, ckpt):
    write_checklist(ckpt)
    with open(ckpt / "checklist.chk", "a") as f:
        f.write(f"{'0' * 32}  consolidated.02.pth\n")
    walk_refused(capsys, ckpt, str(ckpt / "consolidated.02.pth"), "listed in", "absent")


def test_a_checklist_line_that_is_not_md5sum_output_is_named(capsys, ckpt):
    (ckpt / "checklist.chk").write_text("not an md5  params.json\n")
    walk_refused(capsys, ckpt, "checklist.chk", "line 1", "md5sum")


def test_a_checklist_name_outside_the_directory_is_refused(capsys, ckpt):
    (ckpt / "checklist.chk").write_text(f"{'0' * 32}  ../secret\n")
    walk_refused(capsys, ckpt, "checklist.chk", "../secret", "not a file in")


def test_a_good_checklist_loads_the_same_weights(ckpt, two_shards):
    write_checklist(ckpt)
    with_checklist, without = load_checkpoint(ckpt), load_checkpoint(two_shards)
    assert torch.equal(with_checklist.weights[TENSOR], without.weights[TENSOR])


def test_a_verified_checklist_is_hashed_once(ckpt, own_cache, monkeypatch):
    write_checklist(ckpt)
    load_checkpoint(ckpt)
    remembered = json.loads((own_cache / "verified.json").read_text())
    for name in ["consolidated.00.pth", "consolidated.01.pth", "params.json", "tokenizer.model"]:
        entry = remembered[str((ckpt / name).resolve())]
        assert entry["md5"] == hashlib.md5((ckpt / name).read_bytes()).hexdigest()

    def no_hashing(path, bar=None):
        raise AssertionError(f"{path} hashed again")
    monkeypatch.setattr(checklist, "md5_of", no_hashing)
    load_checkpoint(ckpt)  # every file is known by its size, mtime and inode: nothing is read


def test_shards_swapped_after_verification_are_hashed_again_and_refused(capsys, ckpt):
    write_checklist(ckpt)
    load_checkpoint(ckpt)
    a, b = ckpt / "consolidated.00.pth", ckpt / "consolidated.01.pth"
    times = a.stat().st_mtime_ns
    swap(a, b)
    os.utime(a, ns=(times, times))  # same size, same mtime as the verified file: only the inode differs
    os.utime(b, ns=(times, times))
    walk_refused(capsys, ckpt, str(a), "md5 listed for consolidated.01.pth")


def test_a_shard_rewritten_in_place_with_its_size_and_mtime_kept_is_hashed_again_and_refused(capsys, ckpt):
    write_checklist(ckpt)
    load_checkpoint(ckpt)
    a = ckpt / "consolidated.00.pth"
    before = a.stat()
    data = bytearray(a.read_bytes())
    data[-100] ^= 0xFF  # one byte of the zip's data, same length: same size, same inode
    with open(a, "r+b") as f:  # in place, not a new file
        f.write(data)
    os.utime(a, ns=(before.st_atime_ns, before.st_mtime_ns))  # the mtime set back, as `touch -d` would
    assert (a.stat().st_size, a.stat().st_mtime_ns, a.stat().st_ino) == (before.st_size, before.st_mtime_ns,
                                                                         before.st_ino)
    walk_refused(capsys, ckpt, str(a), "md5")


def test_a_damaged_cache_is_ignored(ckpt, own_cache):
    write_checklist(ckpt)
    own_cache.mkdir()
    (own_cache / "verified.json").write_text("{not json")
    load_checkpoint(ckpt)
    assert str((ckpt / "params.json").resolve()) in json.loads((own_cache / "verified.json").read_text())


@pytest.mark.parametrize("kind, says", [("sparse", "is a torch.sparse_coo tensor"),
                                        ("meta", "is a meta tensor: a shape without data")])
def test_a_tensor_without_dense_values_is_refused_on_loading_not_in_the_pass(tiny_dir, tmp_path, kind, says):
    from helpers import refused, write_checkpoint

    weights = torch.load(tiny_dir / "consolidated.00.pth", weights_only=True)
    name = "layers.0.feed_forward.w1.weight"
    weights[name] = weights[name].to_sparse() if kind == "sparse" else torch.empty_like(weights[name], device="meta")
    refused(write_checkpoint(tiny_dir, tmp_path / kind, weights), "consolidated.00.pth", name, says)
