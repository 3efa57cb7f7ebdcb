"""Goldens: every trace tensor of the tiny checkpoint, for each prompt of goldens/prompts.json.

A mismatch names the *first* tensor, in pipeline order, that went wrong; the planted bugs
below prove that each classic mistake is caught and named where it happens. See
goldens/README.md for what is stored and how to regenerate (`python -m reference goldens`).
"""

import __future__
import inspect
import json
import os
import re
import textwrap
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from pytest_regressions.common import check_text_files, perform_regression_check
from pytest_regressions.ndarrays_regression import NDArraysRegressionFixture

from reference import batched, model
from reference.verify import goldens, tolerances
from reference.formats import load_checkpoint
from reference import WALKTHROUGH_PROMPT
from reference.cli import main
from reference.errors import InputError
from reference.text.tokenizer import load_tokenizer
from reference.run import run_trace
from reference.trace import trace_shapes

pytest_plugins = ["pytester"]  # to run pytest itself, with and without --force-regen

PROMPTS = goldens.load_prompts()
TINY = goldens.TINY_GOLDENS
BUDGET_BYTES = 3_000_000  # the whole goldens/ directory; README explains what keeps it small


class GoldenRegression(NDArraysRegressionFixture):
    """pytest-regressions' ndarrays_regression, comparing as goldens.py does (the first tensor to
    diverge, exact dtypes, the per-tensor tolerances) and writing files atomically."""

    def _check_fn(self, obtained_filename: Path, expected_filename: Path) -> None:
        __tracebackhide__ = True
        golden, obtained = goldens.read_npz(expected_filename), goldens.read_npz(obtained_filename)
        if self.request.config.getoption("force_regen"):
            for line in tolerances.changes(golden, obtained)[:20]:
                print(line)  # what regenerating changes; pytest shows it with the failure
        problem = tolerances.first_divergence(golden, obtained)
        if problem:
            raise AssertionError(f"{expected_filename.name}: {problem}\n"
                                 "If the change is intended, regenerate: python -m reference goldens")

    def _dump_fn(self, data_dict, filename: Path) -> None:
        goldens.write_npz(filename, data_dict)

    def check_text(self, text: str, fullpath: Path) -> None:
        """Like file_regression.check, but written atomically."""
        __tracebackhide__ = True
        perform_regression_check(datadir=self.datadir, original_datadir=self.original_datadir, request=self.request,
                                 check_fn=partial(check_text_files, encoding="utf-8"),
                                 dump_fn=lambda f: goldens.write_text(f, text), extension=fullpath.suffix,
                                 fullpath=fullpath)


@pytest.fixture
def golden_regression(ndarrays_regression, request):
    return GoldenRegression(ndarrays_regression.datadir, ndarrays_regression.original_datadir, request)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def computed(tiny):
    """name -> (golden arrays, token listing) of this checkout's pass, for every prompt."""
    return {name: goldens.compute(text, tiny) for name, text in PROMPTS.items()}


@pytest.fixture(scope="module")
def walkthrough_golden():
    return goldens.read_npz(TINY / "walkthrough.npz")


SMOLLM2 = goldens.GOLDEN_SETS["smollm2-135m"]
SMOLLM2_PROMPTS = goldens.load_prompts(SMOLLM2.prompts_file)


@pytest.fixture(scope="module")
def smollm2_computed(smollm2):
    return {name: goldens.compute(text, smollm2, SMOLLM2.layers) for name, text in SMOLLM2_PROMPTS.items()}


@pytest.fixture(scope="module", params=["tiny", "smollm2-135m"])
def model_and_golden(request):
    """Each built-in model with its walk-through golden: the planted bugs run on both."""
    ckpt = request.getfixturevalue("tiny" if request.param == "tiny" else "smollm2")
    return ckpt, goldens.read_npz(goldens.GOLDEN_SETS[request.param].directory / "walkthrough.npz")


# --- the goldens themselves ---

@pytest.mark.parametrize("name", PROMPTS)
def test_token_ids_match_the_golden_listing(name, computed, golden_regression):
    golden_regression.check_text(computed[name][1], fullpath=TINY / f"{name}.tokens.json")


