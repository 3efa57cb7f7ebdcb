"""Goldens: every tensor of the trace, recorded once, compared on every test run.

`goldens/prompts.json` names the prompts; for each, `goldens/tiny-seed0/` holds

    NAME.npz           the trace's tensors (reduced as below), float32, compressed
    NAME.tokens.json   the prompt's token ids with their text, one per line, for people to diff

and `checkpoint.json` says which checkpoint they came from. `python -m reference goldens`
regenerates them; `tests/test_goldens.py` compares against them (see goldens/README.md).

**Computed in float64, stored in float32.** A float64 pass differs between machines (BLAS,
CPU, thread count) by ~1e-16 of a value; rounded to float32 it is the same number or its
neighbour. So the goldens are the same on every machine and the tolerance can be 2 float32
ulps, 15× tighter than the subtlest planted bug (norm_eps 1e-5 → 1e-6 moves attention_norm
by 4e-6 of its value). A float32 golden would have to tolerate float32's own summation-order
noise, which is of the same order as that bug.

**Reduced, so the repository stays small.** Every position computes the same code, so a
sample of positions catches what all would: the first 8 (the causal mask hides most keys),
every 8th, and the last 8 (largest RoPE angles, longest softmax rows); a prompt of up to 17
tokens keeps all. Of the logits [T, 128256] (8.7 MB for 17 tokens) only the last row
decides the next token; `norm` is kept whole, and logits = norm · output.weightᵀ is checked
by every 1009th vocabulary column (a prime stride, so no chunk boundary is skipped
systematically) plus the top 16 ids and values of the last row.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Callable, Mapping, NamedTuple

import numpy as np
import torch

from .errors import InputError
from .files import read_json, read_npz, write_npz, write_text
from .trace import LAYER_STEPS, run_trace

GOLDENS_DIR = Path(__file__).resolve().parents[1] / "goldens"
PROMPTS_FILE = GOLDENS_DIR / "prompts.json"
TINY_GOLDENS = GOLDENS_DIR / "tiny-seed0"

COMPUTE_DTYPE = torch.float64
STORED_DTYPE = np.float32
EDGE, STRIDE = 8, 8  # positions kept: the first and last EDGE, and every STRIDE-th
VOCAB_STRIDE = 1009  # logits columns kept
TOP_K = 16  # ids and values of the last row's largest logits


class Tolerance(NamedTuple):
    atol: float
    rtol: float
    why: str


_EXACT_INT = Tolerance(0.0, 0.0, "integers: any difference is a different token, position or id")
_ROUNDED = Tolerance(1e-9, 2.5e-7, "a float64 result rounded to float32: another machine's float64 "
                                   "result rounds to the same float32 or its neighbour (1 ulp = "
                                   "1.2e-7 of the value); 2 ulps, plus 1e-9 for values near 0")

# Comparison tolerance per tensor kind (the last part of the name), |obtained - golden| <=
# atol + rtol·|golden| element-wise; non-finite values (the causal mask's -inf) must be identical.
TOLERANCES: dict[str, Tolerance] = {
    "tokens": _EXACT_INT,
    "positions": _EXACT_INT,
    "embeddings": Tolerance(0.0, 0.0, "rows of the bf16 table, exact in float32: a lookup never rounds"),
    "freqs_cis": _ROUNDED,
    **{step: _ROUNDED for step in LAYER_STEPS},
    "norm": _ROUNDED,
    "logits.column_ids": _EXACT_INT,
    "logits.columns": _ROUNDED,
    "logits.top_ids": _EXACT_INT,
    "logits.top_values": _ROUNDED,
    "next_token": _EXACT_INT,
}


def kind(name: str) -> str:
    """'layers.3.q_rotated' -> 'q_rotated'; 'logits.top_ids' stays whole."""
    return name if name.startswith("logits.") else name.rsplit(".", 1)[-1]


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


def golden_arrays(trace: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The arrays stored for a trace, in pipeline order (see the module docstring)."""
    trace = {name: t.detach().cpu() for name, t in trace.items()}
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


def _stored(t: torch.Tensor) -> np.ndarray:
    return t.to(torch.float64).numpy().astype(STORED_DTYPE)


# --- comparison: the first tensor, in pipeline order, that went wrong ---

def first_divergence(golden: Mapping[str, np.ndarray], obtained: Mapping[str, np.ndarray]) -> str | None:
    """None if `obtained` matches `golden`; else one paragraph about the first tensor that does not.

    Names are compared in the golden's (pipeline) order, so the tensor named is where the
    computation first went wrong; every later one inherits the error and is only counted.
    """
    problems = [(name, _problem(name, golden[name], obtained.get(name))) for name in golden]
    extra = [name for name in obtained if name not in golden]
    bad = [(name, why) for name, why in problems if why]
    if not bad:
        return f"unexpected tensor {extra[0]} (not in the golden)" if extra else None
    name, why = bad[0]
    index = list(golden).index(name)
    later = len(bad) - 1
    return (f"{name}: {why}. The {index} tensors before it match; "
            f"{later} of the {len(golden) - index - 1} after it differ too.")


