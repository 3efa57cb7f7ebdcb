"""`python -m reference check TRACE.npz --checkpoint CKPT`: does your trace match this pass, and if
not, where does it first differ and why.

The reference runs the same checkpoint on the same tokens in float64. Your tensors are
compared in pipeline order, each against the tensor its step makes from the inputs before it
(yours, where you gave them and they matched), within the tolerance of the dtype you computed
in (`difference.DTYPE_TOLERANCE`). The first that differs is named, with its error, its worst
element, and the known mistake (causes.py) whose recomputation reproduces it. From Python:

    report = check_trace({"layers.0.q": q, ...}, checkpoint="tiny", prompt="Hello")
    assert_matches_reference(tensors, checkpoint="tiny", prompt="Hello")  # in a pytest test
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import torch

from .causes import CAUSES
from .diagnose import Context, Finding, diagnose
from .difference import LOWER, DTYPE_TOLERANCE, difference, recognise_dtype, representable, where_text
from ..errors import InputError
from .replay import (LOGITS, NEXT_TOKEN, SMALL_DIM, TOKENS, ReplayWeights, layer_of, one_thread, reference_trace,
                     replay, stretch)
from ..trace import step, trace_shapes
from .user_trace import (PERMUTED, as_arrays, check_names, decide_layout, read_names, read_trace_file,
                         reference_tokens, rename, to_float64, to_meta)

LAYOUTS = ("auto", "meta", "hf")


@dataclass(frozen=True)
class Report:
    match: bool  # every tensor given matches at the dtype's level
    first_divergent: str | None  # the first tensor that does not, in pipeline order
    cause: str | None  # its cause (an id of causes.CAUSES), or None when no known mistake fits
    max_error: float | None  # its max error relative to its scale (None: non-finite or another shape)
    where: dict | None  # its worst element: layer, head, position, index
    checked: tuple[str, ...]  # the names compared, in pipeline order
    missing: tuple[str, ...]  # the contract's names the trace did not hold
    layout: str  # "meta" or "hf": the order of q and k within each head
    dtype: str  # the dtype assumed for the tolerances
    evidence: str | None  # one sentence: what reproduces the divergent tensor
    lines: tuple[str, ...]  # the report, for people

    def __str__(self) -> str:
        return "\n".join(self.lines)

    def to_json(self) -> dict:
        error = self.max_error if self.max_error is not None and self.max_error != float("inf") else None
        return {"match": self.match, "first_divergent": self.first_divergent, "cause": self.cause,
                "max_error": error, "where": self.where, "checked": list(self.checked),
                "missing": list(self.missing), "layout": self.layout, "dtype": self.dtype, "evidence": self.evidence}


def load(checkpoint):
    """A `Checkpoint` as is, or what --checkpoint names: 'tiny', 'smollm2-135m', a directory or .gguf."""
    from ..formats import Checkpoint, load_checkpoint
    from ..formats.hub import resolve_checkpoint

    return checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(resolve_checkpoint(str(checkpoint)))


def check_trace(tensors, checkpoint, prompt: str | None = None, *, names=None, layout: str = "auto",
                dtype: str | None = None) -> Report:
    """Check a trace (name -> torch or NumPy tensor, or an .npz path) against `checkpoint`'s pass.

    `names` maps your names to the contract's ({"blocks.{i}.attn.q": "layers.{i}.q"}, or a JSON
    file of that); `layout` 'auto', 'meta' or 'hf'; `dtype` None to recognise it from the values.
    """
    source = str(tensors) if isinstance(tensors, (str, Path)) else "the trace"
    arrays = read_trace_file(tensors) if isinstance(tensors, (str, Path)) else as_arrays(tensors)
    if names is not None:
        arrays = rename(arrays, names if isinstance(names, Mapping) else read_names(names))
    if layout not in LAYOUTS:
        raise InputError(f"layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    if dtype is not None and dtype not in DTYPE_TOLERANCE:
        raise InputError(f"dtype {dtype!r}: expected one of {', '.join(DTYPE_TOLERANCE)}")
    ckpt = load(checkpoint)
    check_names(arrays, ckpt.args, source)
    with one_thread(ckpt.args.dim <= SMALL_DIM):
        return _check(arrays, ckpt, prompt, layout, dtype, source)


def _check(arrays, ckpt, prompt, layout, dtype, source) -> Report:
    tokens, tokens_why = reference_tokens(arrays.get(TOKENS), ckpt.tokenizer, prompt, source)
    shapes = trace_shapes(ckpt.args, len(tokens))
    order, m = list(shapes), ReplayWeights(ckpt.args, ckpt.weights)
    env = dict(reference_trace(ckpt, tokens))
    yours = {name: to_float64(name, arrays[name], shapes[name]) for name in order if name in arrays}
    layout, layout_why = decide_layout(yours, env, m, order, layout)
    yours = {name: to_meta(name, t, layout) for name, t in yours.items()}
    dtype, dtype_why = (dtype, f"{dtype} (as asked)") if dtype else recognise_dtype(arrays)
    without_bos = None
    if len(tokens) > 1 and tokens[:1] == ckpt.tokenizer.encode("", bos=True, eos=False):
        without_bos = lambda: reference_trace(ckpt, tokens[1:])  # noqa: E731 - only run if asked for
    checked, finding, precision, level = _walk(order, yours, env, m, dtype, without_bos)
    missing = tuple(n for n in order if n not in yours)
    head = [f"checked {len(checked)} tensors of {source} against {Path(ckpt.path).name}, on {tokens_why}",
            f"dtype: {dtype_why}; layout: {layout_why}"]
    return _report(finding, precision, checked, missing, layout, dtype, level, head, order, yours)


def _tolerance(level: str, names: list[str], accepted) -> float:
    """The dtype's tolerance, grown by √(layers recomputed) when the trace skips whole layers."""
    layers = {layer_of(n) for n in names if n not in accepted and layer_of(n) >= 0}
    return DTYPE_TOLERANCE[level] * max(1, len(layers)) ** 0.5


