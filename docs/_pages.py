"""What the pages share: one run of the reference per build, and how a page shows code and tensors.

Every page's code blocks run in the same mkdocs process (markdown-exec), so these are computed
once per build and shared by all pages:

    run()        the walk-through's prompt through the model the pages show: the built-in trained
                 SmolLM2-135M-Instruct, or the real Llama 3 8B when $LLAMA3_REFERENCE_8B names its
                 original/ directory or a .gguf file
    tiny()       the same prompt through the built-in tiny checkpoint (random weights), for the
                 pages where exactness is the point and for trained-versus-random
    llama3_8b()  the forward pass on torch's "meta" device, with Llama 3 8B's params.json and
                 the prompt as Llama 3's tokenizer cuts it: every shape of the real model, computed
                 by the real code (the batched path), without the weights

The helpers return Markdown or HTML strings; a page prints them. `code` (a titled block of source
included from reference/) is `_code.py`'s. Their words are in the page's language (`tr`, docs/_lang.py):
a Chinese page runs the same code and gets Chinese headers, banner and labels.
"""

from __future__ import annotations

import functools
import html
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from reference import WALKTHROUGH_PROMPT, batched, model
from reference.config import PRESETS, ModelArgs, expected_shapes
from reference.formats import Checkpoint, load_checkpoint
from reference.formats.hub import SMOLLM2, resolve_checkpoint
from reference.text.tokenizer import Tokenizer, load_tokenizer
from reference.run import run_trace
from reference.trace import trace_shapes

from _code import code  # noqa: F401 - the pages import it from here, with the rest
from _lang import tr  # noqa: F401 - and the words of the page's language
from _model_card import weight_types

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2_NAME = "SmolLM2-135M-Instruct"  # the built-in model, one name on every page (the file: SMOLLM2_FILE)
REAL_8B_ENV = "LLAMA3_REFERENCE_8B"  # a Meta-Llama-3-8B original/ directory or .gguf: render the real model
CAPITAL_PROMPT = "The capital of France is"  # the trained small model's sensible question
LONG_TEXT = (  # ~130 tokens of ordinary prose, for the pictures that need distances longer than the prompt
    "This site follows one prompt through a language model, one step per page, from the text to the token the "
    "model predicts next. Every step is a small function, and each page shows three things side by side: the "
    "code, included from the source when the site is built; the tensor that code produces for the prompt, its "
    "shape and its values; and a picture, where one helps. Read the pages in order, since each builds on the "
    "previous one. Most pages end by recomputing their step by hand from the formula and checking that it "
    "equals what the model computed, so a page that disagreed with the code would not build at all."
)

# Tensors print as in the walk-through: 4 decimals, the first and last 3 rows and columns.
torch.set_printoptions(precision=4, threshold=64, edgeitems=3, linewidth=88, sci_mode=False)


@dataclass(frozen=True)
class Model:
    """One model's view of the prompt: its params, its weights and the trace of its forward pass."""

    label: str  # how the pages name it
    args: ModelArgs
    weights: Mapping[str, torch.Tensor]
    trace: dict[str, torch.Tensor]


@dataclass(frozen=True)
class Run(Model):
    """A model whose values the pages show, with its tokenizer and the prompt's tokens."""

    real: bool  # True for the real Llama 3 8B ($LLAMA3_REFERENCE_8B)
    trained: bool  # False for the tiny checkpoint's random weights
    checkpoint: Checkpoint
    tokenizer: object  # reference.text.tokenizer.Tokenizer (Llama 3) or reference.text.vocab.BPETokenizer (a GGUF's own)
    tokens: list[int]

    def text(self, token: int) -> str:
        """One token's text, for display: 2983 -> "42"."""
        return self.tokenizer.token_text(int(token))

    @property
    def texts(self) -> list[str]:
        return [self.text(t) for t in self.tokens]

    def on(self, prompt: str) -> Run:
        """The same model on another prompt; computed once per build (both editions run the same code)."""
        key = (id(self.checkpoint), prompt)
        if key not in _ON:
            _ON[key] = _run(self.label, self.real, self.trained, self.checkpoint, prompt)
        return _ON[key]


_ON: dict[tuple[int, str], Run] = {}  # (checkpoint, prompt) -> its run; the checkpoints are run()'s and tiny()'s, kept


