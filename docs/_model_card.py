"""What the pages say about a model: its size in one line, and how its file stores the weights.

The overview's table of the two models (docs/index.md) and every page's banner (_pages.banner)
are built from these, so the θ, the sizes and the quantization a reader sees are read from the
checkpoint, never typed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from reference.config import ModelArgs

from _lang import tr

if TYPE_CHECKING:
    from _pages import Run


def model_summary(args: ModelArgs) -> str:
    return tr("dim {dim}, {n_layers} layers, {n_heads} query heads, {n_kv_heads} kv heads, "
              "head_dim {head_dim}, SwiGLU hidden size {hidden_dim}, vocabulary {vocab_size:,}, "
              "RoPE θ (`rope_theta`) {rope_theta:,.0f}", dim=args.dim, n_layers=args.n_layers, n_heads=args.n_heads,
              n_kv_heads=args.n_kv_heads, head_dim=args.head_dim, hidden_dim=args.hidden_dim,
              vocab_size=args.vocab_size, rope_theta=args.rope_theta)


def weight_types(weights: Mapping[str, torch.Tensor]) -> dict[str, list[str]]:
    """How the checkpoint stores each weight, read from the file: a GGUF's tensor types
    ('Q4_1', 'Q8_0', 'F32', …), otherwise the tensors' dtypes ('bfloat16'); type -> names,
    the most common type first."""
    types = getattr(weights, "qtypes", None) or {n: str(t.dtype).removeprefix("torch.") for n, t in weights.items()}
    groups: dict[str, list[str]] = {}
    for name, kind in types.items():
        groups.setdefault(kind, []).append(name)
    return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))


def weight_format(weights: Mapping[str, torch.Tensor]) -> str:
    """One line: 'Q4_1 (4-bit): 210 matrices; F32: the 61 norm weights; Q8_0 (8-bit): tok_embeddings'."""
    parts = []
    for kind, names in weight_types(weights).items():
        bits = re.match(r"Q(\d)_", kind)
        title = tr("{kind} ({bits}-bit)", kind=kind, bits=bits.group(1)) if bits else kind
        if len(names) == 1:
            shown = re.sub(r"([._])", r"\1<wbr>", names[0].removesuffix(".weight"))  # breaks after . or _ only
            what = f'<code class="l3-name">{shown}</code>'
        elif all(n.endswith("norm.weight") for n in names):
            what = tr("the {n} norm weights", n=len(names))
        elif len(parts) == 0 and len(names) == len(weights):
            what = tr("every weight")
        else:
            what = tr("{n} matrices", n=len(names))
        parts.append(f"{title}: {what}")
    return tr("; ").join(parts)


def quantization_note(r: Run) -> str:
    """What the file's quantization does to the weights the pages use: computed from them."""
    kinds = weight_types(r.weights)
    quantized = [k for k in kinds if re.match(r"Q\d_", k)]
    if not quantized:
        return tr("The weights are stored as {kind}; the pass computes in float32, so the values are the "
                  "model's own.", kind=next(iter(kinds)))
    kind = quantized[0]
    name = "layers.0.attention.wq.weight"
    w = r.weights[name].float().reshape(-1, 32)  # [blocks, 32]: a block is 32 neighbouring weights of a row
    levels = int(((w.sort(dim=1).values.diff(dim=1) != 0).sum(dim=1) + 1).max())  # distinct values per block
    step = (w.max(dim=1).values - w.min(dim=1).values) / (2 ** int(kind[1]) - 1)  # [blocks]
    typical = w.abs().median()
    assert levels <= 2 ** int(kind[1]), f"{name}: a block of 32 holds {levels} values, not at most {2 ** int(kind[1])}"
    others = "".join(tr(" `{name}` is {kind}: {levels} levels per block.", name=kinds[k][0].removesuffix(".weight"),
                        kind=k, levels=2 ** int(k[1])) if len(kinds[k]) == 1 else
                     tr(" {n} matrices are {kind}: {levels} levels per block.", n=len(kinds[k]), kind=k,
                        levels=2 ** int(k[1])) for k in quantized[1:])
    return tr("**What {bits}-bit quantization changes.** The file stores each matrix in blocks of 32 neighbouring "
              "weights: {kind} keeps, per block, a scale and a minimum, and for each weight a {bits}-bit index "
              "into the {levels} evenly spaced levels between them. The pass expands them to float32 and "
              "computes in float32, so every weight the pages use is one of its block's {levels} levels "
              "(in layer 0's `wq`, at most {distinct} distinct values per block, levels {step:.4f} "
              "apart for a typical weight of {typical:.4f}): the trained weight rounded by up to half a "
              "step. The values shown, from the embeddings to the logits, are this quantized model's, not those of "
              "the bfloat16 original; [Parity](parity.md) runs `transformers` on the same file, so both sides "
              "share the rounding.", bits=kind[1], kind=kind, levels=2 ** int(kind[1]), distinct=levels,
              step=float(step.median()), typical=float(typical)) + others
