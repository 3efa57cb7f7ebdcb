"""Goldens: every tensor of the trace, recorded once, compared on every test run.

Two sets (`GOLDEN_SETS`): the built-in tiny model's, for the prompts of `goldens/prompts.json`,
and the trained SmolLM2's, for those of `goldens/smollm2-135m/prompts.json`. For each prompt:

    NAME.npz           the trace's tensors (reduced as below), float32, compressed
    NAME.tokens.json   the prompt's token ids with their text, one per line, for people to diff

and `checkpoint.json` says which checkpoint they came from. `python -m reference goldens`
regenerates them; `tests/test_goldens.py` compares against them (see goldens/README.md).

**Computed in float64, stored in float32**, so every machine rounds to the same number or its
neighbour and the tolerance can be 2 float32 ulps, 15× tighter than the subtlest planted bug
(norm_eps 1e-5 → 1e-6). **Reduced**, so the repository stays small: the first 8, every 8th and
the last 8 positions (all of them up to 17 tokens); of the logits, `norm` whole plus every
1009th vocabulary column and the last row's top 16; of SmolLM2's 30 layers, which run the same
code 30 times, the first and the last (transformers checks them all). goldens/README.md says why.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Callable, Mapping, NamedTuple

import numpy as np
import torch

from ..errors import InputError
from .tolerances import changes, kind
from .swap import lock_beside, recover_dir, stage_dir, swap_in
from ..files import read_json, write_text
from ..npz import read_npz, write_npz
from ..run import run_trace

GOLDENS_DIR = Path(__file__).resolve().parents[2] / "goldens"
PROMPTS_FILE = GOLDENS_DIR / "prompts.json"
TINY_GOLDENS = GOLDENS_DIR / "tiny-seed0"


class GoldenSet(NamedTuple):
    directory: Path
    prompts_file: Path
    layers: tuple[int, ...] | None  # the layers kept (negative: from the end); None: every layer


GOLDEN_SETS = {  # --checkpoint name -> where its goldens live
    "tiny": GoldenSet(TINY_GOLDENS, PROMPTS_FILE, None),
    "smollm2-135m": GoldenSet(GOLDENS_DIR / "smollm2-135m", GOLDENS_DIR / "smollm2-135m" / "prompts.json", (0, -1)),
}

COMPUTE_DTYPE = torch.float64
STORED_DTYPE = np.float32
EDGE, STRIDE = 8, 8  # positions kept: the first and last EDGE, and every STRIDE-th
VOCAB_STRIDE = 1009  # logits columns kept
TOP_K = 16  # ids and values of the last row's largest logits


# --- prompts ---

def load_prompts(path: str | Path = PROMPTS_FILE) -> dict[str, str]:
    """goldens/prompts.json: {"name": "text", ...}; a name becomes a file name, so [a-z0-9_-]+."""
    path = Path(path)
    prompts = read_json(path, missing="expected a JSON object of prompt name -> text")
    if not isinstance(prompts, dict) or not prompts:
        raise InputError(f"{path}: expected a non-empty JSON object of prompt name -> text")
    for name, text in prompts.items():
        if not re.fullmatch(r"[a-z0-9_-]+", name):
            raise InputError(f"{path}: prompt name {name!r} must be lower-case letters, digits, - or _ (it names files)")
        if not isinstance(text, str) or not text:
            raise InputError(f"{path}: prompt {name!r} must be a non-empty string, got {text!r}")
    return prompts


# --- what is stored ---

def kept_positions(n_tokens: int) -> np.ndarray:
    """The first EDGE, every STRIDE-th and the last EDGE positions: 97 tokens -> 27 positions."""
    p = np.arange(n_tokens)
    return p[(p < EDGE) | (p % STRIDE == 0) | (p >= n_tokens - EDGE)]


def golden_arrays(trace: Mapping[str, torch.Tensor], layers: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """The arrays stored for a trace, in pipeline order (see the module docstring); only the
    tensors of `layers` when it is given."""
    n_layers = 1 + max((int(name.split(".")[1]) for name in trace if name.startswith("layers.")), default=-1)
    kept = range(n_layers) if layers is None else {i % n_layers for i in layers}
    trace = {name: t.detach().cpu() for name, t in trace.items()
             if not name.startswith("layers.") or int(name.split(".")[1]) in kept}
    rows = torch.from_numpy(kept_positions(len(trace["tokens"])))
    out = {"tokens": trace["tokens"].numpy(), "positions": rows.numpy()}
    for name, t in trace.items():
        if name in ("tokens", "logits", "next_token"):
            continue
        position_axis = 1 if t.ndim == 3 and kind(name) != "freqs_cis" else 0  # [heads, T, ...]
        out[name] = _stored(t.index_select(position_axis, rows))
    logits = trace["logits"]
    columns = torch.arange(0, logits.shape[-1], VOCAB_STRIDE)
    top = logits[-1].topk(TOP_K)
    out["logits.column_ids"] = columns.numpy()
    out["logits.columns"] = _stored(logits[rows][:, columns])
    out["logits.top_ids"] = top.indices.numpy()
    out["logits.top_values"] = _stored(top.values)
    out["next_token"] = trace["next_token"].numpy()
    return out


def stored_layers(golden: Mapping[str, np.ndarray]) -> tuple[int, ...]:
    """The layers a golden holds: (0, 1, 2, 3) for tiny's, (0, 29) for SmolLM2's."""
    return tuple(sorted({int(n.split(".")[1]) for n in golden if n.startswith("layers.")}))


def _stored(t: torch.Tensor) -> np.ndarray:
    return t.to(torch.float64).numpy().astype(STORED_DTYPE)


# --- files: human-readable beside the arrays (written by npz.write_npz, atomically) ---

def token_listing(text: str, ids: list[int], tokenizer) -> str:
    """The human-readable golden of the tokens: the prompt, then one `[id, "text"]` per line."""
    lines = [f"    [{i}, {_json_string(tokenizer.token_text(i))}]" for i in ids]
    return ("{\n" f'  "prompt": {_json_string(text)},\n'
            f'  "n_tokens": {len(ids)},\n' '  "tokens": [\n' + ",\n".join(lines) + "\n  ]\n}\n")


def _json_string(s: str) -> str:
    """JSON, with characters as they are except invisible ones (a zero-width joiner -> \\u200d)."""
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in json.dumps(s, ensure_ascii=False))


def checkpoint_record(ckpt) -> str:
    """checkpoint.json: the params and a hash of every weight's bytes, to tell "the checkpoint
    changed" apart from "the forward pass changed"."""
    digest = hashlib.sha256()
    for name in sorted(ckpt.weights):
        w = ckpt.weights[name].contiguous()
        digest.update(f"{name} {w.dtype} {list(w.shape)}\n".encode())
        digest.update(w.view(torch.uint8).numpy())  # the raw bytes, without a copy
    record = {"params": ckpt.args.to_params(), "weights_sha256": digest.hexdigest(),
              "compute_dtype": str(COMPUTE_DTYPE).removeprefix("torch."), "stored_dtype": np.dtype(STORED_DTYPE).name}
    return json.dumps(record, indent=2) + "\n"