def _run(label: str, real: bool, trained: bool, checkpoint: Checkpoint, prompt: str) -> Run:
    tokens = checkpoint.tokenizer.encode(prompt, bos=True, eos=False)  # BOS only where the tokenizer has one
    trace = run_trace(tokens, checkpoint.weights, checkpoint.args)
    return Run(label, checkpoint.args, checkpoint.weights, trace, real, trained, checkpoint,
               checkpoint.tokenizer, tokens)


@functools.cache
def run() -> Run:
    """The prompt through the real 8B if $LLAMA3_REFERENCE_8B is set, else the built-in trained SmolLM2."""
    real = os.environ.get(REAL_8B_ENV)
    checkpoint = load_checkpoint(resolve_checkpoint(real or SMOLLM2))
    return _run("Llama 3 8B" if real else SMOLLM2_NAME, bool(real), True, checkpoint, WALKTHROUGH_PROMPT)


@functools.cache
def tiny() -> Run:
    """The prompt through the built-in tiny checkpoint: Llama 3's tokenizer, random weights."""
    return _run("tiny (random)", False, False, load_checkpoint(resolve_checkpoint("tiny")), WALKTHROUGH_PROMPT)


@functools.cache
def llama3_tokenizer() -> Tokenizer:
    """Meta's Llama 3 tokenizer (tokenizer.model, from the llama-models package): the walk-through's."""
    return load_tokenizer()


@functools.cache
def llama3_8b() -> Model:
    """Llama 3 8B's forward pass on the meta device: real shapes, no weights, no arithmetic."""
    args = run().args if run().real else PRESETS["llama3-8b"]  # the real model's own (params.json or GGUF metadata)
    weights = {name: torch.empty(shape, dtype=torch.bfloat16, device="meta")
               for name, shape in expected_shapes(args).items()}
    n_tokens = len(llama3_tokenizer().encode(WALKTHROUGH_PROMPT, bos=True, eos=False))  # 17, as Llama 3 cuts it
    tokens = torch.zeros(n_tokens, dtype=torch.int64, device="meta")
    trace: model.Trace = {}
    # The batched path records the same names and shapes (tests/test_batched.py) with 20× fewer
    # operations to dispatch than the per-head loop: 0.1 s instead of 2.8 s in every notebook.
    batched.forward(tokens, weights, args, device="meta", trace=trace)
    expected = trace_shapes(args, n_tokens)
    for name, shape in expected.items():  # the contract of TRACE.md, checked on the real sizes
        assert tuple(trace[name].shape) == shape, f"{name}: meta pass gave {list(trace[name].shape)}, TRACE.md says {list(shape)}"
    return Model("Llama 3 8B", args, weights, trace)


# --- tensors: shapes and values ---


def shape(t) -> str:
    return "[" + ", ".join(str(n) for n in (t.shape if hasattr(t, "shape") else t)) + "]"


def show(name: str, t: torch.Tensor | None = None, *, index=None, what: str | None = None) -> str:
    """A tensor of this build's run: its name, shape, dtype and (abbreviated) values.

    `name` is a trace name (shared/TRACE.md) or a checkpoint key; `index` picks a slice
    (e.g. 0 for head 0), `what` replaces the index in the title.
    """
    r = run()
    if t is None:
        t = r.trace[name] if name in r.trace else r.weights[name]
    label = name
    if index is not None:
        t = t[index]
        label = f"{name}[{what or _index_text(index)}]"
    values = repr(t.detach().float() if t.dtype == torch.bfloat16 else t.detach())
    return (f"`{label}` · {tr('shape')} `{shape(t)}` · {str(t.dtype).removeprefix('torch.')}\n\n"
            f"```text\n{values}\n```\n")


def _index_text(index) -> str:
    parts = index if isinstance(index, tuple) else (index,)
    return ", ".join(":" if p == slice(None) else str(p) for p in parts)


Row = str | Callable[[Model], object]


