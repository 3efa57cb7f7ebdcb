"""Nothing the user owns is lost: goldens regenerate all or nothing, only into their own
directories, one run at a time; synthesize checks the disk before it writes.

Everything runs on real files under tmp_path; the kill is a real SIGKILL of a real run.
"""

import json
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reference.verify import swap
from reference.verify import goldens
from reference.cli import main
from reference.config import ModelArgs
from reference.errors import InputError
from reference.formats.synthesize import synthesize

from helpers import one_line_error

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = {f"p{i}": f"prompt number {i}: the quick brown fox jumps over the lazy dog" for i in range(3)}


def quiet(line):
    pass


def contents(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def beside(directory: Path) -> list[str]:
    """Everything in the directory's parent: the directory itself and anything left over."""
    return sorted(p.name for p in directory.parent.iterdir())


def tampered(directory: Path) -> None:
    """Change every golden beyond tolerance, so that the next regeneration rewrites them all."""
    for path in directory.glob("*.npz"):
        arrays = goldens.read_npz(path)
        arrays["norm"] = arrays["norm"] + 1
        goldens.write_npz(path, arrays)


# --- only into directories goldens made ---

def users_directory(tmp_path: Path) -> Path:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "checkpoint.json").write_text('{"step": 1000}\n', encoding="utf-8")
    (mine / "hello.tokens.json").write_text("my notes\n", encoding="utf-8")
    return mine


def test_goldens_refuse_a_directory_holding_someone_elses_checkpoint_json(small, tmp_path):
    mine = users_directory(tmp_path)
    before = contents(mine)
    with pytest.raises(InputError) as excinfo:
        goldens.regenerate(small, mine, {"hello": "Hello"}, echo=quiet)
    one_line_error(excinfo, str(mine), "is not a goldens directory", "--force")
    assert contents(mine) == before and beside(mine) == ["mine"]


