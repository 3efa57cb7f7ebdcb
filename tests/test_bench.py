"""bench/: the benchmark's own arithmetic and children (its timings are measured by running it, not
here; its rooms are checked in test_structure.py)."""

import subprocess
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench.py"
sys.path.insert(0, str(BENCH.parent))
import growth  # noqa: E402 (bench/growth.py: bench/ is not a package)
import measure  # noqa: E402


def test_bench_shows_its_options():
    result = subprocess.run([sys.executable, str(BENCH), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--layers" in result.stdout and "--device" in result.stdout


def test_decode_reads_every_matrix_but_only_one_embedding_row(tiny):
    args = tiny.args
    per_layer = 2 * (2 * args.dim * args.n_heads * args.head_dim + 2 * args.dim * args.n_kv_heads * args.head_dim
                     + 3 * args.dim * args.hidden_dim + 2 * args.dim)
    expected = args.n_layers * per_layer + 2 * args.dim + 2 * args.vocab_size * args.dim  # + norm + output (bf16)
    assert measure.decode_bytes_per_token(tiny) == expected


def test_peak_anonymous_memory_sees_a_short_lived_allocation():
    """In a fresh process: in a test worker, memory freed by earlier tests may be reused without
    RssAnon moving, or kept by the allocator after `del`, and either hides the peak."""
    code = (f"import sys, time; sys.path.insert(0, {str(BENCH.parent)!r}); import harness, torch\n"
            "with harness.PeakAnon() as peak:\n"
            "    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched\n"
            "    seen = peak.samples\n"
            "    while peak.samples < seen + 2:  # one whole reading while it is held, however busy the machine\n"
            "        time.sleep(0.001)\n"
            "    del block\n"
            "print(peak.peak - harness.status('RssAnon'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) > 32 * 2**20
def test_the_memory_child_runs_where_bench_memory_starts_it(tiny, tiny_dir):
    result = measure.bench_memory(tiny.args.n_layers, "float32", "cpu", tiny_dir)
    assert result["peak_rss_anon"] >= result["rss_anon_at_start"] > 0 and result["checkpoint_bytes"] > 0


def test_the_prefill_memory_child_runs_where_growth_starts_it(tiny_dir):
    assert growth.fresh_prefill_memory(tiny_dir, "ours", 17, torch.float32, "cpu") >= 0


def test_a_gguf_extrapolated_to_more_layers_has_the_tensor_bytes_of_one_written_that_deep(tmp_path):
    """bench/gguf_types.py sizes a real 8B from its 2-layer files: the same arithmetic on a small GGUF
    gives exactly the tensor bytes of the same model written with 5 layers."""
    import gguf_types
    from reference.formats.gguf.header import read_header
    from test_gguf import write_gguf

    two, five = write_gguf(tmp_path / "two.gguf", n_layers=2), write_gguf(tmp_path / "five.gguf", n_layers=5)
    assert gguf_types.tensor_bytes(two, 2) == sum(t.nbytes for t in read_header(two).tensors)
    assert gguf_types.tensor_bytes(two, 5) == sum(t.nbytes for t in read_header(five).tensors) > \
        gguf_types.tensor_bytes(two, 2)
