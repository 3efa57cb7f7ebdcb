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
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from reference import WALKTHROUGH_PROMPT, batched, model, parity, upcast
from reference.config import preset
from reference.formats import load_checkpoint
from reference.files import cache_dir
from reference.synthesize import synthesize

import gemv  # noqa: E402 (bench/gemv.py, beside this file)
import growth  # noqa: E402 (bench/growth.py, beside this file)

ROOT = Path(__file__).resolve().parents[1]


# --- measuring ---

def timed(fn, repeats: int) -> tuple[float, float]:
    """(min, median) seconds of `repeats` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def memory_bandwidth(device, repeats: int, gib: float = 1.0) -> float:
    """Bytes per second of a large tensor copy (each byte read once and written once)."""
    src = torch.ones(int(gib * 2**30) // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)

    def copy():
        dst.copy_(src)
        sync(device)

    best, _ = timed(copy, repeats)
    return 2 * src.numel() * 4 / best


def read_bandwidth(device, repeats: int, gib: float = 1.0) -> float:
    """Bytes per second of `torch.sum` over a large tensor: reading alone, as a decode step reads."""
    src = torch.ones(int(gib * 2**30) // 4, dtype=torch.float32, device=device)

    def read():
        src.sum()
        sync(device)

    best, _ = timed(read, repeats)
    return src.numel() * 4 / best


def matmul_flops(device, dtype, repeats: int, n: int = 4096) -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)

    def mm():
        a @ b
        sync(device)

    best, _ = timed(mm, repeats)
    return 2 * n**3 / best


def status(field: str) -> int:
    """A field of /proc/self/status in bytes (RssAnon: anonymous memory now; VmHWM: peak RSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


class PeakAnon:
    """Samples RssAnon every millisecond in a thread: /proc has a peak for RSS, not for RssAnon."""

    def __enter__(self):
        self.peak, self._stop = status("RssAnon"), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, status("RssAnon"))
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, status("RssAnon"))


# --- the models ---

def checkpoint_dir(n_layers: int) -> Path:
    path = cache_dir() / f"bench-llama3-8b-{n_layers}layers-seed0"
    if not path.exists():
        print(f"synthesizing an 8B-shaped checkpoint with {n_layers} layers into {path} (once) …", flush=True)
        synthesize(preset("llama3-8b", n_layers=n_layers), seed=0, out_dir=path)
    return path


def gguf_file(n_layers: int, qtype: str = "Q8_0") -> Path:
    """The same 8B-shaped checkpoint as a llama.cpp GGUF (written once with gguf's writer, into the
    cache): Q8_0 matrices, F32 norms, Llama 3's vocabulary and merges as llama.cpp's converter
    writes them, q/k rows in Meta's order (which is llama.cpp's)."""
    import gguf
    from gguf.quants import quantize
    from transformers.convert_slow_tokenizer import TikTokenConverter

    from reference.formats.gguf import GGUF_NAMES
    from reference.tokenizer import SPECIAL_TOKENS, find_tokenizer_model

    path = cache_dir() / f"bench-llama3-8b-{n_layers}layers-seed0-{qtype}.gguf"
    if path.exists():
        return path
    ckpt = load_checkpoint(checkpoint_dir(n_layers))
    print(f"writing it as a {qtype} GGUF into {path} (once) …", flush=True)
    a, tmp = ckpt.args, path.with_suffix(".partial")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_context_length(a.max_seq_len), w.add_embedding_length(a.dim), w.add_block_count(a.n_layers)
    w.add_feed_forward_length(a.hidden_dim), w.add_head_count(a.n_heads), w.add_head_count_kv(a.n_kv_heads)
    w.add_rope_freq_base(a.rope_theta), w.add_layer_norm_rms_eps(a.norm_eps), w.add_vocab_size(a.vocab_size)
    model_file = str(find_tokenizer_model())
    vocab, merges = TikTokenConverter(vocab_file=model_file).extract_vocab_merges_from_model(model_file)
    w.add_tokenizer_model("gpt2"), w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(sorted(vocab, key=vocab.get) + list(SPECIAL_TOKENS))
    w.add_token_types([1] * len(vocab) + [3] * len(SPECIAL_TOKENS))
    w.add_token_merges([f"{x} {y}" for x, y in merges])
    w.add_bos_token_id(128000), w.add_eos_token_id(128001), w.add_add_bos_token(True)
    to_gguf = {meta.replace(".N.", f".{i}."): name.replace(".N.", f".{i}.") for name, meta in GGUF_NAMES.items()
               for i in range(a.n_layers)}
    for name, tensor in ckpt.weights.items():
        x = tensor.float().numpy()
        kind = gguf.GGMLQuantizationType[qtype if x.ndim == 2 else "F32"]
        w.add_tensor(to_gguf[name], quantize(x, kind) if x.ndim == 2 else x, raw_dtype=kind if x.ndim == 2 else None)
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file()
    w.close()
    tmp.rename(path)
    return path


