"""Tensor parallelism: N processes, each holding 1/N of the model, compute what one process does.

The ranks are real processes talking over gloo on localhost, started as torchrun starts them
(tests/ranks.py); the checkpoints are synthesized with 2 and 4 model-parallel shards.
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reference.parallel import split
from reference.config import ModelArgs
from reference.formats import load_checkpoint
from reference.generate import generate
from reference.formats.synthesize import synthesize
from reference.run import load_trace, run_trace

PROMPT = "the answer to the ultimate question of life, the universe, and everything is "
RANKS = Path(__file__).with_name("ranks.py")
TIME_LIMIT_S = 120  # a hung rank fails the test instead of hanging the suite
KV4 = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=4, vocab_size=128_256)  # shapes 4 ranks can split
KV3 = ModelArgs(dim=96, n_layers=1, n_heads=6, n_kv_heads=3, vocab_size=128_256)  # 2 ranks cannot


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_ranks(world: int, jobs: list[dict], tmp: Path) -> dict[str, list[dict]]:
    """Start `world` processes running `jobs` (see tests/ranks.py); job name -> each rank's result."""
    for job, port in zip(jobs, free_ports(len(jobs))):
        job["port"] = port
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(RANKS.parents[1])}
    procs = [subprocess.Popen([sys.executable, str(RANKS), str(tmp / "jobs.json"), str(tmp)], env={**env, "RANK": str(r)},
                              stderr=subprocess.PIPE, text=True) for r in range(world)]
    for p in procs:
        _, err = p.communicate(timeout=TIME_LIMIT_S)
        assert p.returncode == 0, err[-3000:]
    return {job["name"]: [json.loads((tmp / f"{job['name']}.{r}.json").read_text()) if (tmp / f"{job['name']}.{r}.json").exists()
                          else None for r in range(world)] for job in jobs}


def relative_error(ours: np.ndarray, single: np.ndarray) -> float:
    finite = np.isfinite(single)  # the masked scores are -inf in both
    assert (finite == np.isfinite(ours)).all()
    return float(np.abs(ours[finite] - single[finite]).max() / max(np.abs(single[finite]).max(), 1e-30))


def assert_same_trace(file: Path, checkpoint: Path):
    """The trace rank 0 wrote equals one process's (the literal path) to 1e-6 relative, name by name."""
    ckpt = load_checkpoint(checkpoint)
    single = run_trace(ckpt.tokenizer.encode(PROMPT, bos=True, eos=False), ckpt.weights, ckpt.args)
    ours = load_trace(file)
    assert list(ours) == list(single)
    for name, t in single.items():
        t = t.numpy()
        assert ours[name].shape == t.shape, name
        if t.dtype.kind == "f":
            assert relative_error(ours[name], t) <= 1e-6, name
        else:
            assert (ours[name] == t).all(), name


def trace_job(name: str, checkpoint: Path, out: Path) -> dict:
    return {"name": name, "argv": ["trace", "--checkpoint", str(checkpoint), "--prompt", PROMPT, "--out", str(out)]}


def generate_job(name: str, checkpoint: Path, *options: str) -> dict:
    return {"name": name, "argv": ["generate", "--checkpoint", str(checkpoint), "--prompt", PROMPT,
                                   "--max-new-tokens", "6", "--json", *options]}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_dir, tiny):
    from test_gguf import write_gguf
    from test_hf_checkpoint import save_hf

    root = tmp_path_factory.mktemp("parallel")
    write_gguf(root / "small.gguf")  # Q8_0 matrices: each rank slices the expanded float32 map
    made = {"one file": tiny_dir, "gguf": root / "small.gguf", "hugging face": save_hf(tiny, root / "hf"),
            "two shards": synthesize("tiny", 0, root / "two", n_layers=2, n_shards=2),
            "four shards": synthesize(KV4, 0, root / "four", n_shards=4),
            "four heads, two shards": synthesize(KV4, 0, root / "four-two", n_shards=2),
            "three kv heads": synthesize(KV3, 0, root / "kv3", n_shards=1)}
    corrupt = shutil.copytree(made["two shards"], root / "corrupt")
    with open(corrupt / "consolidated.01.pth", "r+b") as f:
        f.truncate(1 << 20)
    for rank in (0, 1):  # two machines: the second lacks the shard it owns
        machine = root / "machines" / f"rank{rank}"
        machine.mkdir(parents=True)
        for file in made["two shards"].iterdir():
            if not (rank == 1 and file.name == "consolidated.01.pth"):
                (machine / file.name).symlink_to(file)
    made["machines"] = root / "machines"
    made["corrupt"] = corrupt
    swapped = shutil.copytree(made["two shards"], root / "swapped")  # Meta's checklist.chk, then the shards swapped
    sums = {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in sorted(swapped.iterdir())}
    (swapped / "checklist.chk").write_text("".join(f"{md5}  {name}\n" for name, md5 in sums.items()))
    (swapped / "consolidated.00.pth").rename(swapped / "x")
    (swapped / "consolidated.01.pth").rename(swapped / "consolidated.00.pth")
    (swapped / "x").rename(swapped / "consolidated.01.pth")
    made["swapped"] = swapped
    return made


