"""The costly bad inputs of issue #14, each run as a user would, with its time and peak memory.

    .venv/bin/python bench/bad_input.py [--out FILE.md]

Each case builds its bad checkpoint or file in a temporary directory from the built-in tiny
model, runs `python -m reference …` on it as a process, and records the exit code, the
seconds, the process's peak resident memory and the one line it printed. These are the cases
that once cost minutes or gigabytes (a read of /dev/zero, a FIFO, a billion layers, a
40,000-token trace): the figures show that each is now refused at once. The tests
(tests/test_bad_input_*.py) prove the messages; this measures them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reference.formats.synthesize import builtin_checkpoint  # noqa: E402


def copy_of(tiny: Path, out: Path, params: dict | None = None) -> Path:
    shutil.copytree(tiny, out)
    if params is not None:
        (out / "params.json").write_text(json.dumps({**json.loads((tiny / "params.json").read_text()), **params}))
    return out


def cases(tiny: Path, tmp: Path):
    """(class, what, argv) for each case; the files each needs are made here."""
    yield 3, "n_layers: 1,000,000,000", ["walk", "--checkpoint", str(copy_of(tiny, tmp / "layers", {"n_layers": 10**9}))]
    stray = copy_of(tiny, tmp / "stray")
    shutil.copy(stray / "consolidated.00.pth", stray / "consolidated.99999999999.pth")
    yield 3, "a stray consolidated.99999999999.pth", ["walk", "--checkpoint", str(stray)]
    zero = copy_of(tiny, tmp / "zero")
    (zero / "tokenizer.model").unlink()
    (zero / "tokenizer.model").symlink_to("/dev/zero")
    yield 3, "tokenizer.model is /dev/zero", ["walk", "--checkpoint", str(zero)]
    fifo = copy_of(tiny, tmp / "fifo")
    (fifo / "params.json").unlink()
    os.mkfifo(fifo / "params.json")
    yield 3, "params.json is a FIFO", ["walk", "--checkpoint", str(fifo)]
    big = copy_of(tiny, tmp / "big-tokenizer")
    with open(big / "tokenizer.model", "ab") as f:
        f.write(b"x" * (100 << 20))
    yield 3, "a 100 MB tokenizer.model", ["walk", "--checkpoint", str(big)]
    deep = copy_of(tiny, tmp / "deep")
    (deep / "params.json").write_text("[" * 100_000 + "]" * 100_000)
    yield 5, "params.json nested 100,000 deep", ["walk", "--checkpoint", str(deep)]
    long = copy_of(tiny, tmp / "long", {"max_seq_len": 131_072})
    (tmp / "long.txt").write_text("the answer is " * 13_400)  # about 40,000 tokens
    yield 4, "trace of a 40,000-token prompt (max_seq_len 131,072)", [
        "trace", "--checkpoint", str(long), "--prompt-file", str(tmp / "long.txt"), "--out", str(tmp / "t.npz")]
    huge = copy_of(tiny, tmp / "huge-context", {"max_seq_len": 1 << 24})
    yield 4, "generate on max_seq_len 16,777,216", [
        "generate", "--checkpoint", str(huge), "--prompt", "hi", "--max-new-tokens", "4", "--temperature", "0"]
    nan = copy_of(tiny, tmp / "rope", {"rope_theta": 1e-300})
    yield 1, "rope_theta: 1e-300", ["walk", "--checkpoint", str(nan)]
    yield 5, "--temperature 1e-300", ["generate", "--checkpoint", str(tiny), "--prompt", "hi", "--temperature", "1e-300"]
    yield 5, "--seed 2**64", ["generate", "--checkpoint", str(tiny), "--prompt", "hi", "--seed", str(2**64)]
    (tmp / "dir.npz").mkdir()
    yield 5, "trace --out names a directory", ["trace", "--checkpoint", str(tiny), "--prompt", "hi",
                                               "--out", str(tmp / "dir.npz")]
    yield 7, "synthesize the 405B (812 GB of weights) onto this disk", ["synthesize", "--preset", "llama3.1-405b",
                                                             "--out", str(tmp / "405b")]
    mine = tmp / "my-notes"
    mine.mkdir()
    (mine / "checkpoint.json").write_text('{"mine": true}')
    yield 7, "goldens --out a directory goldens did not make", ["goldens", "--out", str(mine)]


# The child reports its own peak RSS as it exits, whatever way it exits (atexit runs on sys.exit).
CHILD = ("import atexit, resource, runpy, sys; atexit.register(lambda: print('@maxrss', resource.getrusage("
         "resource.RUSAGE_SELF).ru_maxrss, file=sys.__stderr__)); sys.argv = ['reference'] + sys.argv[1:]; "
         "runpy.run_module('reference', run_name='__main__')")


def run(argv: list[str], timeout: float = 120) -> tuple[int, float, int, list[str]]:
    """(exit code, seconds, peak RSS bytes, the lines it wrote to stderr) of one command."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)
    seconds = time.perf_counter() - start
    lines = done.stderr.strip().splitlines()
    peak = next((int(line.split()[1]) * 1024 for line in lines if line.startswith("@maxrss ")), 0)
    return done.returncode, seconds, peak, [line for line in lines if not line.startswith("@maxrss ")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="-", help="also write the table to this Markdown file")
    options = parser.parse_args()
    tiny = builtin_checkpoint("tiny")
    rows = ["| class | case | exit | seconds | peak RSS | stderr lines | the line |", "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for cls, what, argv in cases(tiny, Path(tmp)):
            code, seconds, peak, lines = run(argv)
            short = (lines[-1] if lines else "").replace(tmp, "…").replace("|", "\\|")
            short = short if len(short) <= 150 else short[:150] + "…"
            rows.append(f"| {cls} | {what} | {code} | {seconds:.1f} | {peak / 2**20:.0f} MiB | {len(lines)} | {short} |")
            print(rows[-1], flush=True)
    text = "\n".join(rows) + "\n"
    if options.out != "-":
        Path(options.out).write_text(text)


if __name__ == "__main__":
    main()