def test_cli_goldens_refuse_a_users_directory_in_one_line(small_dir, tmp_path, capsys):
    mine = users_directory(tmp_path)
    prompts = tmp_path / "prompts.json"
    prompts.write_text('{"hello": "Hello"}', encoding="utf-8")
    code = main(["goldens", "--checkpoint", str(small_dir), "--prompts", str(prompts), "--out", str(mine)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {mine}: is not a goldens directory") and err.count("\n") == 1


def test_force_writes_goldens_into_a_users_directory_keeping_their_other_files(small, tmp_path):
    mine = users_directory(tmp_path)
    (mine / "diary.txt").write_text("dear diary\n", encoding="utf-8")
    assert goldens.regenerate(small, mine, {"hello": "Hello"}, force=True, echo=quiet) == ["hello"]
    assert sorted(contents(mine)) == ["checkpoint.json", "diary.txt", "hello.npz", "hello.tokens.json"]
    assert (mine / "diary.txt").read_text(encoding="utf-8") == "dear diary\n"


def test_goldens_refuse_an_out_that_is_a_file_even_with_force(small, tmp_path):
    out = tmp_path / "notes.txt"
    out.write_text("mine\n", encoding="utf-8")
    with pytest.raises(InputError) as excinfo:
        goldens.regenerate(small, out, {"hello": "Hello"}, force=True, echo=quiet)
    one_line_error(excinfo, f"{out}: is a file, not a goldens directory")
    assert out.read_text(encoding="utf-8") == "mine\n" and beside(out) == ["notes.txt"]


def test_the_repositorys_goldens_are_recognised_and_left_alone_when_up_to_date(tiny, tmp_path):
    copy = shutil.copytree(goldens.TINY_GOLDENS, tmp_path / "tiny-seed0")
    before = {p.name: (p.stat().st_ino, p.read_bytes()) for p in copy.iterdir()}
    assert goldens.regenerate(tiny, copy, goldens.load_prompts(), ["walkthrough"], echo=quiet) == []  # the shortest
    assert {p.name: (p.stat().st_ino, p.read_bytes()) for p in copy.iterdir()} == before


# --- all or nothing ---

def test_a_failed_regeneration_leaves_the_old_set_and_nothing_beside_it(small, tmp_path):
    g = tmp_path / "g"
    goldens.regenerate(small, g, {"hello": "Hello"}, echo=quiet)
    tampered(g)
    old = contents(g)
    with pytest.raises(InputError, match="more than max_seq_len"):  # after the first prompt was rewritten
        goldens.regenerate(small, g, {"hello": "Hello", "bad": "x" * 200_000}, echo=quiet)
    assert contents(g) == old and beside(g) == ["g"]


def interrupted(small, tmp_path: Path, state: str) -> tuple[Path, dict, dict]:
    """g as a run killed in `state` leaves it; (g, the old set, the new set). The old set has
    one prompt, the new one two, so which of them is in place shows at a glance."""
    g, made = tmp_path / "g", tmp_path / "made"
    goldens.regenerate(small, g, {"hello": "Hello"}, echo=quiet)
    goldens.regenerate(small, made, {"hello": "Hello", "world": "world!"}, echo=quiet)
    old, new = contents(g), contents(made)
    staging, replaced = swap.staging_paths(g)
    if state == "building":  # part of the new set written into the staging directory
        swap.stage_dir(g)
        shutil.copy(made / "world.npz", staging)
    elif state == "between the renames":
        g.rename(replaced)
        made.rename(staging)
    elif state == "deleting the old set":
        g.rename(replaced)
        made.rename(g)
        (replaced / "hello.npz").unlink()
    shutil.rmtree(made, ignore_errors=True)
    return g, old, new


@pytest.mark.parametrize("state, kept", [("building", "old"), ("between the renames", "new"),
                                         ("deleting the old set", "new")])
def test_a_regeneration_killed_while_state_is_finished_or_undone_by_the_next(small, tmp_path, state, kept):
    g, old, new = interrupted(small, tmp_path, state)
    lines = []
    goldens.regenerate(small, g, {"hello": "Hello", "world": "world!"}, names=["hello"], echo=lines.append)
    assert lines[0].startswith(f"{g}: an interrupted run")
    assert contents(g) == (old if kept == "old" else new) and beside(g) == ["g"]


def test_a_run_killed_with_sigkill_leaves_the_old_set_or_the_new_one(small, small_dir, tmp_path):
    g = tmp_path / "g"
    goldens.regenerate(small, g, PROMPTS, echo=quiet)
    tampered(g)  # so that the killed run has every golden to rewrite
    old = contents(g)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(PROMPTS), encoding="utf-8")
    start = time.time_ns()
    run = subprocess.Popen([sys.executable, "-m", "reference", "goldens", "--checkpoint", str(small_dir),
                            "--prompts", str(prompts), "--out", str(g)], cwd=ROOT, stdout=subprocess.DEVNULL)
    while run.poll() is None and not written_since(start, tmp_path):
        time.sleep(0.001)
    time.sleep(0.01)  # into the middle of writing the new set, a golden or two written
    run.send_signal(signal.SIGKILL)
    run.wait()
    found = contents(g)
    goldens.regenerate(small, g, PROMPTS, echo=quiet)  # recovers, then brings it up to date
    new = contents(g)
    assert found == old or found == new, sorted(n for n in found if found[n] != old.get(n))
    assert new != old and beside(g) == ["g", "prompts.json"]


def written_since(start: int, directory: Path) -> bool:
    """Whether a golden was written anywhere under `directory`, hidden directories too."""
    for path in directory.rglob("*.npz"):
        try:
            if path.stat().st_mtime_ns > start:
                return True
        except FileNotFoundError:  # renamed away meanwhile
            pass
    return False


# --- one run at a time ---

def test_a_second_regeneration_at_once_is_refused_in_one_line(small, small_dir, tmp_path, capsys):
    g = tmp_path / "g"
    goldens.regenerate(small, g, {"hello": "Hello"}, echo=quiet)
    tampered(g)
    before = contents(g)
    prompts = tmp_path / "prompts.json"
    prompts.write_text('{"hello": "Hello"}', encoding="utf-8")
    with swap.lock_beside(g, "test"):  # as a running `goldens` holds it
        code = main(["goldens", "--checkpoint", str(small_dir), "--prompts", str(prompts), "--out", str(g)])
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: {g}: another `goldens` run is running in {tmp_path}; " \
                                "wait for it to finish, then run again\n"
    assert contents(g) == before


# --- synthesize: the disk is checked first ---

HUGE = ModelArgs(dim=1 << 17, n_layers=1024, n_heads=1024, vocab_size=1 << 22)  # about 0.4 PB of weights


def test_synthesize_refuses_a_checkpoint_larger_than_the_free_space(tmp_path):
    with pytest.raises(InputError) as excinfo:
        synthesize(HUGE, seed=0, out_dir=tmp_path / "huge")
    message = one_line_error(excinfo, str(tmp_path / "huge"), "the checkpoint needs", "bytes but only", "are free")
    needed, free = (int(n.replace(",", "")) for n in message.split("needs ")[1].split(" are")[0].split(" bytes but only "))
    assert needed > 10**14 > free
    assert list(tmp_path.iterdir()) == []


def test_free_space_refusal_names_the_partial_directory_of_a_killed_run(tmp_path):
    (tmp_path / ".huge.x1y2.partial").mkdir()
    with pytest.raises(InputError) as excinfo:
        synthesize(HUGE, seed=0, out_dir=tmp_path / "huge")
    one_line_error(excinfo, ".huge.x1y2.partial beside it is left from an interrupted run: delete it")


def test_cli_synthesize_on_a_too_small_disk_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "big"
    args = ["synthesize", "--preset", "llama3.1-405b", "--n-layers", "1024", "--out", str(out)]  # about 6.5 TB
    if shutil.disk_usage(tmp_path).free > 7 * 10**12:
        pytest.skip("this disk has room for 6.5 TB")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out}: the checkpoint needs ") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_synthesize_failing_part_way_leaves_no_partial_directory(tmp_path):
    def small_files():  # writes past 8 MB fail with EFBIG, as they would on a full disk with ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, resource.RLIM_INFINITY))
    run = subprocess.run([sys.executable, "-m", "reference", "synthesize", "--out", str(tmp_path / "t")],
                         cwd=ROOT, capture_output=True, text=True, preexec_fn=small_files)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(f"error: {tmp_path / 't'}: cannot write the checkpoint") and run.stderr.count("\n") == 1
    assert [p.name for p in tmp_path.iterdir()] == []