@pytest.fixture(scope="module")
def two_ranks(checkpoints, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two-ranks")
    jobs = [trace_job("two shards", checkpoints["two shards"], tmp / "two.npz"),
            trace_job("one file", checkpoints["one file"], tmp / "one.npz"),
            trace_job("four shards", checkpoints["four shards"], tmp / "four.npz"),
            trace_job("gguf", checkpoints["gguf"], tmp / "gguf.npz"),
            trace_job("hugging face", checkpoints["hugging face"], tmp / "hf.npz"),
            generate_job("greedy", checkpoints["two shards"], "--temperature", "0"),
            {"name": "walk", "argv": ["walk", "--checkpoint", str(checkpoints["two shards"]), "--prompt", PROMPT]},
            trace_job("kv3", checkpoints["three kv heads"], tmp / "kv3.npz"),
            trace_job("corrupt", checkpoints["corrupt"], tmp / "corrupt.npz"),
            trace_job("machines", checkpoints["machines"] / "rank{rank}", tmp / "machines.npz"),
            trace_job("swapped", checkpoints["swapped"], tmp / "swapped.npz"),
            {"name": "synthesize", "argv": ["synthesize", "--out", str(tmp / "s")]},
            {**trace_job("alone", checkpoints["two shards"], tmp / "alone.npz"), "ranks": [0], "timeout": 1}]
    return tmp, run_ranks(2, jobs, tmp)


@pytest.fixture(scope="module")
def four_ranks(checkpoints, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("four-ranks")
    jobs = [trace_job("four shards", checkpoints["four shards"], tmp / "four.npz"),
            trace_job("four heads, two shards", checkpoints["four heads, two shards"], tmp / "two.npz")]
    return tmp, run_ranks(4, jobs, tmp)


# --- the trace: the same as one process's ---

@pytest.mark.parametrize("job, file", [("two shards", "two.npz"), ("one file", "one.npz"), ("four shards", "four.npz"),
                                       ("gguf", "gguf.npz"), ("hugging face", "hf.npz")])
def test_two_ranks_write_the_trace_one_process_writes(two_ranks, checkpoints, job, file):
    tmp, results = two_ranks
    assert [r["rc"] for r in results[job]] == [0, 0]
    assert_same_trace(tmp / file, checkpoints[job])


@pytest.mark.parametrize("job, file", [("four shards", "four.npz"), ("four heads, two shards", "two.npz")])
def test_four_ranks_write_the_trace_one_process_writes(four_ranks, checkpoints, job, file):
    tmp, results = four_ranks
    assert [r["rc"] for r in results[job]] == [0] * 4
    assert_same_trace(tmp / file, checkpoints[job])


def test_only_rank_0_prints(two_ranks):
    walk = two_ranks[1]["walk"]
    assert "next token" in walk[0]["stdout"] and "split over 2 ranks" in walk[0]["stdout"]
    assert walk[1]["stdout"] == ""


# --- rank r maps only what it owns ---

def test_with_as_many_ranks_as_shards_rank_r_maps_only_shard_r(four_ranks):
    mapped = [[Path(f).name for f in r["mapped"]] for r in four_ranks[1]["four shards"]]
    assert mapped == [[f"consolidated.{r:02d}.pth"] for r in range(4)]


def test_with_fewer_ranks_each_maps_a_contiguous_group_of_shards(two_ranks):
    mapped = [[Path(f).name for f in r["mapped"]] for r in two_ranks[1]["four shards"]]
    assert mapped == [["consolidated.00.pth", "consolidated.01.pth"], ["consolidated.02.pth", "consolidated.03.pth"]]


def test_with_more_ranks_two_share_one_shard(four_ranks):
    mapped = [[Path(f).name for f in r["mapped"]] for r in four_ranks[1]["four heads, two shards"]]
    assert mapped == [["consolidated.00.pth"]] * 2 + [["consolidated.01.pth"]] * 2


def test_a_rank_holds_one_nth_of_every_split_weight(checkpoints):
    whole = load_checkpoint(checkpoints["one file"]).weights
    mine = split.RankWeights([whole], part=1, parts=2)
    assert torch.equal(mine["layers.0.attention.wq.weight"], whole["layers.0.attention.wq.weight"][64:])
    assert torch.equal(mine["layers.0.attention.wo.weight"], whole["layers.0.attention.wo.weight"][:, 64:])
    assert torch.equal(mine["tok_embeddings.weight"], whole["tok_embeddings.weight"][64_128:])
    assert mine["norm.weight"] is whole["norm.weight"]


# --- generate: the same tokens ---

def test_two_ranks_generate_the_greedy_tokens_of_one_process(two_ranks, checkpoints):
    """Greedy, so identical; a sampled draw may differ where two probabilities are within float
    rounding of each other, as between any two ways of summing the same products."""
    ckpt = load_checkpoint(checkpoints["two shards"])
    prompt = ckpt.tokenizer.encode(PROMPT, bos=True, eos=False)
    single = list(generate(prompt, ckpt.weights, ckpt.args, max_new_tokens=6, temperature=0,
                           stop_tokens=ckpt.tokenizer.stop_tokens))
    results = two_ranks[1]["greedy"]
    assert [r["rc"] for r in results] == [0, 0]
    assert json.loads(results[0]["stdout"])["tokens"] == single


# --- bad configurations: every rank stops, each with one line, none left waiting ---

def one_line_each(results) -> list[str]:
    lines = [r["stderr"] for r in results]
    assert [r["rc"] for r in results] == [2] * len(results), lines
    assert all(line.startswith("error: ") and line.count("\n") == 1 for line in lines), lines
    return lines


def test_a_world_size_that_does_not_divide_the_kv_heads_is_refused_on_every_rank(two_ranks):
    lines = one_line_each(two_ranks[1]["kv3"])
    assert all("WORLD_SIZE 2 does not divide n_kv_heads 3" in line for line in lines)


def test_a_shard_that_fails_to_load_on_one_rank_stops_every_rank(two_ranks):
    first, second = one_line_each(two_ranks[1]["corrupt"])
    assert "rank 1 of 2: " in second and "consolidated.01.pth: truncated or corrupt" in second
    assert "rank 0 of 2 stops because rank 1 failed" in first and "consolidated.01.pth" in first


def test_a_shard_missing_on_one_machine_stops_every_rank(two_ranks):
    first, second = one_line_each(two_ranks[1]["machines"])
    assert "rank1" in second and "2 model-parallel shards, but only this one is here" in second
    assert "rank 0 of 2 stops because rank 1 failed" in first


def test_each_rank_checks_its_own_shards_against_checklist_chk(two_ranks):
    first, second = one_line_each(two_ranks[1]["swapped"])
    assert "rank 0 of 2: " in first and "consolidated.00.pth: md5" in first
    assert "it is the md5 listed for consolidated.01.pth" in first
    assert "rank 1 of 2: " in second and "it is the md5 listed for consolidated.00.pth" in second


def test_commands_that_do_not_split_are_refused_under_torchrun(two_ranks):
    lines = one_line_each(two_ranks[1]["synthesize"])
    assert all("synthesize runs as one process" in line for line in lines)


def test_a_rank_that_never_comes_is_not_waited_for_forever(two_ranks):
    alone = two_ranks[1]["alone"]
    assert alone[1] is None  # rank 1 never started this job
    assert alone[0]["rc"] == 2 and "rank 0 of 2 could not join the others" in alone[0]["stderr"]


# --- the command itself, as the docs give it ---

def test_torchrun_trace_writes_the_single_process_trace(checkpoints, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "t.npz"
    done = subprocess.run([str(torchrun), "--nproc-per-node", "2", "--master-port", str(free_ports(1)[0]),
                           "-m", "reference", "trace", "--checkpoint", str(checkpoints["two shards"]),
                           "--prompt", PROMPT, "--out", str(out)], capture_output=True, text=True,
                          timeout=TIME_LIMIT_S, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=RANKS.parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"wrote {out}: 17 tokens, 2 layers"
    assert_same_trace(out, checkpoints["two shards"])


@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf"])
def test_a_timeout_that_is_not_a_number_of_seconds_is_refused(monkeypatch, value):
    from reference.parallel import torchrun
    from reference.errors import InputError

    monkeypatch.setenv("LLAMA3_REFERENCE_DIST_TIMEOUT", value)
    with pytest.raises(InputError, match="LLAMA3_REFERENCE_DIST_TIMEOUT="):
        torchrun._timeout()
