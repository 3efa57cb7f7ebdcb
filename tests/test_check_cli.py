"""`python -m reference check` and `compare` on trace files: exit 0 on a match and 1 with the
report on a difference, the report as one JSON object, your own tensor names mapped to ours,
bad input as one line and exit 2 (and a layer the checkpoint lacks refused, naming it), and
`compare`'s table of where two traces part.
"""

import json

import numpy as np
import pytest
import torch

from learner import Bugs, learner_trace
from reference.check import check_trace
from reference.errors import InputError
from reference.run import run_trace, save_trace

from test_check import PROMPT


@pytest.fixture(scope="module")
def tokens(tiny):
    return tiny.tokenizer.encode(PROMPT, bos=True, eos=False)


def cli(capsys, *argv):
    """`python -m reference ARGV`, through cli.main: (exit code, stdout, stderr)."""
    from reference.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trace_files(tiny, tokens, tmp_path_factory):
    """A correct float32 trace, the same in bfloat16, and one with SiLU on the up projection, as .npz."""
    d = tmp_path_factory.mktemp("traces")
    good, low = (save_trace(run_trace(tokens, tiny.weights, tiny.args, dtype=t), d / f"{n}.npz")
                 for n, t in (("float32", torch.float32), ("bfloat16", torch.bfloat16)))
    np.savez(d / "swapped.npz", **learner_trace(tiny, tokens, Bugs(swap_gate=True, layer=2)))
    return good, low, d / "swapped.npz"


def test_cli_check_exits_0_on_a_match_and_1_with_the_report_on_a_difference(capsys, tiny_dir, trace_files):
    good, _, swapped = trace_files
    code, out, err = cli(capsys, "check", str(good), "--checkpoint", str(tiny_dir))
    assert (code, err) == (0, "") and "match: all 62 tensors" in out
    code, out, _ = cli(capsys, "check", str(swapped), "--checkpoint", str(tiny_dir), "--prompt", PROMPT)
    assert code == 1 and "first difference: layers.2.ffn_out" in out and "cause swiglu-branches" in out


def test_cli_check_json_is_one_object_with_the_named_fields(capsys, tiny_dir, trace_files):
    code, out, _ = cli(capsys, "check", str(trace_files[2]), "--checkpoint", str(tiny_dir), "--json")
    report = json.loads(out)
    assert code == 1 and len(out.strip().splitlines()) == 1
    assert {k: report[k] for k in ("match", "first_divergent", "cause", "layout", "dtype")} == {
        "match": False, "first_divergent": "layers.2.ffn_out", "cause": "swiglu-branches", "layout": "meta",
        "dtype": "float32"}
    assert report["max_error"] > 0.1 and report["where"]["layer"] == 2 and report["missing"] == []
    assert report["checked"][-1] == "layers.2.ffn_out"


def test_cli_check_maps_your_own_names(capsys, tiny, tiny_dir, tokens, tmp_path):
    trace = learner_trace(tiny, tokens, Bugs(tiled_kv=True, layer=2))
    theirs = {"ids": trace["tokens"], **{f"blocks.{i}.attn.{s}": trace[f"layers.{i}.{s}"]
                                         for i in range(tiny.args.n_layers) for s in ("q", "k", "scores")}}
    np.savez(tmp_path / "theirs.npz", **theirs)
    (tmp_path / "names.json").write_text(json.dumps({"ids": "tokens", "blocks.{i}.attn.q": "layers.{i}.q",
                                                     "blocks.{i}.attn.k": "layers.{i}.k",
                                                     "blocks.{i}.attn.scores": "layers.{i}.scores"}))
    code, out, _ = cli(capsys, "check", str(tmp_path / "theirs.npz"), "--checkpoint", str(tiny_dir), "--names",
                       str(tmp_path / "names.json"), "--json")
    report = json.loads(out)
    assert (code, report["first_divergent"], report["cause"]) == (1, "layers.2.scores", "gqa-grouping")


@pytest.mark.parametrize("content, message", [
    (None, "blocks.0.attn.q: not a name of the trace contract"),
    (b"", "is empty"),
    (b"not a zip file at all", "not an .npz file"),
])
def test_cli_check_bad_input_is_one_line_and_exit_2(capsys, tiny_dir, tmp_path, content, message):
    path = tmp_path / "trace.npz"
    if content is None:
        np.savez(path, **{"blocks.0.attn.q": np.zeros((8, 6, 16), np.float32)})
    else:
        path.write_bytes(content)
    code, out, err = cli(capsys, "check", str(path), "--checkpoint", str(tiny_dir))
    assert (code, out) == (2, "") and len(err.strip().splitlines()) == 1 and message in err, err


def test_a_layer_the_checkpoint_lacks_is_refused_naming_it(tiny):
    with pytest.raises(InputError, match="layers.9.q: the checkpoint has 4 layers"):
        check_trace({"layers.9.q": np.zeros((8, 6, 16), np.float32)}, tiny, PROMPT)


def test_cli_compare_shows_every_layer_and_where_two_traces_part(capsys, trace_files, tmp_path):
    good, low, swapped = trace_files
    code, out, _ = cli(capsys, "compare", str(good), str(low), "--plot", str(tmp_path / "errors.png"))
    assert code == 0 and "(bfloat16)" in out and "every tensor agrees within 0.08" in out, out
    assert len([ln for ln in out.splitlines() if ln.strip().split(" ")[0].isdigit()]) == 4  # one row per layer
    assert (tmp_path / "errors.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = cli(capsys, "compare", str(good), str(swapped))
    assert code == 1 and "they first part beyond 0.0001 at layers.2.ffn_out" in out
