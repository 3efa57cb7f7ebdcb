"""`python -m reference` (or `llama3-reference`): walk, trace, synthesize, download.

Every problem with the user's arguments or files is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from .errors import InputError

WALKTHROUGH_PROMPT = "the answer to the ultimate question of life, the universe, and everything is "
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (no usage block) and exit code 2."""

    def error(self, message: str):
        raise InputError(f"{self.prog}: {message} (see --help)")


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available on this machine")
    if name == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device mps: no Apple MPS device is available on this machine")
    return torch.device(name)


def _add_run_options(p: argparse.ArgumentParser, checkpoint_default: str | None) -> None:
    p.add_argument("--checkpoint", default=checkpoint_default, required=checkpoint_default is None,
                   help="'tiny' (built in, synthesized on first use), a Meta checkpoint directory "
                        "(params.json, consolidated.00.pth, tokenizer.model) or a Hub id such as "
                        "meta-llama/Meta-Llama-3-8B" + (f" (default: {checkpoint_default})" if checkpoint_default else ""))
    p.add_argument("--prompt", default=WALKTHROUGH_PROMPT if checkpoint_default else None,
                   required=checkpoint_default is None, help="the text to run (default: the walk-through's prompt)")
    p.add_argument("--device", choices=["cpu", "cuda", "mps"], default="cpu", help="where to compute (default: cpu)")
    p.add_argument("--dtype", choices=list(DTYPES), default="float32",
                   help="compute dtype; weights stay bf16 and are upcast one at a time (default: float32)")
    p.add_argument("--path", choices=["literal", "batched"], default="literal",
                   help="literal: one head at a time, as the walk-through; batched: all heads at once")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m reference", description="Llama 3, from a prompt to the next token.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    walk = sub.add_parser("walk", help="print every step of the forward pass, ending in the next token",
                          description="Run the prompt through the model, printing each step's tensor.")
    _add_run_options(walk, checkpoint_default="tiny")
    walk.add_argument("--all-layers", action="store_true", help="print every step of every layer, not only layer 0")

    trace = sub.add_parser("trace", help="write every intermediate tensor to an .npz file",
                           description="Write the trace (names and shapes as in TRACE.md) to one .npz file.")
    _add_run_options(trace, checkpoint_default=None)
    trace.add_argument("--out", required=True, help="the .npz file to write")

    synth = sub.add_parser("synthesize", help="write a deterministic random checkpoint in Meta's format",
                           description="Write params.json, consolidated.00.pth (bf16) and tokenizer.model.")
    synth.add_argument("--preset", default="tiny", help="a preset name, e.g. tiny, llama3-8b (default: tiny)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.add_argument("--n-layers", type=int, default=None, help="override the preset's layer count")
    synth.add_argument("--out", required=True, help="a new (or empty) directory")

    download = sub.add_parser("download", help="download a Meta checkpoint (original/*) from the Hugging Face Hub",
                              description="Fetch original/* of a gated Hub repo; needs `huggingface-cli login`.")
    download.add_argument("repo_id", help="e.g. meta-llama/Meta-Llama-3-8B")
    download.add_argument("--out", default=None, help="directory to download into (default: the Hub cache)")
    return parser


def _load(options):
    from .checkpoint import load_checkpoint, resolve_checkpoint
    from .tokenizer import load_tokenizer

    device = pick_device(options.device)
    ckpt = load_checkpoint(resolve_checkpoint(options.checkpoint), progress=True)
    tokenizer = load_tokenizer(ckpt.path)
    tokens = tokenizer.encode(options.prompt, bos=True, eos=False)
    return ckpt, tokenizer, tokens, device


def _run_trace(options, ckpt, tokens, device):
    from tqdm import tqdm

    from .trace import run_trace

    with tqdm(total=ckpt.args.n_layers, desc="layers", unit="layer", leave=False, disable=None,
              file=sys.stderr) as bar:
        return run_trace(tokens, ckpt.weights, ckpt.args, dtype=DTYPES[options.dtype], device=device,
                         path=options.path, on_layer=lambda _: bar.update())


def cmd_walk(options) -> None:
    from .walk import print_walk

    start = time.perf_counter()
    ckpt, tokenizer, tokens, device = _load(options)
    a = ckpt.args
    print(f"checkpoint {ckpt.path}: dim {a.dim}, {a.n_layers} layers, {a.n_heads} heads, {a.n_kv_heads} kv heads, "
          f"head_dim {a.head_dim}, ffn {a.hidden_dim}, vocab {a.vocab_size}")
    print(f"computing in {options.dtype} on {device} ({options.path} path)")
    print(f"prompt: {options.prompt!r}")
    print()
    trace = _run_trace(options, ckpt, tokens, device)
    print_walk(trace, tokenizer, all_layers=options.all_layers)
    print(f"({time.perf_counter() - start:.2f} s)")


def cmd_trace(options) -> None:
    from .trace import check_trace_path, save_trace

    check_trace_path(options.out)
    ckpt, _, tokens, device = _load(options)
    out = save_trace(_run_trace(options, ckpt, tokens, device), options.out)
    print(f"wrote {out}: {len(tokens)} tokens, {ckpt.args.n_layers} layers")


def cmd_synthesize(options) -> None:
    from .checkpoint import synthesize

    out = synthesize(options.preset, options.seed, options.out, n_layers=options.n_layers)
    print(f"wrote {out}")


def cmd_download(options) -> None:
    from .checkpoint import download

    print(f"downloaded to {download(options.repo_id, options.out)}")


COMMANDS = {"walk": cmd_walk, "trace": cmd_trace, "synthesize": cmd_synthesize, "download": cmd_download}


def main(argv: list[str] | None = None) -> int:
    try:
        options = build_parser().parse_args(argv)
        COMMANDS[options.command](options)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