@pytest.mark.parametrize("name", PROMPTS)
def test_trace_matches_the_golden(name, computed, golden_regression):
    golden_regression.check(dict(computed[name][0]), fullpath=TINY / f"{name}.npz")


@pytest.mark.parametrize("name", SMOLLM2_PROMPTS)
def test_smollm2_token_ids_match_the_golden_listing(name, smollm2_computed, golden_regression):
    golden_regression.check_text(smollm2_computed[name][1], fullpath=SMOLLM2.directory / f"{name}.tokens.json")


@pytest.mark.parametrize("name", SMOLLM2_PROMPTS)
def test_smollm2_trace_matches_the_golden(name, smollm2_computed, golden_regression):
    golden_regression.check(dict(smollm2_computed[name][0]), fullpath=SMOLLM2.directory / f"{name}.npz")


def test_smollm2_goldens_hold_its_first_and_last_layer_and_say_paris(smollm2):
    golden = goldens.read_npz(SMOLLM2.directory / "capital.npz")
    assert goldens.stored_layers(golden) == (0, smollm2.args.n_layers - 1)
    assert smollm2.tokenizer.decode([int(golden["next_token"])]) == " Paris"


def test_smollm2_checkpoint_is_the_one_its_goldens_were_made_from(smollm2):
    assert goldens.checkpoint_record(smollm2) == (SMOLLM2.directory / "checkpoint.json").read_text(encoding="utf-8")


def test_tiny_checkpoint_is_the_one_the_goldens_were_made_from(tiny):
    # Tells "synthesize() changed" apart from "the forward pass changed" before any tensor is compared.
    assert goldens.checkpoint_record(tiny) == (TINY / "checkpoint.json").read_text(encoding="utf-8"), (
        "the synthesized tiny checkpoint is not the one the goldens were made from; "
        "if checkpoint.synthesize changed on purpose, run python -m reference goldens")


@pytest.mark.parametrize("name", PROMPTS)
def test_golden_holds_every_trace_tensor_in_pipeline_order(name, tiny):
    golden = goldens.read_npz(TINY / f"{name}.npz")
    contract = [n for n in trace_shapes(tiny.args, len(golden["tokens"])) if n not in ("logits", "next_token")]
    stored = [n for n in golden if not n.startswith("logits.") and n not in ("positions", "next_token")]
    assert stored == contract
    assert list(golden)[-5:] == ["logits.column_ids", "logits.columns", "logits.top_ids", "logits.top_values",
                                 "next_token"]


@pytest.mark.parametrize("name", PROMPTS)
def test_golden_floats_are_float32_and_integers_int64(name):
    # pytest-regressions would let a float64 array pass against float32: check the files ourselves.
    dtypes = {str(a.dtype) for a in goldens.read_npz(TINY / f"{name}.npz").values()}
    assert dtypes == {"float32", "int64"}


def test_goldens_stay_small():
    total = sum(p.stat().st_size for p in goldens.GOLDENS_DIR.rglob("*") if p.is_file())
    assert total < BUDGET_BYTES, f"goldens/ holds {total / 1e6:.1f} MB, over its {BUDGET_BYTES / 1e6:.0f} MB budget"


def test_prompts_are_the_walkthrough_a_multilingual_and_a_long_one(tokenizer):
    assert PROMPTS["walkthrough"] == WALKTHROUGH_PROMPT
    assert re.search(r"[\u4e00-\u9fff]", PROMPTS["multilingual"])  # CJK
    assert re.search(r"[\u0600-\u06ff]", PROMPTS["multilingual"])  # Arabic
    assert re.search(r"[\U0001F300-\U0001FAFF]", PROMPTS["multilingual"])  # emoji
    assert 90 <= len(tokenizer.encode(PROMPTS["long"], bos=True, eos=False)) <= 110


