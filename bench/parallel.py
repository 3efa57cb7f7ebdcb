"""Tensor parallelism, measured: per-rank memory and prefill time for 1 and 2 ranks.

    .venv/bin/python bench/parallel.py [--repeats 3] [--device cpu|cuda] [--out docs/data/parallel.md]

On the 8B-shaped 2-layer checkpoint synthesized with 2 model-parallel shards (into the cache,
once, ~3 GB): one process reading the same weights from one file (bench.py's checkpoint), one
process reading both shards as one model (`ShardedWeights`), both on the batched path, then
`torchrun --nproc-per-node 2` with each rank mapping its own shard. For every process:
the bytes of checkpoint files it has memory-mapped and the part of them it actually read
(/proc/self/smaps), its peak anonymous memory (RssAnon, sampled), and the prefill time of
the walk-through's 17 tokens and of 512 tokens (min / median of --repeats).

A rank runs this same file with --rank (torchrun starts it), so both sides measure alike.
On a machine with as many cores as ranks each rank gets cores of its own; on a 2-core
machine 2 ranks share them, so time shows the exchange's cost more than the split's gain.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402 - bench/ is not a package

from reference import batched  # noqa: E402
from reference.parallel import split
from reference.config import preset  # noqa: E402
from reference.files import cache_dir, write_text  # noqa: E402
from reference.formats import load_checkpoint  # noqa: E402
from reference.formats.synthesize import synthesize  # noqa: E402

LENGTHS = (17, 512)


def two_shard_checkpoint() -> Path:
    path = cache_dir() / "bench-llama3-8b-2layers-seed0-2shards"
    if not path.exists():
        print(f"synthesizing an 8B-shaped 2-layer checkpoint in 2 shards into {path} (once) …", flush=True)
        synthesize(preset("llama3-8b", n_layers=2), seed=0, out_dir=path, n_shards=2)
    return path


def mapped_checkpoint_bytes() -> tuple[int, int]:
    """(bytes mapped, bytes of them resident) over this process's mappings of *.pth files."""
    size = rss = 0
    current = None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            current = line.endswith(".pth")
        elif current and line.startswith("Size:"):
            size += int(line.split()[1]) * 1024
        elif current and line.startswith("Rss:"):
            rss += int(line.split()[1]) * 1024
    return size, rss


def measure(ckpt, forward, device, repeats: int) -> dict:
    """Prefill times and memory of one process (a rank, or the single process)."""
    tokens = {n: torch.tensor(harness.prompt_tokens(ckpt.tokenizer, None if n == 17 else n)) for n in LENGTHS}
    result = {}
    with harness.PeakAnon() as peak:
        for n, t in tokens.items():
            result[f"prefill {n}"] = harness.timed(
                lambda: (forward(t, ckpt.weights, ckpt.args, device=device, last_only=True), harness.sync(device)),
                repeats)
    result["mapped"], result["read"] = mapped_checkpoint_bytes()
    result["peak anon"] = peak.peak
    return result


def rank_main(path: Path, device_name: str, repeats: int, out: Path) -> None:
    """One rank under torchrun: load its slice as the CLI does, measure, write RANK.json."""
    import torch.distributed as dist

    from reference.parallel import torchrun

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if device_name == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    _, ckpt = torchrun.load_rank(str(path), torchrun.Ranks(rank, world, device))
    result = measure(ckpt, split.forward, device, repeats)
    (out / f"{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def table(rows: list[tuple[str, dict]]) -> str:
    gib = 2**30
    lines = ["| process | checkpoint mapped | of it read | peak RssAnon (the process) | "
             + " | ".join(f"prefill {n} tokens (min / median)" for n in LENGTHS) + " |",
             "|---|---|---|---|" + "---|" * len(LENGTHS)]
    for run, r in rows:
        times = " | ".join(f"{r[f'prefill {n}'][0]:.2f} / {r[f'prefill {n}'][1]:.2f} s" for n in LENGTHS)
        lines.append(f"| {run} | {r['mapped'] / gib:.2f} GiB | {r['read'] / gib:.2f} GiB | "
                     f"{r['peak anon'] / gib:.2f} GiB | {times} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default=str(harness.ROOT / "docs" / "data" / "parallel.md"))
    parser.add_argument("--rank", action="store_true", help=argparse.SUPPRESS)  # run by torchrun
    parser.add_argument("--results", default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    path = two_shard_checkpoint()
    if options.rank:
        return rank_main(path, options.device, options.repeats, Path(options.results))

    device = torch.device(options.device)
    rows = []
    # The same weights in one file (bench.py's checkpoint: same preset, same seed), then in two
    # shards read as one model, which joins each weight's two halves when the pass asks for it.
    for label, where in (("1 process, one file", harness.checkpoint_dir(2)), ("1 process, both shards", path)):
        rows.append((label, measure(load_checkpoint(where), batched.forward, device, options.repeats)))
    results = cache_dir() / "bench-parallel"
    results.mkdir(exist_ok=True)
    torchrun = Path(sys.executable).with_name("torchrun")
    subprocess.run([str(torchrun), "--nproc-per-node", "2", __file__, "--rank", "--results", str(results),
                    "--repeats", str(options.repeats), "--device", options.device], check=True)
    for rank in range(2):
        rows.append((f"2 ranks: rank {rank}", json.loads((results / f"{rank}.json").read_text())))
    text = (f"Measured by `bench/parallel.py`: {harness.machine_line(device)}; float32 compute, bf16 weights, "
            f"gloo between the ranks.\n\n" + table(rows))
    print(text)
    print(f"wrote {write_text(options.out, text)}")


if __name__ == "__main__":
    main()
