"""Goldens: every trace tensor of the tiny checkpoint and of SmolLM2, for each prompt of their
prompts.json, compared with the files stored in goldens/.

A mismatch names the *first* tensor, in pipeline order, that went wrong. The planted bugs of
tests/test_goldens_planted.py prove that each classic mistake is caught and named where it
happens; tests/test_goldens_regenerate.py writes new goldens. See goldens/README.md for what is
stored and how to regenerate (`python -m reference goldens`). The real Meta-Llama-3-8B, at the
end, is opt-in.
"""

import os
import re
from functools import partial
from pathlib import Path

import pytest
from pytest_regressions.common import check_text_files, perform_regression_check
from pytest_regressions.ndarrays_regression import NDArraysRegressionFixture

from reference.verify import goldens, tolerances
from reference.formats import load_checkpoint
from reference import WALKTHROUGH_PROMPT
from reference.text.tokenizer import load_tokenizer
from reference.run import run_trace
from reference.trace import trace_shapes

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


SMOLLM2 = goldens.GOLDEN_SETS["smollm2-135m"]
SMOLLM2_PROMPTS = goldens.load_prompts(SMOLLM2.prompts_file)


@pytest.fixture(scope="module")
def smollm2_computed(smollm2):
    return {name: goldens.compute(text, smollm2, SMOLLM2.layers) for name, text in SMOLLM2_PROMPTS.items()}


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
