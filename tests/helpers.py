"""Assertions shared by the test files."""

import hashlib
import json
import shutil
from pathlib import Path

import torch

import pytest

from reference.formats import load_checkpoint
from reference.errors import InputError


def one_line_error(excinfo, *parts: str) -> str:
    """The InputError's message, after checking it is one line and names every part."""
    message = str(excinfo.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message
    return message


def refused_by_cli(capsys, argv: list[str], *culprits: str) -> str:
    """`python -m reference ARGV`, run in-process, exits 2 with one stderr line naming every culprit."""
    from reference.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and "next token" not in out, (code, out, err)
    assert len(err.strip().splitlines()) == 1, err
    for culprit in culprits:
        assert culprit in err, err
    return err


def walk_refused(capsys, checkpoint, *culprits: str) -> str:
    """`walk --checkpoint CHECKPOINT` is refused in one line naming every culprit."""
    return refused_by_cli(capsys, ["walk", "--checkpoint", str(checkpoint), "--prompt", "hi"], *culprits)


def refused(directory, *parts: str) -> str:
    """`load_checkpoint(directory)` fails with one line naming every part; the message."""
    with pytest.raises(InputError) as excinfo:
        load_checkpoint(directory)
    return one_line_error(excinfo, *parts)


def rss_anon() -> int:
    """Anonymous memory this process holds now, in bytes: memory-mapped file pages do not count."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("RssAnon:"))) * 1024


def sha256s(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def write_checkpoint(tiny_dir: Path, out: Path, weights=None, params: dict | None = None) -> Path:
    """A checkpoint directory like tiny_dir, with other weights (any picklable object) or params."""
    out.mkdir(parents=True)
    shutil.copy(tiny_dir / "tokenizer.model", out)
    params = json.loads((tiny_dir / "params.json").read_text()) if params is None else params
    (out / "params.json").write_text(json.dumps(params))
    if weights is not None:
        torch.save(weights, out / "consolidated.00.pth")
    else:
        shutil.copy(tiny_dir / "consolidated.00.pth", out)
    return out
