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

if TYPE_CHECKING:
    from _pages import Run


def model_summary(args: ModelArgs) -> str:
    return (f"dim {args.dim}, {args.n_layers} layers, {args.n_heads} query heads, {args.n_kv_heads} kv heads, "
            f"head_dim {args.head_dim}, SwiGLU hidden size {args.hidden_dim}, vocabulary {args.vocab_size:,}, "
            f"RoPE θ (`rope_theta`) {args.rope_theta:,.0f}")


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
        title = f"{kind} ({bits.group(1)}-bit)" if bits else kind
        if len(names) == 1:
            shown = re.sub(r"([._])", r"\1<wbr>", names[0].removesuffix(".weight"))  # breaks after . or _ only
            what = f'<code class="l3-name">{shown}</code>'
        elif all(n.endswith("norm.weight") for n in names):
            what = f"the {len(names)} norm weights"
        elif len(parts) == 0 and len(names) == len(weights):
            what = "every weight"
        else:
            what = f"{len(names)} matrices"
        parts.append(f"{title}: {what}")
    return "; ".join(parts)


def quantization_note(r: Run) -> str:
    """What the file's quantization does to the weights the pages use: computed from them."""
    kinds = weight_types(r.weights)
    quantized = [k for k in kinds if re.match(r"Q\d_", k)]
    if not quantized:
        return (f"The weights are stored as {next(iter(kinds))}; the pass computes in float32, so the values "
                f"are the model's own.")
    kind = quantized[0]
    name = "layers.0.attention.wq.weight"
    w = r.weights[name].float().reshape(-1, 32)  # [blocks, 32]: a block is 32 neighbouring weights of a row
    levels = int(((w.sort(dim=1).values.diff(dim=1) != 0).sum(dim=1) + 1).max())  # distinct values per block
    step = (w.max(dim=1).values - w.min(dim=1).values) / (2 ** int(kind[1]) - 1)  # [blocks]
    typical = w.abs().median()
    assert levels <= 2 ** int(kind[1]), f"{name}: a block of 32 holds {levels} values, not at most {2 ** int(kind[1])}"
    others = "".join(f" {'`' + kinds[k][0].removesuffix('.weight') + '`' if len(kinds[k]) == 1 else str(len(kinds[k])) + ' matrices'} "
                     f"{'is' if len(kinds[k]) == 1 else 'are'} {k}: {2 ** int(k[1])} levels per block." for k in quantized[1:])
    return (f"**What {kind[1]}-bit quantization changes.** The file stores each matrix in blocks of 32 neighbouring "
            f"weights: {kind} keeps, per block, a scale and a minimum, and for each weight a {kind[1]}-bit index "
            f"into the {2 ** int(kind[1])} evenly spaced levels between them. The pass expands them to float32 and "
            f"computes in float32, so every weight the pages use is one of its block's {2 ** int(kind[1])} levels "
            f"(in layer 0's `wq`, at most {levels} distinct values per block, levels {float(step.median()):.4f} "
            f"apart for a typical weight of {float(typical):.4f}): the trained weight rounded by up to half a "
            f"step. The values shown, from the embeddings to the logits, are this quantized model's, not those of "
            f"the bfloat16 original; [Parity](parity.md) runs `transformers` on the same file, so both sides "
            f"share the rounding.{others}")
