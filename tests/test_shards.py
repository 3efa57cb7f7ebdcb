"""Model-parallel shards (Llama 3 70B: consolidated.00.pth … 07.pth): split as Meta's model splits
them, read back as one checkpoint, and every way a set of shards can be broken is one line."""

import math
import shutil
from pathlib import Path

import pytest
import torch

from reference import model
from reference.formats import load_checkpoint
from reference.formats.shards import ShardedWeights, split_dim
from reference.formats.synthesize import synthesize
from reference.cli import main
from reference.errors import InputError
from reference.run import run_trace

from helpers import one_line_error, refused, rss_anon

PROMPT = [128000, 1820, 4320, 311, 279, 17139, 3488, 315, 2324, 11, 279, 15861, 11, 323, 4395, 374, 220]


@pytest.fixture(scope="module")
def two_shards(tmp_path_factory):
    """The tiny preset with seed 0, written as 2 model-parallel shards: the twin of `tiny_dir`."""
    return synthesize("tiny", seed=0, out_dir=tmp_path_factory.mktemp("shards") / "tiny-2", n_shards=2)


def copy_of(directory: Path, out: Path) -> Path:
    shutil.copytree(directory, out)
    return out


def rewrite_shard(file: Path, change) -> None:
    """Load one shard, let `change` edit its dict, save it back (a real file, as a broken download)."""
    weights = dict(torch.load(file, weights_only=True))
    change(weights)
    torch.save(weights, file)


# --- the split ---


@pytest.mark.parametrize("name, dim", [
    ("tok_embeddings.weight", 0), ("layers.0.attention.wq.weight", 0), ("layers.0.attention.wk.weight", 0),
    ("layers.0.attention.wv.weight", 0), ("layers.0.attention.wo.weight", 1), ("layers.0.feed_forward.w1.weight", 0),
    ("layers.0.feed_forward.w2.weight", 1), ("layers.0.feed_forward.w3.weight", 0), ("output.weight", 0),
    ("layers.0.attention_norm.weight", None), ("layers.0.ffn_norm.weight", None), ("norm.weight", None),
])
def test_split_dims_follow_metas_parallel_layers(name, dim):
    # ColumnParallelLinear and VocabParallelEmbedding split dim 0, RowParallelLinear dim 1 (llama_models/llama3/model.py)
    assert split_dim(name) == dim