def test_readme_tolerance_table_is_the_one_the_code_uses():
    readme = (goldens.GOLDENS_DIR / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ((?:`[\w.]+`,? ?)+) \| ([\d.e-]+) \| ([\d.e-]+) \|", readme, flags=re.M)
    documented = {kind: (float(atol), float(rtol)) for names, atol, rtol in rows for kind in re.findall(r"`([\w.]+)`", names)}
    assert documented == {kind: (t.atol, t.rtol) for kind, t in tolerances.GOLDEN_TOLERANCES.items()}


# --- planted bugs: each is caught, and named where it happens ---

def divergence(ckpt, golden, args=None, weights=None, path="literal"):
    trace = run_trace(golden["tokens"].tolist(), weights or ckpt.weights, args or ckpt.args,
                      dtype=goldens.COMPUTE_DTYPE, path=path, check_finite=False)  # broken on purpose
    return tolerances.first_divergence(golden, goldens.golden_arrays(trace, goldens.stored_layers(golden)))


def mutated(function, old: str, new: str):
    """`function` recompiled with `old` replaced by `new` in its source: the edit a reader would make."""
    source = textwrap.dedent(inspect.getsource(function))
    assert source.count(old) == 1, f"{function.__qualname__} no longer contains {old!r}; update this test"
    namespace = dict(function.__globals__)
    code = compile(source.replace(old, new), inspect.getsourcefile(function), "exec",
                   flags=__future__.annotations.compiler_flag, dont_inherit=True)
    exec(code, namespace)
    return namespace[function.__name__]


def test_unchanged_pass_matches_the_walkthrough_golden(model_and_golden):
    ckpt, golden = model_and_golden
    assert divergence(ckpt, golden) is None  # the baseline the planted bugs depart from


def test_norm_eps_1e6_instead_of_1e5_is_caught_at_layer_0_attention_norm(model_and_golden):
    ckpt, golden = model_and_golden
    # The subtlest bug here: it moves attention_norm by only ~4e-6 of its value.
    message = divergence(ckpt, golden, args=ckpt.args.replace(norm_eps=1e-6))
    assert message.startswith("layers.0.attention_norm: max abs err"), message


def test_rope_theta_10000_instead_of_the_models_is_caught_at_freqs_cis(model_and_golden):
    ckpt, golden = model_and_golden
    message = divergence(ckpt, golden, args=ckpt.args.replace(rope_theta=10_000.0))
    assert message.startswith("freqs_cis: max abs err"), message


def test_rope_turning_the_wrong_way_is_caught_at_layer_0_q_rotated(model_and_golden, monkeypatch):
    ckpt, golden = model_and_golden
    apply_rope = model.apply_rope
    monkeypatch.setattr(model, "apply_rope", lambda x, cis: apply_rope(x, cis.conj()))
    message = divergence(ckpt, golden)
    assert message.startswith("layers.0.q_rotated: max abs err"), message


def test_wrong_kv_head_index_is_caught_at_layer_0_k(model_and_golden, monkeypatch):
    ckpt, golden = model_and_golden
    # Each group of n_rep query heads should share one kv head (tiny: 0-3 kv head 0, 4-7 kv head 1); h % K
    # interleaves them instead, so the keys recorded for kv head 1 are kv head 0's.
    buggy = mutated(model.attention_literal, "kv = h // args.n_rep", "kv = h % args.n_kv_heads")
    monkeypatch.setitem(model.forward.__kwdefaults__, "attention", buggy)
    message = divergence(ckpt, golden)
    assert message.startswith("layers.0.k: max abs err"), message


def test_kv_heads_tiled_instead_of_interleaved_is_caught_at_layer_0_scores(model_and_golden, monkeypatch):
    ckpt, golden = model_and_golden
    # The batched path's version of the same mistake: repeat gives kv heads 0 1 0 1 …, not 0 0 0 0 1 1 1 1.
    buggy = mutated(batched.attention_batched, "keys = keys.repeat_interleave(n_rep, dim=0)",
                    "keys = keys.repeat(n_rep, 1, 1)")
    monkeypatch.setattr(batched, "attention_batched", buggy)
    message = divergence(ckpt, golden, path="batched")
    assert message.startswith("layers.0.scores: max abs err"), message


def test_silu_scaled_by_1_001_is_caught_at_layer_0_ffn_out(tiny, walkthrough_golden, monkeypatch):
    silu = torch.nn.functional.silu
    monkeypatch.setattr(torch.nn.functional, "silu", lambda x: silu(x) * 1.001)
    message = divergence(tiny, walkthrough_golden)
    assert message.startswith("layers.0.ffn_out: max abs err"), message


def test_every_matrix_product_0_1_percent_too_large_is_caught_at_layer_0_q(tiny, walkthrough_golden, monkeypatch):
    matmul = torch.Tensor.__matmul__
    monkeypatch.setattr(torch.Tensor, "__matmul__", lambda a, b: matmul(a, b) * 1.001)
    message = divergence(tiny, walkthrough_golden)
    assert message.startswith("layers.0.q: max abs err"), message  # the first product of the pass


def test_causal_mask_hiding_the_diagonal_is_caught_at_layer_0_scores(tiny, walkthrough_golden, monkeypatch):
    buggy = mutated(model.causal_mask, "diagonal=n_keys - n_queries + 1", "diagonal=n_keys - n_queries")
    monkeypatch.setattr(model, "causal_mask", buggy)
    message = divergence(tiny, walkthrough_golden)
    # the diagonal of each of the 8 heads' [17, 17] scores is now -inf
    assert message.startswith("layers.0.scores: 136 non-finite values differ, first at [0, 0, 0]: -inf"), message


def test_one_weight_of_layer_2_changed_is_caught_at_layer_2_ffn_out(tiny, walkthrough_golden):
    weights = dict(tiny.weights)
    w2 = weights["layers.2.feed_forward.w2.weight"].clone()
    w2[5, 7] += 0.01
    weights["layers.2.feed_forward.w2.weight"] = w2
    message = divergence(tiny, walkthrough_golden, weights=weights)
    assert message.startswith("layers.2.ffn_out: max abs err"), message


def test_failure_names_one_tensor_its_errors_and_how_many_follow(tiny, walkthrough_golden):
    message = divergence(tiny, walkthrough_golden, args=tiny.args.replace(rope_theta=10_000.0))
    assert re.fullmatch(r"freqs_cis: max abs err \S+ at \[\d+, \d+, \d+\] \(obtained \S+, golden \S+\), "
                        r"max rel err \S+; \d+ of 272 values outside atol 1e-09 \+ rtol 2\.5e-07·\|golden\|\. "
                        r"The 3 tensors before it match; \d+ of the 62 after it differ too\.", message), message


def test_float64_array_fails_against_a_float32_golden(walkthrough_golden):
    obtained = dict(walkthrough_golden, **{"layers.1.h": walkthrough_golden["layers.1.h"].astype(np.float64)})
    assert tolerances.first_divergence(walkthrough_golden, obtained).startswith("layers.1.h: dtype float64, golden float32")


def test_missing_tensor_is_named(walkthrough_golden):
    obtained = {n: a for n, a in walkthrough_golden.items() if n != "layers.3.v"}
    assert tolerances.first_divergence(walkthrough_golden, obtained).startswith("layers.3.v: missing")


# --- regeneration: new prompts, only what changed, atomically ---

@pytest.fixture
def regenerate(small, tmp_path):
    """Run goldens.regenerate into tmp_path/g; returns (written, printed lines)."""
    def run(prompts, names=None, force=False):
        lines = []
        written = goldens.regenerate(small, tmp_path / "g", prompts, names, force=force, echo=lines.append)
        return written, lines
    return run


def stamp(path: Path):
    s = path.stat()
    return s.st_ino, s.st_mtime_ns, path.read_bytes()


def tamper(path: Path, name: str = "layers.0.h", by: float = 0.5) -> None:
    arrays = goldens.read_npz(path)
    arrays[name] = arrays[name] + np.float32(by)
    goldens.write_npz(path, arrays)


def test_new_prompt_gets_a_golden_and_a_token_listing(regenerate, tmp_path, tokenizer):
    written, lines = regenerate({"hello": "Hello, world"})
    assert written == ["hello"] and any(line.startswith("hello: new golden, 4 tokens") for line in lines)
    listing = json.loads((tmp_path / "g" / "hello.tokens.json").read_text(encoding="utf-8"))
    assert [i for i, _ in listing["tokens"]] == tokenizer.encode("Hello, world", bos=True, eos=False)
    assert goldens.read_npz(tmp_path / "g" / "hello.npz")["tokens"].tolist() == [i for i, _ in listing["tokens"]]


def test_adding_a_prompt_leaves_the_other_goldens_untouched(regenerate, tmp_path):
    regenerate({"hello": "Hello"})
    before = {p.name: stamp(p) for p in (tmp_path / "g").iterdir()}
    written, lines = regenerate({"hello": "Hello", "world": "world!"})
    assert written == ["world"] and "hello: unchanged" in lines
    assert {name: stamp(tmp_path / "g" / name) for name in before} == before


def test_changed_golden_is_rewritten_saying_which_tensors_changed(regenerate, tmp_path):
    regenerate({"hello": "Hello", "world": "world!"})
    tamper(tmp_path / "g" / "hello.npz")
    world = stamp(tmp_path / "g" / "world.npz")
    written, lines = regenerate({"hello": "Hello", "world": "world!"})
    assert written == ["hello"]
    rewrote = next(i for i, line in enumerate(lines) if line.startswith("hello: rewrote"))
    assert lines[rewrote].endswith("(1 arrays changed beyond tolerance)")
    assert lines[rewrote + 1].startswith("  layers.0.h: max abs err 5.0e-01")
    assert stamp(tmp_path / "g" / "world.npz") == world
    assert regenerate({"hello": "Hello", "world": "world!"})[0] == []  # and now it is up to date


def test_only_the_named_prompts_are_regenerated(regenerate, tmp_path):
    prompts = {"hello": "Hello", "world": "world!"}
    regenerate(prompts)
    tamper(tmp_path / "g" / "hello.npz")
    tamper(tmp_path / "g" / "world.npz")
    hello = stamp(tmp_path / "g" / "hello.npz")
    assert regenerate(prompts, names=["world"])[0] == ["world"]
    assert stamp(tmp_path / "g" / "hello.npz") == hello


def test_regenerating_twice_writes_the_same_bytes(small, tmp_path):
    for out in ("a", "b"):
        goldens.regenerate(small, tmp_path / out, {"hello": "Hello"}, echo=lambda line: None)
    assert [p.name for p in sorted((tmp_path / "a").iterdir())] == ["checkpoint.json", "hello.npz", "hello.tokens.json"]
    for p in (tmp_path / "a").iterdir():
        assert p.read_bytes() == (tmp_path / "b" / p.name).read_bytes(), p.name


@pytest.mark.parametrize("where", ["writing", "renaming"])
def test_interrupted_write_leaves_the_old_golden_intact(tmp_path, monkeypatch, where):
    path = tmp_path / "x.npz"
    goldens.write_npz(path, {"tokens": np.arange(3)})
    old = path.read_bytes()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "fdopen" if where == "writing" else "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        goldens.write_npz(path, {"tokens": np.arange(5)})
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["x.npz"]  # no temporary file left behind


def test_unknown_prompt_name_is_an_input_error(regenerate):
    with pytest.raises(InputError, match="no prompt named 'nope' \\(known: hello\\)"):
        regenerate({"hello": "Hello"}, names=["nope"])


@pytest.mark.parametrize("content, message", [
    ('{"Bad Name": "x"}', "prompt name 'Bad Name' must be lower-case"),
    ('{"ok": 3}', "prompt 'ok' must be a non-empty string, got 3"),
    ('{"ok": "x",}', "not valid JSON"),
    ("[]", "expected a non-empty JSON object"),
])
def test_bad_prompts_file_is_an_input_error_naming_file_and_key(tmp_path, content, message):
    path = tmp_path / "prompts.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(f"{path}: {message}")):
        goldens.load_prompts(path)


def test_cli_goldens_regenerates_a_new_prompt(tmp_path, small_dir, capsys):
    prompts = tmp_path / "prompts.json"
    prompts.write_text('{"hi": "Hi"}', encoding="utf-8")
    code = main(["goldens", "--checkpoint", str(small_dir), "--prompts", str(prompts), "--out", str(tmp_path / "g")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "hi: new golden, 2 tokens" in out and out.endswith("1 golden(s) written: hi\n")


def test_cli_goldens_of_another_checkpoint_need_out(tiny_dir, capsys):
    assert main(["goldens", "--checkpoint", str(tiny_dir)]) == 2
    assert capsys.readouterr().err == ("error: --out is required with --checkpoint other than tiny or "
                                       "smollm2-135m (goldens/ holds theirs)\n")


INNER_TEST = """
import numpy as np
from test_goldens import golden_regression

def test_golden(golden_regression):
    golden_regression.check(dict(np.load("data.npz")), fullpath="golden.npz")
"""


def test_pytest_creates_compares_and_force_regenerates_goldens(pytester):
    pytester.syspathinsert(Path(__file__).parent)
    pytester.makepyfile(test_inner=INNER_TEST)
    data = {"tokens": np.arange(4), "layers.0.q": np.ones((2, 4, 3), np.float32)}
    goldens.write_npz(pytester.path / "data.npz", data)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=1)  # no golden yet: written
    assert tolerances.first_divergence(goldens.read_npz(pytester.path / "golden.npz"), data) is None

    goldens.write_npz(pytester.path / "data.npz", {**data, "layers.0.q": data["layers.0.q"] + np.float32(0.1)})
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*golden.npz: layers.0.q: max abs err 1.0e-01 at [[]0, 0, 0[]]*"])

    pytester.runpytest("-p", "no:cacheprovider", "--force-regen").assert_outcomes(failed=1)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


# --- the real Meta-Llama-3-8B, opt-in ---

REAL_8B = os.environ.get("LLAMA3_REFERENCE_8B")
REAL_8B_GOLDENS = os.environ.get("LLAMA3_REFERENCE_8B_GOLDENS")
needs_8b = pytest.mark.skipif(not REAL_8B, reason=(
    "set LLAMA3_REFERENCE_8B to a Meta-Llama-3-8B original/ directory (params.json, consolidated.00.pth, "
    "tokenizer.model) or a Llama 3 8B .gguf file (e.g. Q8_0 or Q4_K_M; Ollama's llama3:8b blob) to check the real model"))


@pytest.fixture(scope="module")
def real_8b():
    return load_checkpoint(REAL_8B)


@pytest.fixture(scope="module")
def real_8b_trace(real_8b):
    tokens = real_8b.tokenizer.encode(WALKTHROUGH_PROMPT, bos=True, eos=False)
    return run_trace(tokens, real_8b.weights, real_8b.args, path="batched")


@needs_8b
def test_real_8b_encodes_the_walkthrough_prompt_to_17_known_ids(real_8b):
    assert real_8b.tokenizer.encode(WALKTHROUGH_PROMPT, bos=True, eos=False) == [
        128000, 1820, 4320, 311, 279, 17139, 3488, 315, 2324, 11, 279, 15861, 11, 323, 4395, 374, 220]


@needs_8b
def test_real_8b_trace_has_the_walkthrough_shapes(real_8b, real_8b_trace):
    shapes = {name: tuple(t.shape) for name, t in real_8b_trace.items()}
    assert shapes == trace_shapes(real_8b.args, 17)
    assert shapes["layers.0.q"] == (32, 17, 128) and shapes["logits"] == (17, 128256)


@needs_8b
def test_real_8b_predicts_42(real_8b, real_8b_trace):
    """From a GGUF too: quantization moves the logits a little, not the answer."""
    assert int(real_8b_trace["next_token"]) == 2983
    assert real_8b.tokenizer.decode([2983]) == "42"


@needs_8b
@pytest.mark.skipif(not REAL_8B_GOLDENS, reason=(
    "set LLAMA3_REFERENCE_8B_GOLDENS to a directory made by `python -m reference goldens --checkpoint "
    "$LLAMA3_REFERENCE_8B --out DIR walkthrough` to compare the 8B against its own goldens"))
def test_real_8b_matches_its_goldens(real_8b):
    golden = goldens.read_npz(Path(REAL_8B_GOLDENS) / "walkthrough.npz")
    arrays, _ = goldens.compute(PROMPTS["walkthrough"], real_8b)
    assert tolerances.first_divergence(golden, arrays) is None