# --- regeneration ---

def compute(text: str, ckpt, layers: tuple[int, ...] | None = None) -> tuple[dict[str, np.ndarray], str]:
    """The golden arrays and token listing of one prompt: the literal path, in float64."""
    ids = ckpt.tokenizer.encode(text, bos=True, eos=False)
    trace = run_trace(ids, ckpt.weights, ckpt.args, dtype=COMPUTE_DTYPE, path="literal")
    return golden_arrays(trace, layers), token_listing(text, ids, ckpt.tokenizer)


def regenerate(ckpt, out_dir: str | Path, prompts: Mapping[str, str], names: list[str] | None = None,
               force: bool = False, echo: Callable[[str], None] = print,
               layers: tuple[int, ...] | None = None) -> list[str]:
    """Write the goldens of new or changed prompts (or only of `names`); returns those written.

    A prompt whose tensors all match its golden within tolerance is left alone, file and all,
    unless `force`. The set changes all at once: the new one is built beside `out_dir`
    (unchanged files hard-linked) and swapped in whole, so a run killed at any moment leaves the
    old set or the new one, and the next run tidies up after it (swap.recover_dir). Refused: a
    directory holding files goldens did not write (unless `force`), and a second run at once.
    """
    unknown = [n for n in names or [] if n not in prompts]
    if unknown:
        raise InputError(f"no prompt named {unknown[0]!r} (known: {', '.join(prompts)})")
    out_dir = Path(out_dir)
    out_dir = out_dir.resolve() if out_dir.is_symlink() else out_dir  # replace the directory, not the link
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        with lock_beside(out_dir, "`goldens` run"):
            done = recover_dir(out_dir)
            if done:
                echo(f"{out_dir}: {done}")
            _check_ours(out_dir, force)
            stage = stage_dir(out_dir)
            try:
                written, changed = _write_set(ckpt, out_dir, stage, prompts, names, force, echo, layers)
            except BaseException:
                shutil.rmtree(stage, ignore_errors=True)  # nothing of this run stays
                raise
            if changed:
                swap_in(out_dir)
            else:
                shutil.rmtree(stage)  # every file was up to date: leave out_dir as it is
    except OSError as e:  # a full disk, a read-only directory
        raise InputError(f"{out_dir}: cannot write the goldens ({e.strerror or e})") from None
    stale = sorted(p.stem for p in out_dir.glob("*.npz") if p.stem not in prompts)
    if stale:
        echo(f"not in the prompts file, left as they are: {', '.join(stale)} (delete them by hand if unwanted)")
    return written