def test_each_shard_holds_its_ranks_slice(tiny, two_shards):
    shards = [torch.load(two_shards / f"consolidated.0{r}.pth", weights_only=True) for r in range(2)]
    assert list(shards[0]) == list(tiny.weights)  # Meta's names, in Meta's order
    wq, wo = tiny.weights["layers.1.attention.wq.weight"], tiny.weights["layers.1.attention.wo.weight"]
    assert torch.equal(shards[1]["layers.1.attention.wq.weight"], wq[wq.shape[0] // 2:])
    assert torch.equal(shards[1]["layers.1.attention.wo.weight"], wo[:, wo.shape[1] // 2:])
    assert torch.equal(shards[0]["norm.weight"], shards[1]["norm.weight"])


def model_parallel_forward(tokens, shards, args):
    """Meta's model-parallel forward pass, one rank at a time in float64, summing where fairscale all-reduces.

    Each rank holds H/n query heads and K/n kv heads (its rows of wq wk wv), the matching
    columns of wo, F/n hidden units (rows of w1 w3, columns of w2) and V/n vocabulary rows.
    """
    n, f64 = len(shards), torch.float64
    H, K, d = args.n_heads // n, args.n_kv_heads // n, args.head_dim
    V = args.vocab_size // n
    x = sum(torch.where(((tokens >= r * V) & (tokens < (r + 1) * V))[:, None],  # VocabParallelEmbedding
                        s["tok_embeddings.weight"][(tokens - r * V).clamp(0, V - 1)].to(f64), 0.0)
            for r, s in enumerate(shards))
    cis = model.freqs_cis(args, len(tokens), dtype=f64)
    mask = model.causal_mask(len(tokens), len(tokens), f64)
    for i in range(args.n_layers):
        w = [{k.removeprefix(f"layers.{i}."): v.to(f64) for k, v in s.items()} for s in shards]
        normed = model.rms_norm(x, w[0]["attention_norm.weight"], args.norm_eps)
        attention_out = 0
        for s in w:
            q = (normed @ s["attention.wq.weight"].T).view(-1, H, d).transpose(0, 1)  # [H/n, T, d]
            k = (normed @ s["attention.wk.weight"].T).view(-1, K, d).transpose(0, 1)  # [K/n, T, d]
            v = (normed @ s["attention.wv.weight"].T).view(-1, K, d).transpose(0, 1)
            q, k = model.apply_rope(q, cis), model.apply_rope(k, cis)
            k, v = k.repeat_interleave(H // K, 0), v.repeat_interleave(H // K, 0)
            out = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d) + mask, -1) @ v  # [H/n, T, d]
            attention_out = attention_out + out.transpose(0, 1).flatten(1) @ s["attention.wo.weight"].T  # all-reduce
        h = x + attention_out
        normed = model.rms_norm(h, w[0]["ffn_norm.weight"], args.norm_eps)
        x = h + sum(model.swiglu(normed, s["feed_forward.w1.weight"], s["feed_forward.w2.weight"],
                                 s["feed_forward.w3.weight"]) for s in w)  # all-reduce
    x = model.rms_norm(x, shards[0]["norm.weight"].to(f64), args.norm_eps)
    return torch.cat([x @ s["output.weight"].to(f64).T for s in shards], dim=-1)  # gather_output


def test_shards_compute_the_one_file_model_when_run_model_parallel(tiny, two_shards):
    shards = [torch.load(two_shards / f"consolidated.0{r}.pth", weights_only=True, mmap=True) for r in range(2)]
    tokens = torch.tensor(PROMPT)
    expected = model.forward(tokens, tiny.weights, tiny.args, dtype=torch.float64)
    torch.testing.assert_close(model_parallel_forward(tokens, shards, tiny.args), expected, rtol=1e-9, atol=1e-9)


# --- loading ---


def test_two_shard_checkpoint_traces_identically_to_its_one_shard_twin(tiny, two_shards):
    sharded = load_checkpoint(two_shards)
    assert isinstance(sharded.weights, ShardedWeights) and sharded.args == tiny.args
    assert list(sharded.weights) == list(tiny.weights)
    one, two = run_trace(PROMPT, tiny.weights, tiny.args), run_trace(PROMPT, sharded.weights, sharded.args)
    assert list(one) == list(two)
    for name in one:
        assert torch.equal(one[name], two[name]), name


def test_sharded_weights_stay_memory_mapped(two_shards):
    before = rss_anon()
    ckpt = load_checkpoint(two_shards)
    grown = rss_anon() - before
    size = sum(f.stat().st_size for f in two_shards.glob("*.pth"))
    assert grown < size / 10, f"RssAnon grew by {grown / 1e6:.0f} MB"
    assert ckpt.weights["output.weight"].shape == (ckpt.args.vocab_size, ckpt.args.dim)  # merged when asked


def test_tied_shards_load_tied(tmp_path):
    ckpt = load_checkpoint(synthesize("tiny", seed=0, out_dir=tmp_path / "t", n_layers=1, tied=True, n_shards=2))
    assert ckpt.tied and "output.weight" not in ckpt.weights


def test_cli_synthesize_writes_shards(capsys, tmp_path):
    assert main(["synthesize", "--n-layers", "1", "--n-shards", "2", "--out", str(tmp_path / "c")]) == 0
    assert sorted(p.name for p in (tmp_path / "c").glob("*.pth")) == ["consolidated.00.pth", "consolidated.01.pth"]


# --- broken shards: one line naming the file ---


def test_a_gap_in_the_shard_numbers_is_named(two_shards, tmp_path):
    d = copy_of(two_shards, tmp_path / "ckpt")
    (d / "consolidated.01.pth").rename(d / "consolidated.02.pth")
    refused(d, str(d), "consolidated.01.pth is missing", "found consolidated.{00, 02}.pth")


def test_missing_last_shard_is_counted(two_shards, tmp_path):
    d = copy_of(two_shards, tmp_path / "ckpt")
    (d / "consolidated.01.pth").unlink()
    refused(d, str(d / "consolidated.00.pth"), "64128 of the 128256 rows", "has 2 model-parallel shards")


def test_a_whole_file_twice_is_not_two_shards(tiny_dir, tmp_path):
    d = copy_of(tiny_dir, tmp_path / "ckpt")
    shutil.copy(d / "consolidated.00.pth", d / "consolidated.01.pth")
    refused(d, "is one whole file", "2 are here")


def test_shards_with_different_names_are_refused(two_shards, tmp_path):
    d = copy_of(two_shards, tmp_path / "ckpt")
    rewrite_shard(d / "consolidated.01.pth", lambda w: w.pop("layers.2.ffn_norm.weight"))
    with pytest.raises(InputError) as excinfo:
        load_checkpoint(d)
    one_line_error(excinfo, str(d / "consolidated.01.pth"), "missing tensor layers.2.ffn_norm.weight",
                   "consolidated.00.pth has")


def test_shards_with_different_shapes_are_refused(two_shards, tmp_path):
    d = copy_of(two_shards, tmp_path / "ckpt")
    rewrite_shard(d / "consolidated.01.pth", lambda w: w.update({
        "layers.0.feed_forward.w2.weight": w["layers.0.feed_forward.w2.weight"][:, :100].clone()}))
    with pytest.raises(InputError) as excinfo:
        load_checkpoint(d)
    one_line_error(excinfo, str(d / "consolidated.01.pth"), "layers.0.feed_forward.w2.weight", "[128, 100]",
                   "[128, 224]")


def test_replicated_norms_that_differ_are_refused(two_shards, tmp_path):
    d = copy_of(two_shards, tmp_path / "ckpt")
    rewrite_shard(d / "consolidated.01.pth", lambda w: w["norm.weight"].mul_(2))
    refused(d, str(d / "consolidated.01.pth"), "norm.weight differs", "consolidated.00.pth")


def test_synthesize_refuses_a_shard_count_that_splits_a_kv_head(tmp_path):
    with pytest.raises(InputError) as excinfo:
        synthesize("tiny", seed=0, out_dir=tmp_path / "x", n_shards=4)  # tiny has 2 kv heads
    one_line_error(excinfo, "n_shards 4", "n_kv_heads 2")
    assert not (tmp_path / "x").exists()
