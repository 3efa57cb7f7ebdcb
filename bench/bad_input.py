"""The costly bad inputs of issues #14 and #31, each run as a user would, with its time and peak memory.

    .venv/bin/python bench/bad_input.py [--out FILE.md]

Each case builds its bad checkpoint or file in a temporary directory from the built-in tiny
model, runs `python -m reference …` on it as a process, and records the exit code, the
seconds, the process's peak resident memory and the one line it printed. These are the cases
that once cost minutes or gigabytes (a read of /dev/zero, a FIFO, a billion layers, a
40,000-token trace), and those of #31's classes (a stranger's chat template, tokenizer.json,
prompt text, .npz or GGUF), where a case is a function rather than a command it runs that
function in a process of its own. The tests (tests/test_bad_input_*.py) prove the messages;
this measures them, and ends with the worst time and peak memory of each class.
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
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reference.formats.synthesize import builtin_checkpoint  # noqa: E402


def copy_of(tiny: Path, out: Path, params: dict | None = None) -> Path:
    shutil.copytree(tiny, out)
    if params is not None:  # max_seq_len, as older files spell the context, replaces the newer key
        old = json.loads((tiny / "params.json").read_text())
        if "max_seq_len" in params:
            old.pop("max_position_embeddings", None)
        (out / "params.json").write_text(json.dumps({**old, **params}))
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


def cases_31(tmp: Path):
    """(issue #31's class, what, argv) for the stranger's files and text of issue #31; a `-c`
    argv runs that code (the function the command calls) instead of a command."""
    render = ("from reference.text.chat import render_chat; "
              "render_chat({!r}, [], bos_token='', eos_token='', source='tokenizer_config.json')")
    yield "2 template", "loops 10^10 times", ["-c", render.format(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")]
    yield "2 template", "pads to 10^10 characters", ["-c", render.format("{{ ''|center(10 ** 10) }}")]
    yield "2 template", "computes (9^9)^(9^9)", ["-c", render.format("{{ (9 ** 9) ** (9 ** 9) }}")]
    yield "2 template", "recurses without end", ["-c", render.format(
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")]
    data = {"model": {"type": "BPE", "vocab": {"a": 10 ** 12}, "merges": []},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False}}
    (tmp / "tok").mkdir()
    (tmp / "tok" / "tokenizer.json").write_text(json.dumps(data))
    yield "1 typed", "tokenizer.json: a token id of 10^12", ["-c", "from reference.text.vocab_files import "
                                                              f"tokenizer_from_json; tokenizer_from_json({str(tmp / 'tok' / 'tokenizer.json')!r})"]
    encode = ("from reference.formats import load_checkpoint; from reference.formats.hub import resolve_checkpoint; "
              "t = load_checkpoint(resolve_checkpoint('smollm2-135m')).tokenizer; t.encode({!r} * 60000, bos=True, "
              "eos=False); raise SystemExit(0)")
    yield "3 text", "60 KB of U+40000 (a byte SmolLM2 lacks)", ["-c", encode.format("\U00040000")]
    bomb = tmp / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:  # 2 GiB of zeros, streamed
        with zf.open("embeddings.npy", "w", force_zip64=True) as f:
            n = 1 << 29  # float32 values
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n,)})
            for _ in range(n * 4 // (64 << 20)):
                f.write(bytes(64 << 20))
    yield "1 typed", f"a {bomb.stat().st_size / 2**20:.0f} MB .npz that inflates to 2 GiB", [
        "compare", str(bomb), str(bomb)]
    from gguf import GGUFWriter

    twice = tmp / "twice.gguf"
    w = GGUFWriter(str(twice), "llama")
    w.add_block_count(1)
    w.add_uint32("llama.block_cxunt", 2)  # renamed below: gguf's writer keeps one of a key written twice
    w.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    twice.write_bytes(twice.read_bytes().replace(b"llama.block_cxunt", b"llama.block_count"))
    yield "1 typed", "a GGUF with llama.block_count listed twice", ["walk", "--checkpoint", str(twice)]
    yield "6 output", "a path with a newline and a title escape", ["walk", "--checkpoint",
                                                                   str(tmp / "x\nerror: forged\x1b]0;pwned\x07")]


# The child reports its own peak RSS as it exits, whatever way it exits (atexit runs on sys.exit).
# VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report
# the bench's own size at the fork. Its children count too (a chat template renders in a forked
# child, whose peak is its own): the larger of the two, in KiB.
PEAK = ("import atexit, resource, sys; atexit.register(lambda: print('@maxrss', max(next(int(line.split()[1]) "
        "for line in open('/proc/self/status') if line.startswith('VmHWM:')), resource.getrusage("
        "resource.RUSAGE_CHILDREN).ru_maxrss), file=sys.__stderr__))")
CHILD = PEAK + ("; import runpy; sys.argv = ['reference'] + sys.argv[1:]; "
                "runpy.run_module('reference', run_name='__main__')")


def run(argv: list[str], timeout: float = 120) -> tuple[int, float, int, list[str]]:
    """(exit code, seconds, peak RSS bytes, the lines it wrote to stderr) of one command, or of
    `-c CODE` (an InputError it raises counts as one line and exit 2, as the CLI prints it)."""
    start = time.perf_counter()
    if argv[0] == "-c":
        code = (PEAK + "\nfrom reference.errors import InputError\n"
                "try:\n    exec(sys.argv[1])\nexcept InputError as e:\n    print(f'error: {e}', file=sys.stderr)\n"
                "    raise SystemExit(2)")
        argv = ["-c", code, argv[1]]
    else:
        argv = ["-c", CHILD, *argv]
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
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
    worst: dict[str, tuple[float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cls, what, argv in [*cases(tiny, Path(tmp)), *cases_31(Path(tmp))]:
            code, seconds, peak, lines = run(argv)
            short = (lines[-1] if lines else "").replace(tmp, "…").replace("|", "\\|")
            short = short if len(short) <= 150 else short[:150] + "…"
            rows.append(f"| {cls} | {what} | {code} | {seconds:.1f} | {peak / 2**20:.0f} MiB | {len(lines)} | {short} |")
            print(rows[-1], flush=True)
            if isinstance(cls, str):  # #31's classes
                before = worst.get(cls, (0.0, 0))
                worst[cls] = (max(before[0], seconds), max(before[1], peak))
    rows += ["", "| #31 class | worst seconds | worst peak RSS |", "|---|---|---|"]
    rows += [f"| {cls} | {s:.1f} | {peak / 2**20:.0f} MiB |" for cls, (s, peak) in sorted(worst.items())]
    print("\n".join(rows[-len(worst) - 3:]))
    text = "\n".join(rows) + "\n"
    if options.out != "-":
        Path(options.out).write_text(text)


if __name__ == "__main__":
    main()