def _write_set(ckpt, out_dir: Path, stage: Path, prompts, names, force, echo, layers) -> tuple[list[str], bool]:
    """Write into `stage` (a hard-linked copy of out_dir) what changed; the prompts rewritten,
    and whether any file was. Messages name the files where they will be, in out_dir."""
    changed = _write_if_changed(stage, out_dir, "checkpoint.json", checkpoint_record(ckpt), echo)
    written = []
    for name in names or list(prompts):
        arrays, listing = compute(prompts[name], ckpt, layers)
        path = out_dir / f"{name}.npz"
        if not (stage / path.name).exists():
            write_npz(stage / path.name, arrays)
            echo(f"{name}: new golden, {len(arrays['tokens'])} tokens, {len(arrays)} arrays -> {path}")
            written.append(name)
        else:
            try:
                differ, unreadable = changes(read_npz(stage / path.name), arrays), False
                why = f"{len(differ)} arrays changed beyond tolerance"
            except InputError as e:  # a corrupt or pickled golden is replaced, never read as one
                differ, unreadable = [], True
                why = str(e).split(": ", 1)[-1].split(";")[0] + ", so it was replaced"
            if differ or force or unreadable:
                write_npz(stage / path.name, arrays)
                echo(f"{name}: rewrote {path} ({why})")
                for line in differ[:20]:
                    echo(f"  {line}")
                if len(differ) > 20:
                    echo(f"  ... and {len(differ) - 20} more")
                written.append(name)
            else:
                echo(f"{name}: unchanged")
        changed = _write_if_changed(stage, out_dir, f"{name}.tokens.json", listing, echo) or changed
    return written, changed or bool(written)


def _write_if_changed(stage: Path, out_dir: Path, name: str, text: str, echo) -> bool:
    path = stage / name
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    write_text(path, text)  # renames over the hard link: out_dir's file is untouched
    echo(f"wrote {out_dir / name}")
    return True


# checkpoint.json is the mark of a goldens directory: only goldens writes one with these keys.
RECORD_KEYS = {"params", "weights_sha256", "compute_dtype", "stored_dtype"}


def _check_ours(out_dir: Path, force: bool) -> None:
    """Goldens go only into a new or empty directory or one of goldens': anywhere else they would
    overwrite a person's own checkpoint.json or NAME.tokens.json."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: is a file, not a goldens directory")
    if force or not out_dir.exists() or not any(out_dir.iterdir()):
        return
    try:
        record = read_json(out_dir / "checkpoint.json")
    except InputError:
        record = None
    if not (isinstance(record, dict) and RECORD_KEYS <= record.keys()):
        raise InputError(f"{out_dir}: is not a goldens directory (it has files but no checkpoint.json written by "
                         "`goldens`); choose a new or empty directory, or pass --force to write goldens into it")