def _problem(name: str, golden: np.ndarray, obtained: np.ndarray | None, brief: bool = False) -> str | None:
    """What is wrong with `obtained` as `name`, or None; `brief`: no position, no tolerance."""
    if obtained is None:
        return "missing from the obtained trace"
    if obtained.dtype != golden.dtype:  # np.isclose would happily compare float64 with float32
        return f"dtype {obtained.dtype}, golden {golden.dtype}"
    if obtained.shape != golden.shape:
        return f"shape {list(obtained.shape)}, golden {list(golden.shape)}"
    if kind(name) not in TOLERANCES:
        raise KeyError(f"{name}: no tolerance for tensors of kind {kind(name)!r}; add one to goldens.TOLERANCES")
    tol = TOLERANCES[kind(name)]
    if not np.issubdtype(golden.dtype, np.floating):
        wrong = np.argwhere(obtained != golden)
        if not len(wrong):
            return None
        at = tuple(int(i) for i in wrong[0])
        return (f"{len(wrong)} of {golden.size} values differ, first at {list(at)}: "
                f"{obtained[at]} (golden {golden[at]})")
    e, o = golden.astype(np.float64), obtained.astype(np.float64)
    finite = np.isfinite(e) & np.isfinite(o)
    nonfinite_wrong = np.argwhere(~finite & ~((e == o) | (np.isnan(e) & np.isnan(o))))
    if len(nonfinite_wrong):
        at = tuple(int(i) for i in nonfinite_wrong[0])
        return (f"{len(nonfinite_wrong)} non-finite values differ, first at {list(at)}: "
                f"{o[at]:.6g} (golden {e[at]:.6g})")
    err = _abs_err(o, e)
    outside = err > tol.atol + tol.rtol * np.abs(np.where(finite, e, 0.0))
    if not outside.any():
        return None
    at = np.unravel_index(int(err.argmax()), err.shape)
    rel = err / np.where(finite & (e != 0), np.abs(e), np.inf)
    if brief:
        return f"max abs err {err[at]:.1e}, max rel err {rel.max():.1e} ({int(outside.sum())} of {e.size} values)"
    return (f"max abs err {err[at]:.1e} at {[int(i) for i in at]} (obtained {o[at]:.6g}, golden {e[at]:.6g}), "
            f"max rel err {rel.max():.1e}; {int(outside.sum())} of {e.size} values outside "
            f"atol {tol.atol:g} + rtol {tol.rtol:g}·|golden|")


def _abs_err(o: np.ndarray, e: np.ndarray) -> np.ndarray:
    """|o - e| where both are finite, 0 elsewhere (non-finite values are compared for identity)."""
    finite = np.isfinite(e) & np.isfinite(o)
    err = np.zeros(e.shape)
    err[finite] = np.abs(o[finite] - e[finite])
    return err


def changes(golden: Mapping[str, np.ndarray], obtained: Mapping[str, np.ndarray]) -> list[str]:
    """Every tensor that differs beyond tolerance, one line each: what regeneration prints."""
    lines = [f"{name}: removed" for name in golden if name not in obtained]
    for name in obtained:
        why = "new" if name not in golden else _problem(name, golden[name], obtained[name], brief=True)
        if why:
            lines.append(f"{name}: {why}")
    return lines


# --- files: human-readable beside the arrays (written by files.write_npz, atomically) ---

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

def compute(text: str, ckpt) -> tuple[dict[str, np.ndarray], str]:
    """The golden arrays and token listing of one prompt: the literal path, in float64."""
    ids = ckpt.tokenizer.encode(text, bos=True, eos=False)
    trace = run_trace(ids, ckpt.weights, ckpt.args, dtype=COMPUTE_DTYPE, path="literal")
    return golden_arrays(trace), token_listing(text, ids, ckpt.tokenizer)


def regenerate(ckpt, out_dir: str | Path, prompts: Mapping[str, str], names: list[str] | None = None,
               force: bool = False, echo: Callable[[str], None] = print) -> list[str]:
    """Write the goldens of new or changed prompts (or only of `names`); returns those written.

    A prompt whose tensors all match its golden within tolerance is left alone, file and all,
    unless `force`. Each file is replaced atomically, one at a time.
    """
    unknown = [n for n in names or [] if n not in prompts]
    if unknown:
        raise InputError(f"no prompt named {unknown[0]!r} (known: {', '.join(prompts)})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_if_changed(out_dir / "checkpoint.json", checkpoint_record(ckpt), echo)
    written = []
    for name in names or list(prompts):
        arrays, listing = compute(prompts[name], ckpt)
        path = out_dir / f"{name}.npz"
        if not path.exists():
            write_npz(path, arrays)
            echo(f"{name}: new golden, {len(arrays['tokens'])} tokens, {len(arrays)} arrays -> {path}")
            written.append(name)
        else:
            changed = changes(read_npz(path), arrays)
            if changed or force:
                write_npz(path, arrays)
                echo(f"{name}: rewrote {path} ({len(changed)} arrays changed beyond tolerance)")
                for line in changed[:20]:
                    echo(f"  {line}")
                if len(changed) > 20:
                    echo(f"  ... and {len(changed) - 20} more")
                written.append(name)
            else:
                echo(f"{name}: unchanged")
        _write_if_changed(out_dir / f"{name}.tokens.json", listing, echo)
    stale = sorted(p.stem for p in out_dir.glob("*.npz") if p.stem not in prompts)
    if stale:
        echo(f"not in the prompts file, left as they are: {', '.join(stale)} (delete them by hand if unwanted)")
    return written


def _write_if_changed(path: Path, text: str, echo) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_text(path, text)
        echo(f"wrote {path}")
