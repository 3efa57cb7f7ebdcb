"""The benchmark's sections on growth and on small models (bench.py calls these; run bench.py).

- Prefill as the prompt grows (17 … 4,096 tokens): time and the anonymous memory the pass
  *adds*, ours beside transformers, both computing only the next token's logits (transformers'
  `logits_to_keep=1`, as its `generate` does), with a picture. The memory is measured in a
  fresh process per side and length: this file run as a child (`_prefill_memory`).
- Decode with the compiled one-token product (`LLAMA3_REFERENCE_COMPILE=1`).
- Decode on small models (`tiny`, SmolLM2-135M), where the weights are upcast once.
- llama.cpp's decode on the same GGUF, where `llama_cpp` is importable (never required).

The decode rates themselves are measure.py's (`decode_rate`, `hf_decode_rate`).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

from reference import batched, upcast
from reference.formats import load_checkpoint
from reference.formats.hub import resolve_checkpoint

import harness
from measure import decode_rate, hf_decode_rate

LENGTHS = (17, 512, 2048, 4096)


def one_prefill(run) -> tuple[float, int]:
    """(seconds, peak anonymous bytes added) of one call."""
    base = harness.status("RssAnon")
    with harness.PeakAnon() as peak:
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
    return seconds, peak.peak - base


def prefill_memory_child(source: str, side: str, n: str, dtype: str, device: str) -> None:
    """Run in a fresh process: the anonymous memory one next-token pass of n tokens adds to a
    model just loaded (ours, or transformers' with its float32 weights); print it."""
    ckpt, dt = load_checkpoint(Path(source)), getattr(torch, dtype)
    t = torch.tensor(harness.prompt_tokens(ckpt.tokenizer, None if n == "17" else int(n)), device=device)
    if side == "ours":
        def run():
            batched.forward(t, ckpt.weights, ckpt.args, dtype=dt, device=device, last_only=True)
    else:
        m = harness.hf_model(ckpt, "sdpa", dt, device)

        def run():
            m(t[None], logits_to_keep=1)
    with torch.inference_mode():
        print(one_prefill(run)[1])


def fresh_prefill_memory(source: Path, side: str, n: int, dtype, device) -> int:
    """`prefill_memory_child` in a process of its own. Measured in the benchmark's process, a pass
    adds less wherever earlier passes left freed memory in the allocator for it to reuse, and how
    much is left depends on what ran before (transformers' 512-token pass was seen adding 0.09 GiB
    there and 0.22 in a fresh process): a first pass in a fresh process is what a user pays."""
    return int(harness.child(__file__, "_prefill_memory", source, side, n, str(dtype).removeprefix("torch."),
                             device))


def prefill_growth(ckpt, source: Path, dtype, device, repeats: int, with_hf: bool, lengths=LENGTHS) -> dict:
    """{name: [(min s, median s, peak added bytes) per length]}: the next token after n tokens;
    the times in this process, the memory in a fresh one per side and length."""
    sides = ("ours", "transformers") if with_hf else ("ours",)
    # Memory first, in processes of their own (above), before this one holds transformers'
    # float32 weights (6 GB) beside the copy each of its children loads; never in a timed run,
    # whose sampling thread would slow it (it takes the GIL every millisecond).
    added = {(side, n): fresh_prefill_memory(source, side, n, dtype, device) for side in sides for n in lengths}
    rows = {"ours (batched, last logits)": []}
    m = harness.hf_model(ckpt, "sdpa", dtype, device) if with_hf else None
    if m is not None:
        rows["transformers sdpa (logits_to_keep=1)"] = []
    for n in lengths:
        t = torch.tensor(harness.prompt_tokens(ckpt.tokenizer, None if n == 17 else n), device=device)

        def ours():
            with torch.inference_mode():
                batched.forward(t, ckpt.weights, ckpt.args, dtype=dtype, device=device, last_only=True)
            harness.sync(device)

        def theirs():
            with torch.inference_mode():
                m(t[None], logits_to_keep=1)
            harness.sync(device)

        for name, side, run in zip(rows, sides, (ours, theirs)):
            fastest, median = harness.timed(run, repeats)
            rows[name].append((fastest, median, added[side, n]))
    return rows


def growth_section(rows: dict, dtype_name: str, picture: Path | None, lengths=LENGTHS) -> list[str]:
    names = list(rows)
    lines = [f"## Prefill as the prompt grows, {dtype_name}", "",
             "The next token after n tokens. Ours is the batched path with `last_only=True`, as `generate` "
             "runs it; transformers is `LlamaForCausalLM` (sdpa) with `logits_to_keep=1`, as its `generate` "
             "runs it: neither computes the [n, 128256] logits of every position (1 GiB at 2,048 tokens). "
             "Memory is the peak anonymous memory a first pass adds to a model just loaded, in a fresh "
             "process for each side and length (transformers' float32 weights are not counted, our "
             "memory-mapped bf16 weights are not anonymous).", "",
             "| tokens | " + " | ".join(f"{n.split(' ')[0]}: time | {n.split(' ')[0]}: memory added"
                                        for n in names) + " | time ratio |",
             "|---" * (2 * len(names) + 2) + "|"]
    for i, n in enumerate(lengths):
        cells = [f"{harness.fmt_time(rows[name][i][:2])} | {rows[name][i][2] / 2**30:.2f} GiB" for name in names]
        ratio = rows[names[0]][i][1] / rows[names[1]][i][1] if len(names) > 1 else float("nan")
        lines.append(f"| {n:,} | " + " | ".join(cells) + f" | {ratio:.2f}× |")
    lines += ["", "Ratio: our median time ÷ transformers' (lower is faster).", ""]
    if picture is not None:
        draw_growth(rows, dtype_name, picture, lengths)
        lines += [f"![Prefill time and memory added by prompt length, {dtype_name}]({picture.name})", ""]
    return lines


def draw_growth(rows: dict, dtype_name: str, path: Path, lengths=LENGTHS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # One panel above the other, 4.4 in wide: at a phone's 358 px column the text stays 8 px or more
    # (side by side, 8 in wide, it was under 5); 2,048 and 4,096 are one octave apart on the log
    # axis, so their labels lean rather than run into each other.
    fig, (ax_t, ax_m) = plt.subplots(2, 1, figsize=(4.4, 5.6))
    for name, values in rows.items():
        ax_t.plot(lengths, [v[1] for v in values], marker="o", label=name)
        ax_m.plot(lengths, [v[2] / 2**30 for v in values], marker="o", label=name)
    for ax, label in ((ax_t, "median seconds"), (ax_m, "GiB added")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("prompt tokens")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.set_xticks(lengths, [f"{n:,}" for n in lengths], rotation=30, ha="right")
    ax_t.set_yscale("log")
    ax_t.legend(fontsize=8)
    fig.suptitle(f"Prefill, {dtype_name}, 8B-shaped layers", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


def compiled_decode(ckpt, n_new: int, dtype, device, repeats: int) -> tuple[tuple[float, float], float]:
    """Decode with LLAMA3_REFERENCE_COMPILE=1: (best, median) s per token, and the seconds the
    first token took (compiling, or loading the compiled kernels from inductor's disk cache)."""
    tokens = harness.prompt_tokens(ckpt.tokenizer, None)
    os.environ["LLAMA3_REFERENCE_COMPILE"] = "1"
    try:
        start = time.perf_counter()
        decode_rate(ckpt.weights, ckpt.args, tokens, 1, dtype, device, 0)
        first = time.perf_counter() - start
        return decode_rate(ckpt.weights, ckpt.args, tokens, n_new, dtype, device, repeats), first
    finally:
        del os.environ["LLAMA3_REFERENCE_COMPILE"]


def llama_cpp_rate(gguf_path: Path, tokens, n_new: int, repeats: int) -> tuple[float, float] | None:
    """llama.cpp (llama-cpp-python) on the same GGUF, when it is installed; None otherwise."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(model_path=str(gguf_path), n_ctx=512, n_threads=os.cpu_count(), verbose=False)
    runs = []
    for _ in range(repeats + 1):
        llm.reset()
        llm.eval(tokens)
        start = time.perf_counter()
        for _ in range(n_new):
            llm.eval([llm.sample(temp=0)])
        runs.append((time.perf_counter() - start) / n_new)
    return min(runs[1:]), statistics.median(runs[1:])


def small_models_section(n_new: int, device, repeats: int, with_hf: bool) -> list[str]:
    lines = ["## Decode on small models, float32", "",
             "A model whose float32 weights fit 1 GiB is upcast once (`reference.upcast.resident`), into RAM, "
             "instead of a slice at a time per token, and each one-token product runs one block of rows per core "
             "(`upcast.one_row`): the 8B's memory tricks cost small models nothing.", "",
             "| model | ours tokens/s (best / median) | transformers generate (sdpa) | ratio | llama.cpp |",
             "|---|---|---|---|---|"]
    for name in ("tiny", "smollm2-135m"):
        source = resolve_checkpoint(name)
        ckpt = load_checkpoint(source)
        tokens = ckpt.tokenizer.encode("The capital of France is", bos=True, eos=False)
        m = harness.hf_model(ckpt, "sdpa", torch.float32, device) if with_hf else None  # before ours: see below
        # (GGUF tensors first touched under inference_mode cannot be loaded into a model after.)
        weights = upcast.resident(ckpt.weights, torch.float32, device)
        ours = decode_rate(weights, ckpt.args, tokens, n_new, torch.float32, device, repeats)
        theirs = hf_decode_rate(m, tokens, n_new, device, repeats) if m is not None else None
        cpp = llama_cpp_rate(Path(source), tokens, n_new, repeats) if str(source).endswith(".gguf") else None
        fmt = (lambda r: f"{1 / r[0]:.1f} / {1 / r[1]:.1f}")
        lines.append(f"| {name} | {fmt(ours)} | {fmt(theirs) if theirs else '—'} | "
                     f"{theirs[1] / ours[1]:.2f}× | {fmt(cpp) if cpp else 'not installed'} |" if theirs else
                     f"| {name} | {fmt(ours)} | — | — | {fmt(cpp) if cpp else 'not installed'} |")
        del m
    lines += ["", "Ratio: our median tokens/s ÷ transformers' (higher is faster). llama.cpp's column is filled "
              "where `llama_cpp` (llama-cpp-python) is importable; it is never required.", ""]
    return lines


if __name__ == "__main__" and sys.argv[1:2] == ["_prefill_memory"]:  # a child of fresh_prefill_memory
    prefill_memory_child(*sys.argv[2:7])