def hf_model(ckpt, attn: str, dtype, device):
    """LlamaForCausalLM holding the same weights; a full copy in `dtype`, as transformers keeps them."""
    return parity.hf_model(ckpt.weights, ckpt.args, ckpt.tied, attn=attn, dtype=dtype, device=device,
                           tokenizer=ckpt.tokenizer)


def prompt_tokens(tokenizer, n: int | None) -> list[int]:
    """The walk-through's 17 tokens, or `n` tokens of English text."""
    if n is None:
        return tokenizer.encode(WALKTHROUGH_PROMPT, bos=True, eos=False)
    text = (ROOT / "README.md").read_text() * 10
    return tokenizer.encode(text, bos=True, eos=False)[:n]


# --- the runs ---

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


def cached_logits(ckpt, tokens, start: int, cache, dtype, device) -> torch.Tensor:
    """The next token's logits [V] after `tokens` at positions start …, through the KV cache."""
    return batched.forward(tokens, ckpt.weights, ckpt.args, dtype=dtype, device=device, cache=cache, start=start,
                           last_only=True)[0]


def bench_decode(ckpt, tokens, n_new, dtype, device, repeats, with_hf=True) -> dict[str, tuple[float, float]]:
    """Seconds per generated token, prefill excluded (greedy), ours and transformers' generate.

    The two sides take turns, run by run: this machine has slow spells of minutes (a decode
    step taking 1.5-2x its time whatever runs), and taking turns puts them on both sides."""
    sides = {"ours (KV cache)": lambda: growth.decode_rate(ckpt.weights, ckpt.args, tokens, n_new, dtype, device, 1)}
    if with_hf:
        m = hf_model(ckpt, "sdpa", dtype, device)
        sides["transformers generate (sdpa)"] = lambda: growth.hf_decode_rate(m, tokens, n_new, device, 1)
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


def child(script: str, *argv) -> str:
    """The last line a benchmark script (`script`, with `argv`) prints, run in a process of its
    own; if it fails, an error with the last line it wrote to stderr."""
    argv = [str(a) for a in argv]
    out = subprocess.run([sys.executable, script, *argv], capture_output=True, text=True)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
        raise RuntimeError(f"{Path(script).name} {' '.join(argv)} failed: {last}")
    return out.stdout.strip().splitlines()[-1]


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


def gguf_section(o, device) -> list[str]:
    """The same checkpoint as a Q8_0 GGUF: memory, prefill and decode beside the Meta format's."""
    path = gguf_file(o.layers)
    lines = [f"## The same weights as a Q8_0 GGUF ({o.layers} layers, float32)", "",
             "Quantized tensors are expanded to float32 once, into a memory-mapped cache file; the first "
             "run writes it, later runs map it.", "",
             "| format | file | peak RssAnon | prefill, 17 tokens | decode tokens/s |", "|---|---|---|---|---|"]
    for label, source in (("Meta, bf16", checkpoint_dir(o.layers)), ("GGUF, Q8_0", path)):
        m = bench_memory(o.layers, "float32", device, source)
        ckpt = load_checkpoint(source)
        tokens = prompt_tokens(ckpt.tokenizer, None)
        prefill = bench_prefill(ckpt, tokens, torch.float32, device, o.repeats, False)["batched"]
        decode = fresh_decode(source, "float32", device, o.new_tokens, o.repeats, False)["rates"]["ours (KV cache)"]
        lines.append(f"| {label} | {m['checkpoint_bytes'] / 2**30:.2f} GiB | {m['peak_rss_anon'] / 2**30:.2f} GiB | "
                     f"{fmt_time(prefill)} | {1 / decode[0]:.2f} / {1 / decode[1]:.2f} |")
    return lines + [""]


# --- the report ---

