"""The page's closing prose, "Reading the figures": what the tables show and why, as measured.

bench.py appends `ANALYSIS` to docs/performance.md after the tables. It is text, not code: when
a figure it quotes moves for good, edit it here.
"""

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

**GGUF files** are read from their blocks (formats/gguf/quantized.py): nothing is written beside the
file, and a quantized matrix is expanded to float32 a 2 MiB slice of rows at a time right
before its product, as a bf16 one is upcast. A bf16 slice is one pass (convert); a quantized
one is several: the packed integers copied out of their blocks, split into nibbles, converted,
scaled (stored_rows.py), each at torch's elementwise speed here, about 10 G values a second
a core, so expanding costs more than reading the file's fewer bytes saves: Q8_0 (two passes)
comes close to bf16, the 4-bit types (four to five passes) are slower. Unpacking Q4_K's
6-bit scales and minimums from their 12 bytes was a third of its expansion (a dozen small
operations per super-block of 256 weights): a Q4_K or Q5_K matrix keeps them unpacked after its
first product, 20 bytes a super-block (0.08 bytes a weight, about 0.4 GB for an 8B's Q4_K
matrices), which took the 2-layer Q4_K file's prefill from 564-568 ms to 396-418 ms against
BF16's 354 (measured here, alternating). A row comes out in the order its bytes lie and the
product takes x's columns in that order; Q4_K's minimum is subtracted once per 32 weights from
the product (llama.cpp's way), a pass fewer. A slice's one-token product is MKL's matrix-vector product:
on this Intel Xeon it ran 4-6× faster than `upcast.per_core`'s batched one (bf16 slices still
use `per_core`, measured on an AMD EPYC; re-measuring that choice here is left to its owner).
Tried and dropped: one block of rows per core, each core's
slices in a thread of its own (Python's lock changes hands at each of a slice's dozen
operations: slower on an idle machine, though steadier on a busy one), a per-block dot
product (`torch.bmm` over blocks of 32: 3-4× slower than the plain product), torch's
quantized tensors (deprecated, and slower than convert-then-scale).

**Noise.** This machine is a small virtual machine: in bursts, single decode steps take 3–6×
their usual time (200 ms becoming 600–1,200 ms) whatever the code does, which shows in the
medians; the best figure of each row is the one to compare, and figures move between runs.

**The literal path** converts each weight whole (only the output projection goes slice by
slice) and loops over heads, and stays within about 2× of transformers on short prompts.
"""
