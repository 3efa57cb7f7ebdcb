"""Speed and memory of the reference on an 8B-shaped checkpoint, beside Hugging Face transformers.

    python bench/bench.py                      # 2 layers; memory for 2 and 32 layers; writes docs/performance.md
    python bench/bench.py --layers 4 --no-32   # quicker: skip the 16 GB 32-layer checkpoint
    python bench/bench.py --device cuda        # the same table on a GPU (fp32 and bf16)

The checkpoint has Llama 3 8B's real dims (4096, 32 heads, 8 kv heads, 14336 hidden, 128,256
vocab) in Meta's format and bf16, with fewer layers; it is synthesized once into the cache
(`python -m reference synthesize` does the same) and reused. Every figure is the min and the
median of `--repeats` runs. Timing lives here, never in the tests.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from reference import upcast
from reference.formats import load_checkpoint

# bench/ is not a package: these are its files beside this one (python puts bench/ on sys.path)
import gemv  # the one-token bf16 product table
import gguf_types  # the same weights as GGUF files of each type
import growth  # prefill as the prompt grows; decode on small models; compiled decode
from analysis import ANALYSIS  # "Reading the figures", the page's closing prose
from harness import (ROOT, checkpoint_dir, fmt_time, machine_line, matmul_flops, memory_bandwidth, prompt_tokens,
                     read_bandwidth)
from measure import bench_memory, bench_prefill, decode_bytes_per_token, fresh_decode


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=2, help="layers of the timed 8B-shaped checkpoint (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per figure (default 3)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated (default: float32,bfloat16)")
    p.add_argument("--new-tokens", type=int, default=16, help="tokens to decode (default 16)")
    p.add_argument("--long", type=int, default=512, help="length of the long prompt (default 512)")
    p.add_argument("--no-32", action="store_true", help="skip the 32-layer memory measurement (16 GB on disk)")
    p.add_argument("--no-hf", action="store_true", help="skip transformers")
    p.add_argument("--no-gguf", action="store_true", help="skip the GGUF files of the same weights (BF16 … Q4_K)")
    p.add_argument("--no-growth", action="store_true", help="skip prefill at 17 … 4,096 tokens")
    p.add_argument("--no-small", action="store_true", help="skip decode on tiny and SmolLM2-135M")
    p.add_argument("--no-compile", action="store_true", help="skip the compiled decode (LLAMA3_REFERENCE_COMPILE=1)")
    p.add_argument("--no-gemv", action="store_true", help="skip the one-token bf16 product table")
    p.add_argument("--before", help="a checkout of older code: SmolLM2's GGUF decode with it too, alternating")
    p.add_argument("--out", default=str(ROOT / "docs" / "performance.md"), help="markdown report ('-' for none)")
    o = p.parse_args(argv)
    device = o.device
    dtypes = o.dtypes.split(",")

    ckpt = load_checkpoint(checkpoint_dir(o.layers))
    tokenizer = ckpt.tokenizer
    lines = ["# Performance", "", f"Measured by `python bench/bench.py` on {time.strftime('%Y-%m-%d')}: "
             f"{machine_line(device)}.", "",
             f"Checkpoint: Llama 3 8B dims with {o.layers} layers (bf16, Meta format, memory-mapped). "
             f"Each time is min / median of {o.repeats} runs.", ""]
    if torch.device(device).type == "cpu":
        lines += ["GPU: none here (this machine has none, and no GPU was lent to the session that ran this); "
                  "`python bench/bench.py --device cuda` writes the same tables on one.", ""]
    bw, read_bw = memory_bandwidth(device, o.repeats), read_bandwidth(device, o.repeats)
    ceilings = ", ".join(f"{name} {matmul_flops(device, getattr(torch, name), o.repeats) / 1e9:,.0f} GFLOP/s"
                         for name in dtypes)
    lines += [f"Memory bandwidth (1 GiB tensor copy, read + write): **{bw / 1e9:.1f} GB/s**; reading alone "
              f"(`torch.sum` of 1 GiB): {read_bw / 1e9:.1f} GB/s, {100 * read_bw / bw:.0f}% of it. "
              f"Matrix product ceiling (4096 × 4096 × 4096): {ceilings}.", ""]
    # These run first, in a process that has compiled nothing yet: after torch.compile has run,
    # eager passes in the same process measured up to 2× slower here.
    growth_lines, small_lines = [], []
    if not o.no_growth:
        rows = growth.prefill_growth(ckpt, checkpoint_dir(o.layers), torch.float32, device, o.repeats,
                                      not o.no_hf)
        growth_lines = growth.growth_section(rows, "float32", Path(o.out).parent / "performance-growth.svg"
                                             if o.out != "-" else None)
    if not o.no_small:
        small_lines = growth.small_models_section(o.new_tokens * 2, device, o.repeats, not o.no_hf)
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        lines += [f"## Prefill, {dtype_name}", "", "| path | walk-through prompt (17 tokens) | ratio | "
                  f"{o.long}-token prompt | ratio |", "|---|---|---|---|---|"]
        short = bench_prefill(ckpt, prompt_tokens(tokenizer, None), dtype, device, o.repeats, not o.no_hf)
        long = bench_prefill(ckpt, prompt_tokens(tokenizer, o.long), dtype, device, o.repeats, not o.no_hf)
        ref_s = short.get("transformers eager", (float("nan"),) * 2)[1]
        ref_l = long.get("transformers eager", (float("nan"),) * 2)[1]
        for name in short:
            lines.append(f"| {name} | {fmt_time(short[name])} | {short[name][1] / ref_s:.2f}× | "
                         f"{fmt_time(long[name])} | {long[name][1] / ref_l:.2f}× |")
        lines += ["", "Ratio: median time ÷ median time of transformers eager (lower is faster).", ""]
        child = fresh_decode(checkpoint_dir(o.layers), dtype_name, device, o.new_tokens, o.repeats, not o.no_hf)
        decode = {name: tuple(pair) for name, pair in child["rates"].items()}
        reading = dict.fromkeys(decode, child["read_bw"])  # bytes/s read alone, just before each row
        per_token = decode_bytes_per_token(ckpt)
        bound = bw / per_token
        lines += [f"## Decode, {dtype_name}", "",
                  f"One token reads {per_token / 2**30:.2f} GiB of bf16 weights, so the bandwidth bound is "
                  f"{bound:.1f} tokens/s. The last column holds the rate against reading alone, measured in "
                  "the same process just before (this machine's bandwidth moves from minute to minute).", "",
                  "| | tokens/s (best / median) | % of bound | % of reading, just before |", "|---|---|---|---|"]
        compile_note = []
        if device == "cpu" and not o.no_compile:
            reading["ours, compiled one-token product"] = read_bandwidth(device, o.repeats)
            decode["ours, compiled one-token product"], first = growth.compiled_decode(ckpt, o.new_tokens, dtype,
                                                                                      device, o.repeats)
            compile_note = ["", f"The compiled row runs with `LLAMA3_REFERENCE_COMPILE=1`; its first token took "
                            f"{first:.1f} s (compiling, or loading the kernels inductor cached on disk)."]
        for name, (lo, med) in decode.items():
            lines.append(f"| {name} | {1 / lo:.2f} / {1 / med:.2f} | {100 / med / bound:.0f}% | "
                         f"{100 * per_token / med / reading[name]:.0f}% |")
        lines += compile_note
        lines += ["", "Where our decode step spends its time (torch.profiler, self time per token):", "",
                  "| operator | ms per token | calls per token |", "|---|---|---|"]
        for op, ms, calls in child["profile"]:
            lines.append(f"| `{op}` | {ms:.1f} | {calls:,} |")
        lines.append("")
        if dtype == torch.bfloat16 and device == "cpu" and upcast.cpu_has_native_bf16() and not o.no_gemv:
            lines += gemv.section(max(o.repeats, 5))
    lines += growth_lines + small_lines
    lines += ["## Memory: load + one forward of the walk-through prompt (batched path, float32)", "",
              "| layers | checkpoint on disk | peak RssAnon | VmHWM (incl. mmap'd file pages) |", "|---|---|---|---|"]
    for n in ([o.layers] if o.no_32 else sorted({o.layers, 32})):
        m = bench_memory(n, "float32", device)
        lines.append(f"| {n} | {m['checkpoint_bytes'] / 2**30:.2f} GiB | {m['peak_rss_anon'] / 2**30:.2f} GiB | "
                     f"{m['vm_hwm'] / 2**30:.2f} GiB |")
    lines += ["", "RssAnon is memory only this process holds; memory-mapped weights count in VmHWM but are "
              "file pages the kernel can drop and re-read, so an 8 GB machine can run the 8B.", ""]
    if not o.no_gguf:
        lines += gguf_types.section(o.layers, o.repeats, max(o.repeats, 5), o.new_tokens, o.before)
    lines += [ANALYSIS]
    report = "\n".join(lines)
    print(report)
    if o.out != "-":
        Path(o.out).write_text(report)
        print(f"wrote {o.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
