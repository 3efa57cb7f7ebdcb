"""What `check` says: the `Report` (its fields are --json's) and its lines, for people.

The lines say what was compared and at which dtype's level, the first tensor that differs and
where, and its cause with the evidence for it. They say how sure that is, too: a difference
settled as a lower dtype's rounding says which dtype it settled on and why; a cause found in
steps the trace lacks says it was inferred by replaying them, and which tensors were missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .causes import CAUSES
from .diagnose import Finding
from .difference import DTYPE_TOLERANCE, where_text
from ..trace import step
from .user_trace import PERMUTED


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
    level: str | None = None  # the dtype whose tolerance the comparison settled on: `dtype`, or a lower one
    replayed: tuple[str, ...] = ()  # the names before the divergent one that the trace lacks, recomputed to reach it
    inferred: bool = False  # the cause sits in those missing steps: inferred from a block replay, not seen

    def __str__(self) -> str:
        return "\n".join(self.lines)

    def to_json(self) -> dict:
        error = self.max_error if self.max_error is not None and self.max_error != float("inf") else None
        return {"match": self.match, "first_divergent": self.first_divergent, "cause": self.cause,
                "max_error": error, "where": self.where, "checked": list(self.checked),
                "missing": list(self.missing), "layout": self.layout, "dtype": self.dtype, "level": self.level,
                "evidence": self.evidence, "replayed": list(self.replayed), "inferred": self.inferred}


def build_report(finding: Finding | None, precision: list, checked, missing, layout: str, dtype: str, level: str,
                 head, order, yours) -> Report:
    """The Report of a walk: `finding` the first divergent tensor's (None: none), `precision` the
    steps to a lower dtype's level, (name, from, to, why, error, where) each, `level` the last."""
    lines, common = list(head), dict(checked=tuple(checked), missing=missing, layout=layout, dtype=dtype, level=level)
    for name, before, low, why, e, place in precision:
        lines.append(f"from {name} on, the differences are those of a lower dtype (max error {e:.1g} of the scale, "
                     f"within {low}'s tolerance {DTYPE_TOLERANCE[low]:g}; {before}'s is {DTYPE_TOLERANCE[before]:g}) "
                     f"and no known mistake reproduces them: precision, not a mistake")
        lines.append(f"  settled on {low}: {why}; compared at {low}'s level from there on")
    if finding is None:
        if precision:
            name, _, _, _, e, place = precision[0]
            lines.append(f"cause precision: no mistake past them, every later tensor matches at {level}'s level; "
                         f"pass --dtype {level} to compare at that level")
            return Report(False, name, "precision", e, place or None, evidence=f"differences at {level}'s level from "
                          f"{name} on", lines=tuple(lines + _missing(missing, order)), **common)
        lines.append(f"match: all {len(checked)} tensors given match within {dtype}'s tolerance "
                     f"({DTYPE_TOLERANCE[dtype]:g} of each tensor's scale)")
        return Report(True, None, None, None, None, evidence=None, lines=tuple(lines + _missing(missing, order)),
                      **common)
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
    lines += _inference(f)
    later = [n for n in order if n in yours and order.index(n) > order.index(f.name)]
    if later:
        lines.append(f"the {plural(len(later), 'tensor')} given after it were not compared: they inherit the "
                     "difference")
    return Report(False, f.name, f.cause, None if f.error == float("inf") else f.error, f.where or None,
                  evidence=f.evidence, lines=tuple(lines + _missing(missing, order)), replayed=f.replayed,
                  inferred=f.inferred, **common)


SEARCHED = "under each known mistake, one step at a time and one helper's mistake in both tensors it makes"


def _inference(f: Finding) -> list[str]:
    """How sure the cause is: seen in the tensor itself, inferred from a replay of missing ones, or
    none found where the tensors that would tell are missing."""
    if not f.replayed or (f.cause and not f.inferred):
        return []
    lacks = f"the trace lacks {listing(f.replayed)}"
    start = f"your {f.since}" if f.since else "the prompt's tokens"
    block = f"the pass was replayed from {start} to your {f.name} {SEARCHED}"
    if f.cause:
        also = f"; {', '.join(f.also)} fit{'s' if len(f.also) == 1 else ''} too" if f.also else ""
        return [f"  inferred from a block replay, not seen: {lacks}; {block}, and this one reproduces it{also}"]
    if f.evidence.startswith("no known mistake"):
        return [f"  searched by a block replay: {lacks}; {block}, and none reproduces it: nothing is guessed"]
    return []


def listing(names, most: int = 6) -> str:
    """'a, b, c' or, past `most`, 'a, b, c, … (40 in all)'."""
    names = list(names)
    return ", ".join(names) if len(names) <= most else ", ".join(names[:most - 1]) + f", … ({len(names)} in all)"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _missing(missing, order) -> list[str]:
    if not missing:
        return []
    shown = ", ".join(missing[:4]) + (", …" if len(missing) > 4 else "")
    return [f"not in the trace: {len(missing)} of the contract's {len(order)} names ({shown})"]
