"""The 8B-shaped checkpoint as GGUF files of each type, beside the same weights stored as BF16:
what expanding the blocks costs, and what `walk` and `generate` cost from each file.

    python bench/gguf_types.py                   # the tables, printed (bench.py puts them on the page)
    python bench/gguf_types.py --before DIR      # SmolLM2's decode with the code in DIR too (a checkout)

- per file (BF16, F16, Q8_0, Q4_0, Q4_K; harness.gguf_file writes them once): `walk` and `generate`
  as a user runs them, each in a process of its own, with its peak anonymous memory and the bytes
  it wrote to disk; prefill of the walk-through prompt and KV-cache decode, alternating the files
  round after round (this machine's speed moves from minute to minute), best of the rounds;
- a real 8B, 32 layers, extrapolated per layer from the same runs (`real_8b_rows`);
- expansion: float32 produced per second from each type's blocks (gguf_expand.py);
- SmolLM2-135M's decode, with this code and (`--before`) older code, alternating.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import gguf_expand  # bench/gguf_expand.py
from harness import PeakAnon, ROOT, child, gguf_file, machine_line, proc_field, prompt_tokens, status, timed

FILES = ("BF16", "F16", "Q8_0", "Q4_0", "Q4_K")


# --- walk, generate, prefill and decode from each file, each in a process of its own ---

def command_child(command: str, path: str) -> None:
    """Run in a fresh process: `walk` or `generate` on `path` as a user would (stdout discarded), with
    a private, empty cache; print JSON: peak RssAnon, bytes written to disk and into the cache, seconds."""
    from reference import WALKTHROUGH_PROMPT
    from reference.cli import main

    cache = Path(tempfile.mkdtemp())
    os.environ["LLAMA3_REFERENCE_CACHE"] = str(cache)
    argv = [command, "--checkpoint", path, "--prompt", WALKTHROUGH_PROMPT]
    argv += ["--max-new-tokens", "25", "--temperature", "0"] if command == "generate" else []
    written = proc_field("io", "write_bytes")
    start = time.perf_counter()
    with PeakAnon() as peak, open(os.devnull, "w") as quiet:
        sys.stdout, real = quiet, sys.stdout
        try:
            code = main(argv)
        finally:
            sys.stdout = real
    seconds = time.perf_counter() - start
    cached = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    print(json.dumps({"code": code, "peak_rss_anon": peak.peak, "written": proc_field("io", "write_bytes") - written,
                      "cache_bytes": cached, "seconds": seconds}))


def speed_child(path: str, n_new: str) -> None:
    """Run in a fresh process: prefill of the walk-through prompt (the next-token pass `generate` runs)
    and KV-cache decode of `n_new` tokens, each timed once after a warm-up; and the parts of a pass
    outside its layers (the embedding rows looked up, the output product of the last row), best of 3,
    so that a pass's time splits into the layers' and the rest's; print JSON seconds."""
    from reference import batched, upcast
    from reference.formats import load_checkpoint

    start = time.perf_counter()
    ckpt = load_checkpoint(path)
    load = time.perf_counter() - start
    tokens, n_new = torch.tensor(prompt_tokens(ckpt.tokenizer, None)), int(n_new)
    with torch.inference_mode():
        for _ in range(2):  # a warm-up, then the timed pass
            cache = batched.KVCache.allocate(ckpt.args, len(tokens) + n_new + 1, torch.float32)
            start = time.perf_counter()
            logits = batched.forward(tokens, ckpt.weights, ckpt.args, cache=cache, last_only=True)[0]
            prefill = time.perf_counter() - start
            start = time.perf_counter()
            for i in range(n_new):
                logits = batched.forward(logits.argmax().view(1), ckpt.weights, ckpt.args, cache=cache,
                                         start=len(tokens) + i, last_only=True)[0]
            decode = (time.perf_counter() - start) / n_new
        embedding, output = ckpt.weights["tok_embeddings.weight"], ckpt.weights["output.weight"]
        h = torch.ones(1, ckpt.args.dim)
        head = timed(lambda: upcast.linear(h, output, torch.float32, "cpu"), 3)[0]
        outside = {"prefill": head + timed(lambda: embedding[tokens].float(), 3)[0],
                   "decode": head + timed(lambda: embedding[tokens[:1]].float(), 3)[0]}
    print(json.dumps({"load": load, "prefill": prefill, "decode": decode, "outside": outside,
                      "rss_anon": status("RssAnon")}))


