"""`python -m reference`: walk, trace and synthesize; bad input is one line on stderr and exit code 2."""

import json
import subprocess
import sys

import numpy as np
import pytest

from reference.cli import main
from reference.trace import LAYER_STEPS, trace_shapes


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_walk_prints_every_step_of_layer_0_and_the_next_token(capsys, tiny_dir, tiny):
    code, out, err = run(capsys, "walk", "--checkpoint", str(tiny_dir))
    assert code == 0, err
    for name in ("tokens", "embeddings", "freqs_cis", *(f"layers.0.{s}" for s in LAYER_STEPS), "norm", "logits"):
        assert f"  {name} " in out, name
    for i in range(1, tiny.args.n_layers):
        assert f"  layers.{i}.out " in out and f"  layers.{i}.q " not in out
    assert "[17, 128256]" in out  # the walk-through prompt is 17 tokens
    assert out.splitlines()[-2].startswith("next token: ")


def test_walk_all_layers_prints_every_step_of_every_layer(capsys, tiny_dir, tiny):
    code, out, _ = run(capsys, "walk", "--checkpoint", str(tiny_dir), "--all-layers", "--prompt", "hi")
    assert code == 0
    last = tiny.args.n_layers - 1
    assert f"  layers.{last}.q_rotated " in out


def test_walk_defaults_to_the_builtin_trained_model_and_says_paris(capsys):
    code, out, err = run(capsys, "walk", "--path", "batched", "--prompt", "The capital of France is")
    assert code == 0, err
    assert "SmolLM2-135M-Instruct.Q4_1.gguf: dim 576, 30 layers, 9 heads, 3 kv heads" in out.splitlines()[0]
    assert out.splitlines()[-2] == "next token: 7042 = ' Paris'"
    assert out.splitlines()[1].startswith("weights: as stored in SmolLM2-135M-Instruct.Q4_1.gguf (trained")


def test_walk_on_tiny_is_one_flag_away_and_says_its_weights_are_random(capsys):
    code, out, err = run(capsys, "walk", "--checkpoint", "tiny", "--path", "batched", "--prompt", "Hello")
    assert code == 0, err
    assert "tiny-seed0" in out.splitlines()[0]
    assert out.splitlines()[1] == "weights: synthesized (random, preset 'tiny', seed 0): not trained, so the prediction is noise"


def test_walk_previews_the_last_position_where_rope_and_attention_are_at_work(capsys, tiny_dir, tiny):
    from reference.run import run_trace

    code, out, _ = run(capsys, "walk", "--checkpoint", str(tiny_dir), "--prompt", "one two three four five")
    assert code == 0
    trace = run_trace(tiny.tokenizer.encode("one two three four five", bos=True, eos=False), tiny.weights, tiny.args)
    line = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ")}
    for name, values in (("embeddings", trace["embeddings"][-1]), ("layers.0.q_rotated", trace["layers.0.q_rotated"][0, -1]),
                         ("layers.0.attention_weights", trace["layers.0.attention_weights"][0, -1])):
        assert f"[{', '.join(f'{v:.4g}' for v in values[:4].tolist())}, …]" in line[name], name
    assert "at the last position (5: ' five')" in out


def test_walk_reads_a_long_prompt_from_a_file_or_standard_input(capsys, monkeypatch, tiny_dir, tmp_path):
    import io

    text = "a line of a long prompt\n" * 40
    (tmp_path / "prompt.txt").write_text(text, encoding="utf-8")
    code, from_file, err = run(capsys, "walk", "--checkpoint", str(tiny_dir), "--path", "batched",
                               "--prompt-file", str(tmp_path / "prompt.txt"))
    assert code == 0, err
    assert f"({len(text):,} characters)" in from_file
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8"))))
    code, from_stdin, err = run(capsys, "walk", "--checkpoint", str(tiny_dir), "--path", "batched", "--prompt", "-")
    assert code == 0, err
    strip = lambda out: [ln for ln in out.splitlines() if not ln.startswith("(")]  # noqa: E731 - not the timing
    assert strip(from_stdin) == strip(from_file)