def shapes(rows: Mapping[str, Row] | list[str]) -> str:
    """A table: each row's shape in this build and in Llama 3 8B (computed, never typed in).

    A row is a trace name or checkpoint key, or a label mapped to a function of a `Model`
    that returns a tensor, evaluated on both models, e.g.
    {"wq, per head": lambda m: m.weights["layers.0.attention.wq.weight"].view(m.args.n_heads, m.args.head_dim, m.args.dim)}
    """
    if not isinstance(rows, Mapping):
        rows = {name: name for name in rows}
    here, real = run(), llama3_8b()
    out = [f"| | {tr('this page ({label})', label=here.label)} | Llama 3 8B |", "| --- | --- | --- |"]
    for label, row in rows.items():
        cells = [_shape_of(m, row) for m in (here, real)]
        out.append(f"| {_name_cell(tr(label, strict=False))} | {_shape_cell(cells[0])} | {_shape_cell(cells[1])} |")
    return "\n".join(out) + "\n"


def products(rows: Mapping[str, Callable[[Model], tuple[torch.Tensor, torch.Tensor]]]) -> str:
    """A table of matrix products, each as `[a, b] @ [b, c] → [a, c]` in this build and in Llama 3 8B.

    A row maps a label to a function of a `Model` returning the two factors, e.g.
    {"q_rot @ k_rotᵀ": lambda m: (q_rot(m), q_rot(m).T)}; the product's shape is computed, not typed.
    """
    here, real = run(), llama3_8b()
    out = [f"| {tr('product')} | {tr('this page ({label})', label=here.label)} | Llama 3 8B |", "| --- | --- | --- |"]
    for label, factors in rows.items():
        cells = []
        for m in (here, real):
            a, b = factors(m)
            cells.append(f"{_shape_cell(shape(a))} @ {_shape_cell(shape(b))} → {_shape_cell(shape(a @ b))}")
        out.append(f"| {_name_cell(tr(label, strict=False))} | {cells[0]} | {cells[1]} |")
    return "\n".join(out) + "\n"


def _name_cell(name: str) -> str:
    """A tensor's name as code that a narrow column breaks after a dot or an underscore, never
    inside a word: `layers.0.attention_weights`, not `layers.0.atte` / `ntion_weights`."""
    shown = html.escape(name, quote=False).replace("|", "&#124;")
    broken = re.sub(r"([._])", r"\1<wbr>", shown)
    return f'<code class="l3-name">{broken}</code>'


def _shape_cell(shape_text: str) -> str:
    """A shape as code kept on one line: `[32, 17, 17]`, not `[32, 17,` / `17]`."""
    return f'<code class="l3-shape">{shape_text}</code>'


def _shape_of(m: Model, row: Row) -> str:
    if callable(row):
        return shape(row(m))
    if row in m.trace:
        return shape(m.trace[row])
    return shape(m.weights[row])


def banner() -> str:
    """One line at the top of every step's page: which model computed its values. Excluded
    from the site's search, so that a search finds the pages' words, not this line 13 times."""
    r = run()
    if r.real:
        what = tr("the real Llama 3 8B from <code>{path}</code> (${env})", path=html.escape(str(r.checkpoint.path)),
                  env=REAL_8B_ENV)
    else:
        kinds = [k for k in weight_types(r.weights) if re.match(r"Q\d_", k)]
        stored = tr(" ({bits}-bit {kind} weights, RoPE θ {theta:,.0f})", bits=kinds[0][1], kind=kinds[0],
                    theta=r.args.rope_theta) if kinds else ""
        what = tr('<strong>{name}</strong>{stored}, a trained Llama-architecture model built in '
                  '(<a href="index.md#which-model-computes-these-values">which model, and why</a>)',
                  name=SMOLLM2_NAME, stored=stored)
    return (f'<p class="l3-source" data-search-exclude>'
            + tr("Values on this page: {what}. Shapes beside them: Llama 3 8B's, computed by the same code.", what=what)
            + "</p>\n")


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table; cells are escaped so token text cannot break it."""
    def cell(v):  # a pipe would end the cell, except inside a `code span`, where a backslash would show
        parts = str(v).replace("\n", "\\n").split("`")
        return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))
    header = [tr(h, strict=_has_words(h)) for h in header]  # in the page's language; values stay as they are
    rows = [[tr(v, strict=False) if isinstance(v, str) else v for v in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _has_words(text: str) -> bool:
    """Whether a header says something in words (outside `code`), which a Chinese page must translate."""
    return bool(re.search(r"[A-Za-z]{3,}", re.sub(r"`[^`]*`", "", text)))