def _walk(order, yours, env, m, dtype, without_bos):
    """Compare in pipeline order; returns (checked, the first Finding or None, (name, level) where
    precision-level differences began or None, the level compared at in the end)."""
    accepted: list[str] = []
    checked: list[str] = []
    precision, level = None, dtype
    for name in order:
        if name not in yours:
            continue
        checked.append(name)
        names = stretch(order, set(accepted), name)
        expected = replay(names, env, set(accepted), m)
        y = yours[name]
        diff = difference(y, expected.to(torch.float64)) if y.shape == expected.shape else None
        tol = _tolerance(level, names, accepted)
        if diff is not None and _fits(name, y, diff, env, tol):
            env[name] = y if step(name) != TOKENS else y.long()
            accepted.append(name)
            continue
        ctx = Context(m, dict(env), frozenset(accepted), yours, without_bos)
        finding = replace(diagnose(name, names, ctx, expected.to(torch.float64), diff, tol), tolerance=tol)
        lower = [low for low in LOWER if DTYPE_TOLERANCE[low] > DTYPE_TOLERANCE[level] and diff is not None
                 and diff.error <= _tolerance(low, names, accepted)]
        if finding.cause is None and lower and step(name) not in (TOKENS, NEXT_TOKEN):
            held = [low for low in lower if representable(y.float().numpy(), low)]  # the values say which
            low = (held or lower)[0]
            precision, level = precision or (name, low, diff.error, finding.where), low
            env[name] = y
            accepted.append(name)
            continue
        return checked, finding, precision, level
    return checked, None, precision, level


def _fits(name: str, yours, diff, env, tol: float) -> bool:
    if step(name) == TOKENS:
        return diff.error == 0
    if step(name) == NEXT_TOKEN:  # a near tie of two logits is not a mistake
        row = env[LOGITS][-1]
        return float(row.max() - row[int(yours)]) <= tol * float(row.abs().max())
    return diff.error <= tol


def _report(finding: Finding | None, precision, checked, missing, layout, dtype, level, head, order, yours) -> Report:
    lines = list(head)
    if precision:
        name, low, e, place = precision
        lines.append(f"from {name} on, the differences are those of a lower dtype (max error {e:.1g} of the scale, "
                     f"within {low}'s tolerance {DTYPE_TOLERANCE[low]:g}; {dtype}'s is {DTYPE_TOLERANCE[dtype]:g}) and no known "
                     f"mistake reproduces them: precision, not a mistake; compared at {low}'s level from there on")
    if finding is None:
        if precision:
            lines.append(f"cause precision: no mistake past them, every later tensor matches at {low}'s level; "
                         f"pass --dtype {low} to compare at that level")
            return Report(False, name, "precision", e, place or None, tuple(checked), missing, layout, dtype,
                          f"differences at {low}'s level from {name} on", tuple(lines + _missing(missing, order)))
        lines.append(f"match: all {len(checked)} tensors given match within {dtype}'s tolerance ({DTYPE_TOLERANCE[dtype]:g} "
                     f"of each tensor's scale)")
        return Report(True, None, None, None, None, tuple(checked), missing, layout, dtype, None,
                      tuple(lines + _missing(missing, order)))
    f = finding
    error = "another shape" if f.error == float("inf") and not f.where else (
        "non-finite values" if f.error == float("inf") else f"max error {f.error:.2g} of its scale")
    at = f", at {where_text(f.where)}" if f.where else ""
    if layout == "hf" and step(f.name) in PERMUTED and "index" in (f.where or {}):
        at += " (the index in Meta's order of the head's dimensions)"
    lines.append(f"first difference: {f.name}: {error} (tolerance {f.tolerance:.2g} at {level}){at}")
    before = len(checked) - 1
    lines.append(f"everything before it matched: the {plural(before, 'tensor')} given before it" if before else
                 "it is the first tensor of the trace")
    if f.cause:
        lines += [f"cause {f.cause}: {f.evidence}", f"  what: {CAUSES[f.cause].explanation}",
                  f"  fix: {CAUSES[f.cause].fix}"]
    else:
        lines.append(f"cause unknown: {f.evidence}")
    later = [n for n in order if n in yours and order.index(n) > order.index(f.name)]
    if later:
        lines.append(f"the {plural(len(later), 'tensor')} given after it were not compared: they inherit the "
                     "difference")
    error_value = None if f.error == float("inf") else f.error
    return Report(False, f.name, f.cause, error_value, f.where or None, tuple(checked), missing, layout, dtype,
                  f.evidence, tuple(lines + _missing(missing, order)))


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _missing(missing, order) -> list[str]:
    if not missing:
        return []
    shown = ", ".join(missing[:4]) + (", …" if len(missing) > 4 else "")
    return [f"not in the trace: {len(missing)} of the contract's {len(order)} names ({shown})"]


def assert_matches_reference(tensors, checkpoint, prompt: str | None = None, **options) -> Report:
    """Fail (AssertionError, as pytest shows it) with the report's first lines unless the trace matches."""
    __tracebackhide__ = True
    report = check_trace(tensors, checkpoint, prompt, **options)
    if not report.match:
        raise AssertionError("trace does not match the reference:\n" + "\n".join(report.lines[:6]))
    return report