ANALYSIS = """## Reading the figures

**Memory.** The weights stay bf16 and memory-mapped; each one is upcast a cache-sized slice at a
time right before its product (`reference.upcast.linear`), the output projection included, so
no float32 matrix bigger than a few MiB ever exists. The full 32-layer 8B-shaped forward keeps
its anonymous memory far below 2 GiB; the walk-through's code needs 17 GB or more.

**Long prompts.** A pass that only needs the next token (`generate`, the fast path with
`last_only=True`) projects only the last position onto the vocabulary, and the fast path's
attention is PyTorch's fused `scaled_dot_product_attention`, with or without a KV cache, so
it never holds a [heads, T, T] tensor: what a longer prompt adds is the [T, 14336] SwiGLU
activations (computed in place) and the [T, 4096] residuals, less than transformers adds.
Each slice's product is written straight into its columns of the result, and RoPE runs in
the projections' own layout, so no [T, out] result is copied. Such a pass also finishes the
*last layer* on the last row alone (`batched.next_token_block`, as llama.cpp does): every
position still gets its keys and values, which the last query reads and the cache keeps, but
the other rows' queries, attention output, wo and feed-forward would reach no logit, so they
are not computed. That is 96% of one layer's products: nearly half of this 2-layer
checkpoint's work, which is where most of the growth table's lead comes from, and 3% of the
real 32-layer 8B's. Layer for layer the two sides do the same float32 products at about the
ceiling above (`aten::mm` is over 90% of a 512-token prefill), which the "Prefill" tables, where
both compute every position's logits, show: there the ratio is close to 1 at 512 tokens,
and below it would take fewer FLOPs or a lower precision. A *trace* (walk, goldens, the docs)
still records every row of every layer, every score and every logit: that is what it is for.

**float32 decode: the options, and the one chosen.** transformers keeps float32 weights and
reads 4 bytes per parameter per token; we keep bf16 and must upcast. Measured on the 8B's
matrices (one row times [14336, 4096] and the others):

1. *Upcast slices into a reused buffer* (the default, `upcast.linear`): each 4 MiB slice is
   written as float32 and read back by the product while it is still in the cache; about a
   thousand copies a token (the profile above). It reads the bf16 bytes from memory once, so
   it runs ahead of transformers where the cache holds a slice (this AMD EPYC: 32 MiB of L3)
   and behind it where converting is slow (an Intel Xeon measured earlier: 0.67×). One token's
   product with a slice is a matrix-vector product, which MKL runs on one core; `upcast.per_core`
   cuts the slice into one block of rows per core and hands them to the batched product
   (`torch.bmm`), one core each. The copies (the bf16 reads) are now most of a step; the
   products read the slices back from the cache. The decode rows run in a fresh process, ours
   and transformers' taking turns run by run: in the benchmark's own process, after the long
   prefills and transformers' float32 copies, our float32 steps were seen taking 2-5× their
   time. Fresh processes have slow spells too, of minutes, in which the upcast copies run at
   about half their speed (`aten::copy_` in the profile: about 90 ms a token at best, 150 in a
   spell). In one spell 4, 8 and 16 MiB slices slowed alike, whether the buffer was a fresh
   mapping or reused heap memory (another spared 16 MiB slices only), so no slice size avoids
   them; the compiled product, which writes no copy, keeps its speed through them. So the
   float32 median moves between about 0.8× and 1.3× transformers' from one run to the next;
   the best of each row moves less.
2. *A float32 copy written once to a memory-mapped cache file*: reads exactly what transformers
   reads, so it can at best tie, for twice the disk (32 GB for the 8B) and page cache. Not kept.
3. *`torch.compile` of the one-row product* `(w.float() * x).sum(-1)`: one loop that reads the
   bf16 bytes, upcasts in registers and sums, so a token reads half of what transformers reads
   (the "compiled" rows). **Chosen**, as an opt-in (`LLAMA3_REFERENCE_COMPILE=1`): the first run
   compiles one kernel per weight shape (about 17 s for the 8B's shapes on this machine;
   inductor caches them on disk, 3-4 s after), which one-off runs should not pay. Its sums
   run in a different order than the matrix product's, so it agrees to float32 rounding, as
   `tests/test_batched.py` checks wherever a C++ compiler is found; without one, the switch is
   refused in one line that names it.

**bfloat16.** With `--dtype bfloat16` on a CPU with native bf16 (AVX512-BF16 or AMX), the
weights are used as stored and nothing is converted; the profile shows the matrix products
taking all of a decode step, so the step can go no faster than a one-row bf16 product reads
its weight, which the table "One token's bf16 product" measures. Eager PyTorch hands it to
oneDNN's `brg_matmul` (transformers too), with the weight transposed, as a checkpoint stores
it ([out, in]: layout `ba`); it reads at about half the rate of reading alone at one thread,
and about seven tenths at two. Given the same weight already in oneDNN's own blocked layout,
the same kernel reads at about seven tenths at one thread and four fifths at two: the layout
is the difference. But that layout is a copy of every weight in the process's own memory
(15 GiB for the 8B, where the memory goal allows 2 GiB), and PyTorch has no way to build it
over a memory-mapped file (the reorder and `to_mkldnn` both copy), so the default keeps the
checkpoint's layout, and eager bf16 decode reads at oneDNN's rate for it.
Tried and dropped besides: cutting it per core as float32 does (`torch.bmm` in bf16 reads at
10 GB/s), the two halves in two threads of one core each (no faster), the product as a 1×1
convolution (2 GB/s), two copies of the row (oneDNN's two-row kernel, 0-13% faster, within
the noise), slices of rows (slower the smaller they are) and the product the other way round,
weight times column (slower). The bound is the copy's bandwidth, measured at the start of the
run, and this virtual machine's bandwidth moves from day to day (the same copy measured 22 to
47 GB/s, sometimes above reading alone), so the percentages move with it; reading alone
(`torch.sum`, the line at the top) is the most a step that reads each weight once could reach. The compiled product (float32
sums, rounded once, as the bf16 product) reads each weight once, in one loop, and is the
opt-in that comes closest. On a CPU without native bf16, PyTorch's bf16 product is emulated
and slow, so `linear` multiplies in float32 and rounds once instead (detected from
`/proc/cpuinfo`).

**Small models** are not penalised for the 8B's memory tricks: when a model's weights in the
compute dtype fit 1 GiB (`upcast.resident`), `generate` upcasts them once, contiguous in RAM,
instead of a slice at a time per token. One token's product with such a matrix is a
matrix-vector product, which MKL runs on one core, at 8-11 GB/s here, a third to a half of
what a plain sum reads: `upcast.one_row` cuts the matrix into one block of rows per core (a view, nothing copied)
and runs them as one batched product, `torch.bmm`, which gives each core its block. SmolLM2's
30 layers then take about 15 ms a token instead of 41-55 ms (MKL's product, or the
`(w * x).sum(-1)` used before), its [49152, 576] output projection 2.6 ms instead of 5.4 (column-major)
and 11-18 (row-major). Both sides still read the same float32 bytes. (Tried and dropped:
PyTorch's int4 CPU product on the GGUF's own 4-bit blocks, `_weight_int4pack_mm_for_cpu`,
reads 6× fewer bytes but took 25 ms for SmolLM2's output matrix in float32, against 4.6.)

**Noise.** This machine is a small virtual machine: in bursts, single decode steps take 3–6×
their usual time (200 ms becoming 600–1,200 ms) whatever the code does, which shows in the
medians; the best figure of each row is the one to compare, and figures move between runs.

**The literal path** converts each weight whole (only the output projection goes slice by
slice) and loops over heads, and stays within about 2× of transformers on short prompts.
"""