def measure_files(n_layers: int, rounds: int, n_new: int) -> dict:
    """Per file: its path, `walk` and `generate` (command_child), and the best of `rounds` speed_child runs."""
    paths = {name: gguf_file(n_layers, name) for name in FILES}
    runs = {name: {"walk": json.loads(child(__file__, "_command", "walk", p)),
                   "generate": json.loads(child(__file__, "_command", "generate", p))} for name, p in paths.items()}
    speeds = {name: [] for name in FILES}
    for _ in range(rounds):  # alternating: a slow minute falls on every file alike
        for name, p in paths.items():
            speeds[name].append(json.loads(child(__file__, "_speed", p, n_new)))
    fastest = {name: {key: min(s[key] for s in v) for key in ("load", "prefill", "decode")} |
               {"outside": {key: min(s["outside"][key] for s in v) for key in ("prefill", "decode")}}
               for name, v in speeds.items()}
    return {name: {"path": p, **runs[name], **fastest[name]} for name, p in paths.items()}


def files_rows(measured: dict) -> list[str]:
    """One line per file: size, walk's and generate's memory and disk writes, prefill and decode."""
    bf16 = measured["BF16"]
    lines = []
    for name, m in measured.items():
        walk, gen, prefill, decode = m["walk"], m["generate"], m["prefill"], m["decode"]
        lines.append(f"| {name} | {m['path'].stat().st_size / 2**30:.2f} GiB | {walk['peak_rss_anon'] / 2**30:.2f} / "
                     f"{gen['peak_rss_anon'] / 2**30:.2f} GiB | {(walk['written'] + gen['written']) / 2**20:.1f} MiB, "
                     f"{walk['cache_bytes'] + gen['cache_bytes']} B | {walk['seconds']:.1f} / {gen['seconds']:.1f} s | "
                     f"{prefill * 1e3:,.0f} ms ({prefill / bf16['prefill']:.2f}×) | {1 / decode:.2f} "
                     f"({bf16['decode'] / decode:.2f}×) |")
    return lines


def tensor_bytes(path: Path, layers: int) -> int:
    """The bytes of a GGUF's tensors were it `layers` layers deep: those outside the layers as they
    are, each layer's (blk.N.*) as the file's layers have on average."""
    from reference.formats.gguf.header import read_header

    tensors = read_header(path).tensors
    in_layers = [t for t in tensors if t.name.startswith("blk.")]
    n_layers = len({t.name.split(".")[1] for t in in_layers})
    return sum(t.nbytes for t in tensors) + sum(t.nbytes for t in in_layers) * (layers - n_layers) // n_layers


def kept_scales(path: Path, n_layers: int) -> int:
    """The bytes a layer's Q4_K/Q5_K matrices keep once used (stored_rows.unpacked_scales: 20 a super-block)."""
    from reference.formats.gguf.header import read_header, type_name
    from reference.formats.gguf.stored_rows import KEPT

    blocks = sum(math.prod(t.ne) // 256 for t in read_header(path).tensors
                 if t.name.startswith("blk.") and type_name(t) in KEPT)
    return 20 * blocks // n_layers


def real_8b_rows(measured: dict, n_layers: int, layers: int = 32) -> list[str]:
    """A real 8B from each file's figures, per layer: a pass's time less the parts outside the layers
    (embedding rows, the output product: timed apart), divided by the layers, times 32, plus those
    parts again; the file's bytes likewise, from its tensor table; the anonymous memory plus what
    each of the 30 layers more keeps, its KV cache and its Q4_K/Q5_K scales (all else a pass holds
    is one layer's at a time)."""
    from reference.formats import load_checkpoint

    lines = []
    for name, m in measured.items():
        size = m["path"].stat().st_size - tensor_bytes(m["path"], n_layers) + tensor_bytes(m["path"], layers)
        args = load_checkpoint(m["path"]).args
        kv = 2 * args.n_kv_heads * args.head_dim * 4 * (17 + 25)  # float32 keys and values a layer, generate's 42 positions
        ram = m["generate"]["peak_rss_anon"] + (layers - n_layers) * (kv + kept_scales(m["path"], n_layers))
        per = {key: (m[key] - m["outside"][key]) / n_layers for key in ("prefill", "decode")}
        prefill, decode = (m["outside"][key] + layers * per[key] for key in ("prefill", "decode"))
        lines.append(f"| {name} | {size / 1e9:.1f} GB | {ram / 2**30:.2f} GiB | {per['prefill'] * 1e3:,.0f} ms, "
                     f"{per['decode'] * 1e3:,.0f} ms | {m['load'] + prefill:.1f} s | {1 / decode:.2f} |")
    return lines


