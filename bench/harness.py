"""What the benchmarks share: timing, memory, child processes, the checkpoints and the prompts.

bench.py, measure.py, growth.py, gemv.py and parallel.py import this file (bench/ is not a
package: each runs as a script, with bench/ first on sys.path); it imports none of them.

- timing: `timed` (min and median of repeated calls), `sync`, and the machine's ceilings
  (`memory_bandwidth`, `read_bandwidth`, `matmul_flops`);
- memory: `status` (a field of /proc/self/status; `proc_field` for other /proc/self files) and `PeakAnon` (peak anonymous memory);
- children: `child` runs a benchmark script in a process of its own and reads its last line;
- checkpoints: the 8B-shaped checkpoint (`checkpoint_dir`) and its GGUF (`gguf_file`),
  transformers' model of the same weights (`hf_model`), the prompts (`prompt_tokens`);
- the page: `fmt_time` and `machine_line`.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from reference import WALKTHROUGH_PROMPT, upcast
from reference.verify import parity
from reference.config import preset
from reference.formats import load_checkpoint
from reference.files import cache_dir
from reference.formats.synthesize import synthesize

ROOT = Path(__file__).resolve().parents[1]


# --- timing ---

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


# --- memory ---

def status(field: str) -> int:
    """A field of /proc/self/status in bytes (RssAnon: anonymous memory now; VmHWM: peak RSS)."""
    return proc_field("status", field) * 1024  # kB there


def proc_field(file: str, field: str) -> int:
    """The number of a field of /proc/self/FILE: status's are in kB, io's (write_bytes, what this process
    sent towards storage, counted as pages are dirtied) in bytes."""
    for line in Path("/proc/self", file).read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class PeakAnon:
    """Samples RssAnon every millisecond in a thread: /proc has a peak for RSS, not for RssAnon."""

    def __enter__(self):
        self.peak, self.samples, self._stop = status("RssAnon"), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, status("RssAnon"))
            self.samples += 1  # how many readings so far: a caller can wait for one more
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, status("RssAnon"))


# --- children ---

def child(script: str, *argv) -> str:
    """The last line a benchmark script (`script`, with `argv`) prints, run in a process of its
    own; if it fails, an error with the last line it wrote to stderr."""
    argv = [str(a) for a in argv]
    out = subprocess.run([sys.executable, script, *argv], capture_output=True, text=True)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
        raise RuntimeError(f"{Path(script).name} {' '.join(argv)} failed: {last}")
    return out.stdout.strip().splitlines()[-1]


# --- the models ---

def checkpoint_dir(n_layers: int) -> Path:
    path = cache_dir() / f"bench-llama3-8b-{n_layers}layers-seed0"
    if not path.exists():
        print(f"synthesizing an 8B-shaped checkpoint with {n_layers} layers into {path} (once) …", flush=True)
        synthesize(preset("llama3-8b", n_layers=n_layers), seed=0, out_dir=path)
    return path


def gguf_file(n_layers: int, qtype: str = "Q8_0") -> Path:
    """The same 8B-shaped checkpoint as a llama.cpp GGUF (written once with gguf's writer, into the
    cache): `qtype` matrices (Q8_0, Q4_0, Q4_K, or BF16 and F16, the same weights unquantized;
    quantize.py), F32 norms, Llama 3's vocabulary and merges as llama.cpp's converter writes
    them, q/k rows in Meta's order (which is llama.cpp's)."""
    import gguf
    from transformers.convert_slow_tokenizer import TikTokenConverter

    from quantize import encoded  # bench/quantize.py

    from reference.formats.gguf import GGUF_NAMES
    from reference.text.tokenizer import SPECIAL_TOKENS, find_tokenizer_model

    path = cache_dir() / f"bench-llama3-8b-{n_layers}layers-seed0-{qtype}.gguf"
    if path.exists():
        return path
    ckpt = load_checkpoint(checkpoint_dir(n_layers))
    print(f"writing it as a {qtype} GGUF into {path} (once) …", flush=True)
    a, tmp = ckpt.args, path.with_suffix(".partial")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_context_length(a.max_seq_len)
    w.add_embedding_length(a.dim)
    w.add_block_count(a.n_layers)
    w.add_feed_forward_length(a.hidden_dim)
    w.add_head_count(a.n_heads)
    w.add_head_count_kv(a.n_kv_heads)
    w.add_rope_freq_base(a.rope_theta)
    w.add_layer_norm_rms_eps(a.norm_eps)
    w.add_vocab_size(a.vocab_size)
    model_file = str(find_tokenizer_model())
    vocab, merges = TikTokenConverter(vocab_file=model_file).extract_vocab_merges_from_model(model_file)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(sorted(vocab, key=vocab.get) + list(SPECIAL_TOKENS))
    w.add_token_types([1] * len(vocab) + [3] * len(SPECIAL_TOKENS))
    w.add_token_merges([f"{x} {y}" for x, y in merges])
    w.add_bos_token_id(128000)
    w.add_eos_token_id(128001)
    w.add_add_bos_token(True)
    to_gguf = {meta.replace(".N.", f".{i}."): name.replace(".N.", f".{i}.") for name, meta in GGUF_NAMES.items()
               for i in range(a.n_layers)}
    for name, tensor in ckpt.weights.items():
        if tensor.ndim == 2:
            data, raw_dtype = encoded(tensor, qtype)
            w.add_tensor(to_gguf[name], data, raw_dtype=raw_dtype)
        else:
            w.add_tensor(to_gguf[name], tensor.float().numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
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


# --- the page ---

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
