"""`python -m reference check TRACE.npz --checkpoint CKPT`: does your trace match this pass, and if
not, where does it first differ and why.

The reference runs the same checkpoint on the same tokens in float64. Your tensors are
compared in pipeline order, each against the tensor its step makes from the inputs before it
(yours, where you gave them and they matched), within the tolerance of the dtype you computed
in (`difference.DTYPE_TOLERANCE`). The first that differs is named, with its error, its worst
element, and the known mistake (causes.py) whose recomputation reproduces it; where the trace
lacks the tensors before it (one taken with module hooks), by replaying that block under each
(diagnose.py), and the report says so. A difference no mistake explains but a lower dtype's
rounding does steps the comparison down through `difference.LEVELS` (float32, then float16 or
bfloat16) and the report says where it settled. From Python:

    report = check_trace({"layers.0.q": q, ...}, checkpoint="tiny", prompt="Hello")
    assert_matches_reference(tensors, checkpoint="tiny", prompt="Hello")  # in a pytest test
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Mapping

import torch

from .diagnose import Context, diagnose
from .difference import DTYPE_TOLERANCE, LEVELS, difference, recognise_dtype, representable
from ..errors import InputError
from .replay import (LOGITS, NEXT_TOKEN, SMALL_DIM, TOKENS, ReplayWeights, layer_of, one_thread, reference_trace,
                     replay, stretch)
from .report import Report, build_report
from ..trace import step, trace_shapes
from .user_trace import (as_arrays, check_names, decide_layout, read_names, read_trace_file, reference_tokens,
                         rename, to_float64, to_meta)

LAYOUTS = ("auto", "meta", "hf")


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
    return build_report(finding, precision, checked, missing, layout, dtype, level, head, order, yours)


def _tolerance(level: str, names: list[str], accepted) -> float:
    """The dtype's tolerance, grown by √(layers recomputed) when the trace skips whole layers."""
    layers = {layer_of(n) for n in names if n not in accepted and layer_of(n) >= 0}
    return DTYPE_TOLERANCE[level] * max(1, len(layers)) ** 0.5


def _walk(order, yours, env, m, dtype, without_bos):
    """Compare in pipeline order; returns (checked, the first Finding or None, the precision
    steps: (name, level, error, where) each time differences at a lower dtype's level began,
    the level compared at in the end)."""
    accepted: list[str] = []
    checked: list[str] = []
    precision, level = [], dtype
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
        finding = diagnose(name, names, ctx, expected.to(torch.float64), diff, tol)
        low, why = _settle(y, diff, level, names, accepted) if step(name) not in (TOKENS, NEXT_TOKEN) else (None, "")
        if finding.cause is None and low is not None:
            precision.append((name, level, low, why, diff.error, finding.where))
            level = low
            env[name] = y
            accepted.append(name)
            continue
        start = order.index(names[0])
        return checked, replace(finding, tolerance=tol, replayed=tuple(n for n in names[:-1] if n not in yours),
                                since=order[start - 1] if start else None), precision, level
    return checked, None, precision, level


def _settle(y, diff, level: str, names, accepted) -> tuple[str | None, str]:
    """(the lower dtype whose rounding explains `diff`, why), stepping through LEVELS in order: the
    first coarser than `level` whose tolerance covers it, unless the values are the numbers of a
    later one that does (a bfloat16 pass's values are all bfloat16 numbers). (None, "") if none does."""
    if diff is None:
        return None, ""
    coarser = [low for low in LEVELS if DTYPE_TOLERANCE[low] > DTYPE_TOLERANCE[level]]
    covering = [low for low in coarser if diff.error <= _tolerance(low, names, accepted)]
    if not covering:
        return None, ""
    # The values say which, where they are all one dtype's numbers: the fewest mantissa bits first
    # (a bfloat16 number is a float16 one too, in float16's range).
    held = next((low for low in ("bfloat16", "float16", "float32")
                 if low in covering and representable(y.numpy(), low)), None)
    if held is not None and held != covering[0]:
        return held, f"{covering[0]}'s tolerance covers them too, but the values are {held} numbers"
    tight = coarser[:coarser.index(covering[0])]
    return covering[0], (f"stepping through {', '.join(coarser)} in that order, the first whose tolerance covers them"
                         + (f" ({' and '.join(tight)}'s too tight)" if tight else ""))


def _fits(name: str, yours, diff, env, tol: float) -> bool:
    if step(name) == TOKENS:
        return diff.error == 0
    if step(name) == NEXT_TOKEN:  # a near tie of two logits is not a mistake
        row = env[LOGITS][-1]
        return float(row.max() - row[int(yours)]) <= tol * float(row.abs().max())
    return diff.error <= tol


def assert_matches_reference(tensors, checkpoint, prompt: str | None = None, **options) -> Report:
    """Fail (AssertionError, as pytest shows it) with the report's first lines unless the trace matches."""
    __tracebackhide__ = True
    report = check_trace(tensors, checkpoint, prompt, **options)
    if not report.match:
        raise AssertionError("trace does not match the reference:\n" + "\n".join(report.lines[:6]))
    return report