def smollm2_decode(before: str | None, rounds: int, n_new: int) -> list[str]:
    """SmolLM2-135M's decode tokens/s (generate's path: upcast.resident, then the KV cache), with this
    code and, alternating with it, the code in `before` (PYTHONPATH), in processes of their own."""
    from reference.formats.hub import smollm2_file

    sides = {"this code": str(ROOT)} | ({"before": before} if before else {})
    rates = {name: [] for name in sides}
    for _ in range(rounds):
        for name, where in sides.items():
            env = {**os.environ, "PYTHONPATH": where}
            out = subprocess.run([sys.executable, __file__, "_smollm2", str(smollm2_file()), str(n_new)],
                                 capture_output=True, text=True, env=env, cwd=where, check=True)
            rates[name].append(float(out.stdout.strip().splitlines()[-1]))
    return [f"| {name} | {max(r):.1f} | {statistics.median(r):.1f} |" for name, r in rates.items()]


def smollm2_child(path: str, n_new: str) -> None:
    """Run in a fresh process (PYTHONPATH picks the code): greedy generate's tokens/s after the first token."""
    from reference.formats import load_checkpoint
    from reference.generate import generate

    ckpt = load_checkpoint(path)
    prompt = prompt_tokens(ckpt.tokenizer, None)
    stamps = []
    for _ in generate(prompt, ckpt.weights, ckpt.args, max_new_tokens=int(n_new) + 1, temperature=0):
        stamps.append(time.perf_counter())
    print(int(n_new) / (stamps[-1] - stamps[0]))


def section(n_layers: int, repeats: int, rounds: int, n_new: int, before: str | None = None) -> list[str]:
    measured = measure_files(n_layers, rounds, n_new)
    lines = [f"## The same weights as GGUF files ({n_layers} layers, float32)", "",
             "A quantized tensor is read from its blocks, never expanded to disk: a slice of rows at a time, "
             "in RAM, right before its product (formats/gguf/stored_rows.py, upcast.linear). Each `walk` and "
             "`generate` ran in a process of its own with an empty cache; prefill and decode alternate the "
             f"files, best of {rounds} rounds; × is against BF16, the same weights unquantized.", "",
             "| file | size | peak RssAnon, walk / generate | written to disk, into the cache | walk / generate "
             f"| prefill, 17 tokens | decode tokens/s ({n_new}) |", "|---|---|---|---|---|---|---|"]
    lines += files_rows(measured)
    lines += ["", "### A real 8B (32 layers), extrapolated per layer", "",
              f"From the runs above: a pass's time less its parts outside the layers (the embedding rows looked up "
              f"and the output product, timed apart) is {n_layers} layers' time; a real 8B has 32. The file's size "
              "comes from its tensor table the same way; the page cache holds the file once read, so a machine "
              "with that much free memory runs from memory, one with less re-reads it from disk. Time to the first "
              "token: loading (header and tokenizer) plus the prefill of the 17-token prompt, file in the page cache.",
              ""]
    lines += ["<!-- --8<-- [start:real-8b] -->", "", "| file | file, 32 layers | peak RssAnon | a layer: prefill, "
              "decode | time to the first token | decode tokens/s |", "|---|---|---|---|---|---|",
              *real_8b_rows(measured, n_layers), "",
              f"Measured on {time.strftime('%Y-%m-%d')}: {machine_line('cpu')}.", "", "<!-- --8<-- [end:real-8b] -->"]
    lines += ["", "### Expanding blocks to float32", "",
              "GB/s of float32 produced from 16 Mi weights [4096 × 4096]: the literal expansion of a whole "
              "tensor, the product's slices of rows on one core and on every core, llama.cpp's `gguf.quants` "
              "(NumPy, one core); the last column is the float32 that reading the blocks' bytes alone would "
              "give at this machine's read bandwidth.", ""]
    lines += gguf_expand.table(repeats)
    lines += ["", "### SmolLM2-135M-Instruct decode (resident in float32, 0.5 GiB)", "",
              "| code | tokens/s, best | median |", "|---|---|---|"]
    lines += smollm2_decode(before, rounds, 2 * n_new) + [""]
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per expansion figure (default 3)")
    p.add_argument("--rounds", type=int, default=5, help="rounds over the files for prefill and decode (default 5)")
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--before", help="a checkout of older code, for SmolLM2's decode before and after")
    o = p.parse_args(argv)
    print("\n".join(section(o.layers, o.repeats, o.rounds, o.new_tokens, o.before)))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_command"]:
        command_child(*sys.argv[2:4])
    elif sys.argv[1:2] == ["_speed"]:
        speed_child(*sys.argv[2:4])
    elif sys.argv[1:2] == ["_smollm2"]:
        smollm2_child(*sys.argv[2:4])
    else:
        sys.exit(main())
