"""bench/bench.py: the benchmark's own arithmetic (its timings are measured by running it, not here)."""

import subprocess
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench.py"
sys.path.insert(0, str(BENCH.parent))
import bench  # noqa: E402


def test_bench_shows_its_options():
    result = subprocess.run([sys.executable, str(BENCH), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--layers" in result.stdout and "--device" in result.stdout


def test_decode_reads_every_matrix_but_only_one_embedding_row(tiny):
    args = tiny.args
    per_layer = 2 * (2 * args.dim * args.n_heads * args.head_dim + 2 * args.dim * args.n_kv_heads * args.head_dim
                     + 3 * args.dim * args.hidden_dim + 2 * args.dim)
    expected = args.n_layers * per_layer + 2 * args.dim + 2 * args.vocab_size * args.dim  # + norm + output (bf16)
    assert bench.decode_bytes_per_token(tiny) == expected


def test_peak_anonymous_memory_sees_a_short_lived_allocation():
    with bench.PeakAnon() as peak:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        del block
    assert peak.peak - bench.status("RssAnon") > 32 * 2**20