def fmt_time(pair) -> str:
    lo, med = pair
    return f"{lo * 1e3:,.0f} / {med * 1e3:,.0f} ms"


def machine_line(device) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    import transformers
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.device(device).type == "cuda" else ""
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads "
            f"(CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16: "
            f"{'yes' if upcast.cpu_has_native_bf16() else 'no'}), transformers {transformers.__version__}, "
            f"Python {platform.python_version()}{gpu}")


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "_memory":
        memory_child(*sys.argv[2:5])
        return 0
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "_prefill_memory":
        growth.prefill_memory_child(*sys.argv[2:7])
        return 0
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "_decode":
        decode_child(*sys.argv[2:8])
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=2, help="layers of the timed 8B-shaped checkpoint (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per figure (default 3)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated (default: float32,bfloat16)")
    p.add_argument("--new-tokens", type=int, default=16, help="tokens to decode (default 16)")
    p.add_argument("--long", type=int, default=512, help="length of the long prompt (default 512)")
    p.add_argument("--no-32", action="store_true", help="skip the 32-layer memory measurement (16 GB on disk)")
    p.add_argument("--no-hf", action="store_true", help="skip transformers")
    p.add_argument("--no-gguf", action="store_true", help="skip the Q8_0 GGUF of the same weights")
    p.add_argument("--no-growth", action="store_true", help="skip prefill at 17 … 4,096 tokens")
    p.add_argument("--no-small", action="store_true", help="skip decode on tiny and SmolLM2-135M")
    p.add_argument("--no-compile", action="store_true", help="skip the compiled decode (LLAMA3_REFERENCE_COMPILE=1)")
    p.add_argument("--no-gemv", action="store_true", help="skip the one-token bf16 product table")
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
        lines += gguf_section(o, device)
    lines += [ANALYSIS]
    report = "\n".join(lines)
    print(report)
    if o.out != "-":
        Path(o.out).write_text(report)
        print(f"wrote {o.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