@pytest.mark.parametrize("content, says", [(None, "not found (prompt file)"), (b"caf\xe9", "not UTF-8 text (byte 3")])
def test_a_bad_prompt_file_is_one_line_naming_it(capsys, tiny_dir, tmp_path, content, says):
    path = tmp_path / "p.txt"
    if content is not None:
        path.write_bytes(content)
    code, _, err = run(capsys, "walk", "--checkpoint", str(tiny_dir), "--prompt-file", str(path))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and str(path) in err and says in err, err


def test_prompt_and_prompt_file_are_one_or_the_other(capsys, tiny_dir, tmp_path):
    code, _, err = run(capsys, "walk", "--checkpoint", str(tiny_dir), "--prompt", "x", "--prompt-file", "y")
    assert code == 2 and "not allowed with argument" in err


def test_trace_writes_every_tensor_of_the_contract(capsys, tiny_dir, tiny, tmp_path):
    out_file = tmp_path / "trace.npz"
    code, out, err = run(capsys, "trace", "--checkpoint", str(tiny_dir), "--prompt", "the answer is", "--out",
                         str(out_file), "--dtype", "float64")
    assert code == 0, err
    with np.load(out_file) as saved:
        shapes = {name: saved[name].shape for name in saved.files}
        assert saved["embeddings"].dtype == np.float64
    assert shapes == trace_shapes(tiny.args, 4)


def test_synthesize_writes_a_meta_format_directory(capsys, tmp_path):
    code, _, err = run(capsys, "synthesize", "--preset", "tiny", "--n-layers", "1", "--seed", "3",
                       "--out", str(tmp_path / "ckpt"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["consolidated.00.pth", "params.json",
                                                                     "synthesized.json", "tokenizer.model"]
    assert json.loads((tmp_path / "ckpt" / "params.json").read_text())["n_layers"] == 1


def one_line_error(capsys, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("argv, message", [
    (["walk", "--dtype", "float8"], "invalid choice: 'float8'"),
    (["walk", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["trace", "--prompt", "x", "--out", "x.npz"], "the following arguments are required: --checkpoint"),
    (["walk", "--checkpoint", "/nonexistent/ckpt"], "/nonexistent/ckpt"),
    (["synthesize", "--preset", "llama9", "--out", "x"], "unknown preset 'llama9'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_arguments_give_one_line_and_exit_code_2(capsys, argv, message):
    assert message in one_line_error(capsys, *argv)


def test_cuda_when_there_is_none_is_one_line(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert "no CUDA device" in one_line_error(capsys, "walk", "--device", "cuda")


def test_bad_params_json_in_a_checkpoint_is_one_line_naming_file_and_field(capsys, tiny_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in tiny_dir.iterdir():
        (bad / f.name).symlink_to(f)
    (bad / "params.json").unlink()
    (bad / "params.json").write_text(json.dumps({**json.loads((tiny_dir / "params.json").read_text()),
                                                 "n_kv_heads": 3}))
    err = one_line_error(capsys, "walk", "--checkpoint", str(bad))
    assert "params.json" in err and "n_kv_heads 3" in err


def test_trace_to_a_missing_directory_is_one_line(capsys, tiny_dir, tmp_path):
    err = one_line_error(capsys, "trace", "--checkpoint", str(tiny_dir), "--prompt", "x",
                         "--out", str(tmp_path / "nope" / "t.npz"))
    assert "no such directory" in err


def test_help_works_as_a_process():
    result = subprocess.run([sys.executable, "-m", "reference", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "usage:" in result.stdout


@pytest.mark.parametrize("command", ["walk", "trace", "generate", "synthesize", "download", "goldens", "parity",
                                     "check", "compare", "serve"])
def test_help_works_for_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and "usage:" in capsys.readouterr().out
