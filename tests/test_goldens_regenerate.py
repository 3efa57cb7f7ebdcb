"""Regenerating goldens: a new prompt gets a golden and a token listing, only what changed is
rewritten, every file is written atomically, and bad prompts or arguments are input errors.

Everything runs on a checkpoint far smaller than tiny, into tmp_path, never into goldens/. The
last test runs pytest itself on tests/test_goldens.py's `golden_regression`: a first run writes
the golden, a change fails naming its tensor, and --force-regen rewrites it.
"""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from reference.verify import goldens, tolerances
from reference.cli import main
from reference.errors import InputError
from reference.text.tokenizer import load_tokenizer

pytest_plugins = ["pytester"]  # to run pytest itself, with and without --force-regen


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


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
