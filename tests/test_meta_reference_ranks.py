"""Meta's model over two ranks: `Llama3.build` in two processes, as torchrun starts them (RANK,
WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK), on a checkpoint synthesized as two
model-parallel shards, each rank loading its own with Meta's loader unchanged.

Each rank holds half the heads: its q, k, v (turned or not) and attention are its slice of ours.
The first all-reduce (wo's two halves summed) adds in another order than one product does, so
from there on every tensor is ours to 1e-6 of its scale; before it, bit for bit.
The greedy tokens of both ranks are ours. Without fairscale (the test extra) this skips.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("fairscale", reason="Meta's model.py needs fairscale: pip install fairscale==0.4.13 "
                                        "(in the test extra)")

from reference.config import preset  # noqa: E402
from reference.formats import load_checkpoint  # noqa: E402
from reference.formats.synthesize import synthesize  # noqa: E402
from reference.generate import generate  # noqa: E402
from reference.run import run_trace  # noqa: E402

from test_meta_reference import PROMPT, greedy, meta_trace, stand_in_for_the_vision_model  # noqa: E402

WORLD = 2
TIME_LIMIT_S = 120  # a hung rank fails the test instead of hanging the suite
SPLIT = {"q": 0, "k": 0, "v": 0, "q_rotated": 0, "k_rotated": 0, "attention": 1}  # a rank's heads: on this axis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(ckpt_dir: str, out_dir: str) -> None:
    """One rank: build, run the prompt with hooks, generate 8 greedy tokens, save them."""
    stand_in_for_the_vision_model()
    from llama_models.llama3.generation import Llama3

    llama = Llama3.build(ckpt_dir, max_seq_len=64, max_batch_size=1, device="cpu")  # world size from WORLD_SIZE
    llama.model.float()
    tokens = llama.tokenizer.encode(PROMPT, bos=True, eos=False)
    result = {"trace": meta_trace(llama.model, tokens), "ids": greedy(llama, tokens, 8)}
    torch.save(result, Path(out_dir) / f"rank{os.environ['RANK']}.pt")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """(the checkpoint, each rank's result) of Meta's model on two ranks."""
    tmp = tmp_path_factory.mktemp("meta-ranks")
    ckpt_dir = synthesize(preset("tiny", n_layers=2), seed=0, out_dir=tmp / "ckpt", n_shards=WORLD)
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"from test_meta_reference_ranks import rank_main; rank_main({str(ckpt_dir)!r}, {str(tmp)!r})")
    env = {**os.environ, "WORLD_SIZE": str(WORLD), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", code], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for r in range(WORLD)]
    try:
        for p in procs:
            _, err = p.communicate(timeout=TIME_LIMIT_S)
            assert p.returncode == 0, err[-3000:]
    finally:
        for p in procs:
            p.kill()
    return load_checkpoint(ckpt_dir), [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)]


def ours_on(rank: int, name: str, ours: dict) -> torch.Tensor:
    """What rank `rank` holds of our tensor `name`: its slice of the heads, or all of it."""
    kind = name.rsplit(".", 1)[-1]
    return ours[name].chunk(WORLD, dim=SPLIT[kind])[rank] if kind in SPLIT else ours[name]


def test_each_rank_holds_our_tensors_to_1e_6_and_its_first_heads_bit_for_bit(ranks):
    ckpt, results = ranks
    ours = run_trace(ckpt.tokenizer.encode(PROMPT, bos=True, eos=False), ckpt.weights, ckpt.args, dtype=torch.float32)
    for r, result in enumerate(results):
        assert set(result["trace"]) == set(ours) - {"tokens", "next_token"} - {
            f"layers.{i}.{s}" for i in range(ckpt.args.n_layers) for s in ("scores", "attention_weights")}
        for name, t in result["trace"].items():
            expected = ours_on(r, name, ours)
            if name.startswith("layers.0.") and name.rsplit(".", 1)[-1] in SPLIT:  # before any all-reduce
                assert torch.equal(t, expected), (r, name)
            assert float((t - expected).abs().max()) <= 1e-6 * float(expected.abs().max()), (r, name)


def test_both_ranks_generate_our_greedy_tokens(ranks):
    ckpt, results = ranks
    tokens = ckpt.tokenizer.encode(PROMPT, bos=True, eos=False)
    ours = list(generate(tokens, ckpt.weights, ckpt.args, max_new_tokens=8, temperature=0))
    assert [result["ids"] for result in results] == [ours] * WORLD
