"""The commands that judge traces: `check` (a learner's trace against this pass) and `compare`
(two traces of the same tokens against each other). Exit 0: it matches; 1: it differs.
"""

from __future__ import annotations

import json

from ..check.checker import LAYOUTS, check_trace
from ..check.compare import compare_files
from ..check.difference import DTYPE_TOLERANCE
from .options import add_prompt_options, prompt_text


# --- check ---

def check_arguments(p) -> None:
    p.add_argument("trace", metavar="TRACE.npz", help="your trace: an .npz of arrays named as in TRACE.md")
    p.add_argument("--checkpoint", required=True, help="the checkpoint it was made with: 'tiny', 'smollm2-135m', a "
                                                       "Meta or Hugging Face directory, or a .gguf file")
    add_prompt_options(p, default=None, required=False,
                       help="the text it was made from ('-': standard input; default: the trace's own tokens)")
    p.add_argument("--names", default=None, metavar="MAP.json",
                   help='a JSON object from your names to the contract\'s, {i} for the layer: '
                        '{"blocks.{i}.attn.q": "layers.{i}.q"}')
    p.add_argument("--layout", choices=LAYOUTS, default="auto",
                   help="the order of q and k within a head: Meta's pairs or Hugging Face's (default: auto, from "
                        "the trace)")
    p.add_argument("--dtype", choices=list(DTYPE_TOLERANCE), default=None,
                   help="the dtype you computed in (default: recognised from the values)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")


def check(options) -> int:
    report = check_trace(options.trace, options.checkpoint, prompt_text(options), names=options.names,
                         layout=options.layout, dtype=options.dtype)
    print(json.dumps(report.to_json()) if options.json else report)
    return 0 if report.match else 1


# --- compare ---

def compare_arguments(p) -> None:
    p.add_argument("a", metavar="A.npz", help="the trace compared against (e.g. float32)")
    p.add_argument("b", metavar="B.npz", help="the other trace (e.g. bfloat16, or another quantization)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="error beyond which they part (default: the tolerance of the lower dtype of the two)")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="also draw the error by layer, per step")


def compare(options) -> int:
    return compare_files(options.a, options.b, options.tolerance, options.plot)
