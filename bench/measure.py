"""The 8B-shaped checkpoint's prefill, decode and memory, measured as the page's tables need them.

bench.py calls these; growth.py takes `decode_rate` and `hf_decode_rate` from here. Decode and
memory are measured in fresh processes: `fresh_decode` and `bench_memory` run this file as a
child (`python bench/measure.py _decode …`, `… _memory …`), which prints one line of JSON.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

from reference import WALKTHROUGH_PROMPT, batched, model
from reference.formats import load_checkpoint

from harness import PeakAnon, checkpoint_dir, child, hf_model, prompt_tokens, read_bandwidth, status, sync, timed


# --- prefill ---

def bench_prefill(ckpt, tokens, dtype, device, repeats, with_hf=True) -> dict[str, tuple[float, float]]:
    t = torch.tensor(tokens, device=device)
    results = {}

    def ours(forward):
        def run():
            with torch.inference_mode():
                forward(t, ckpt.weights, ckpt.args, dtype=dtype, device=device)
            sync(device)
        return run

    results["literal"] = timed(ours(model.forward), repeats)
    results["batched"] = timed(ours(batched.forward), repeats)
    if with_hf:
        for attn in ("eager", "sdpa"):
            m = hf_model(ckpt, attn, dtype, device)

            def run():
                with torch.inference_mode():
                    m(t[None])
                sync(device)

            results[f"transformers {attn}"] = timed(run, repeats)
            del m
    return results


# --- decode ---

def decode_rate(weights, args, tokens, n_new: int, dtype, device, repeats: int) -> tuple[float, float]:
    """(best, median) seconds per new token after `tokens`, through the KV cache (greedy)."""
    t = torch.tensor(tokens, device=device)

    def one():
        cache = batched.KVCache.allocate(args, len(tokens) + n_new, dtype, device)
        with torch.inference_mode():
            logits = batched.forward(t, weights, args, dtype=dtype, device=device, cache=cache, last_only=True)[0]
            sync(device)
            start = time.perf_counter()
            for i in range(n_new):
                logits = batched.forward(logits.argmax().view(1), weights, args, dtype=dtype, device=device,
                                         cache=cache, start=len(tokens) + i, last_only=True)[0]
            sync(device)
        return (time.perf_counter() - start) / n_new

    runs = [one() for _ in range(repeats + 1)]
    runs = runs[1:] or runs  # the first warms up, unless it is the only one
    return min(runs), statistics.median(runs)


def hf_decode_rate(m, tokens, n_new: int, device, repeats: int) -> tuple[float, float]:
    """transformers' generate, greedy: (best, median) seconds per token, its prefill subtracted."""
    t = torch.tensor(tokens, device=device)[None]

    def generate(n):
        start = time.perf_counter()
        with torch.inference_mode():
            m.generate(t, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
        sync(device)
        return time.perf_counter() - start

    runs = [(generate(n_new + 1) - generate(1)) / n_new for _ in range(repeats + 1)][1:]
    return min(runs), statistics.median(runs)


def cached_logits(ckpt, tokens, start: int, cache, dtype, device) -> torch.Tensor:
    """The next token's logits [V] after `tokens` at positions start …, through the KV cache."""
    return batched.forward(tokens, ckpt.weights, ckpt.args, dtype=dtype, device=device, cache=cache, start=start,
                           last_only=True)[0]


def bench_decode(ckpt, tokens, n_new, dtype, device, repeats, with_hf=True) -> dict[str, tuple[float, float]]:
    """Seconds per generated token, prefill excluded (greedy), ours and transformers' generate.

    The two sides take turns, run by run: this machine has slow spells of minutes (a decode
    step taking 1.5-2x its time whatever runs), and taking turns puts them on both sides."""
    sides = {"ours (KV cache)": lambda: decode_rate(ckpt.weights, ckpt.args, tokens, n_new, dtype, device, 1)}
    if with_hf:
        m = hf_model(ckpt, "sdpa", dtype, device)
        sides["transformers generate (sdpa)"] = lambda: hf_decode_rate(m, tokens, n_new, device, 1)
    runs = {name: [] for name in sides}
    for _ in range(repeats):
        for name, one_run in sides.items():  # each call warms up first, then times one run
            runs[name].append(one_run()[0])
    return {name: (min(times), statistics.median(times)) for name, times in runs.items()}


def profile_decode(ckpt, tokens, dtype, device, n_steps: int = 3) -> list[tuple[str, float, int]]:
    """(operator, ms per token, calls per token) for the busiest operators of a KV-cache decode step."""
    from torch.profiler import ProfilerActivity, profile

    t = torch.tensor(tokens, device=device)
    cache = batched.KVCache.allocate(ckpt.args, len(tokens) + 2 * n_steps, dtype, device)
    with torch.inference_mode():
        logits = cached_logits(ckpt, t, 0, cache, dtype, device)
        logits = cached_logits(ckpt, logits.argmax().view(1), len(tokens), cache, dtype, device)  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(n_steps):
                logits = cached_logits(ckpt, logits.argmax().view(1), len(tokens) + 1 + i, cache, dtype, device)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:4]
    return [(e.key, e.self_cpu_time_total / 1e3 / n_steps, e.count // n_steps) for e in events]


def decode_bytes_per_token(ckpt) -> int:
    """Weight bytes one decode step must read: every layer's matrices and the output projection
    (as stored, bf16), but only one row of the embedding table."""
    total = sum(w.numel() * w.element_size() for name, w in ckpt.weights.items() if name != "tok_embeddings.weight")
    if ckpt.tied:
        total += ckpt.weights["tok_embeddings.weight"].numel() * ckpt.weights["tok_embeddings.weight"].element_size()
    return total


# --- in fresh processes ---

def memory_child(path: str, dtype: str, device: str) -> None:
    """Run in a fresh process: load + one batched forward of the walk-through prompt; print JSON."""
    base = status("RssAnon")
    with PeakAnon() as peak:
        ckpt = load_checkpoint(path)
        tokens = ckpt.tokenizer.encode(WALKTHROUGH_PROMPT, bos=True, eos=False)
        with torch.inference_mode():
            logits = batched.forward(torch.tensor(tokens), ckpt.weights, ckpt.args, dtype=getattr(torch, dtype),
                                     device=device)
    print(json.dumps({"peak_rss_anon": peak.peak, "rss_anon_at_start": base, "vm_hwm": status("VmHWM"),
                      "next_token": int(logits[-1].argmax())}))


def decode_child(source: str, dtype: str, device: str, n_new: str, repeats: str, with_hf: str) -> None:
    """Run in a fresh process: `bench_decode` and `profile_decode` of the walk-through prompt; print JSON."""
    ckpt = load_checkpoint(source)
    tokens, dt = prompt_tokens(ckpt.tokenizer, None), getattr(torch, dtype)
    read_bw = read_bandwidth(device, int(repeats))  # this process, right before: the bound of its moment
    rates = bench_decode(ckpt, tokens, int(n_new), dt, device, int(repeats), with_hf == "1")
    print(json.dumps({"rates": rates, "read_bw": read_bw, "profile": profile_decode(ckpt, tokens, dt, device)}))


def fresh_decode(source: Path, dtype: str, device: str, n_new: int, repeats: int, with_hf: bool) -> dict:
    """`decode_child` in a process of its own, ours and transformers alike. In the benchmark's own
    process, after the long prefills and transformers' float32 copies, our float32 decode step
    on this machine took 2-5x its time in a fresh one (docs/performance.md, "Reading the
    figures"): a user's `generate` runs in a process of its own, so that is what is measured."""
    return json.loads(child(__file__, "_decode", source, dtype, device, n_new, repeats, "1" if with_hf else "0"))


def bench_memory(n_layers: int, dtype: str, device: str, path: Path | None = None) -> dict:
    """Peak memory of load + one forward in a fresh process, for the Meta checkpoint or `path`."""
    path = path or checkpoint_dir(n_layers)
    result = json.loads(child(__file__, "_memory", path, dtype, device))
    files = [path] if path.is_file() else path.glob("consolidated.*.pth")
    result["checkpoint_bytes"] = sum(f.stat().st_size for f in files)
    return result


if __name__ == "__main__":  # a child of bench_memory or fresh_decode
    if sys.argv[1:2] == ["_memory"]:
        memory_child(*sys.argv[2:5])
    elif sys.argv[1:2] == ["_decode"]:
        decode_child(*sys.argv[2:8])
    else:
        sys.exit("bench/measure.py runs as a child of bench/bench.py (_memory or _decode); run python bench/bench.py")
