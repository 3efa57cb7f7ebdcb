"""The commands that run the model on a prompt: `walk`, `trace` and `generate`.

Each is an `arguments(p)` that declares its flags and a `run(options, ranks)` that does the
work. `ranks` is None in one process; under torchrun it is this process's `Ranks`, and the
pass runs split over them (parallel/torchrun.py), rank 0 printing and writing for all.
"""

from __future__ import annotations

import sys
import time

from ..errors import InputError
from .options import (CHECKPOINT_HELP, DTYPES, add_device_options, add_prompt_options, add_run_options, pick_device,
                      prompt_text)


def _load_model(options, ranks):
    """The device and checkpoint (with its tokenizer) that --device and --checkpoint name."""
    from ..formats import load_checkpoint
    from ..formats.hub import resolve_checkpoint
    if ranks:  # under torchrun: this rank's slice of the weights
        from ..parallel.torchrun import load_rank

        device, ckpt = load_rank(options.checkpoint, ranks)
    else:
        device = pick_device(options.device)
        ckpt = load_checkpoint(resolve_checkpoint(options.checkpoint), progress=sys.stderr.isatty())
    return device, ckpt, ckpt.tokenizer


def _load(options, ranks):
    device, ckpt, tokenizer = _load_model(options, ranks)
    prompt = prompt_text(options)
    tokens = tokenizer.encode(prompt, bos=True, eos=False)
    return ckpt, tokenizer, prompt, tokens, device


def _run_trace(options, ranks, ckpt, tokens, device):
    from tqdm import tqdm

    from ..parallel.torchrun import split_options
    from ..run import run_trace

    split = split_options(ranks, ckpt.args)
    with tqdm(total=ckpt.args.n_layers, desc="layers", unit="layer", leave=False, disable=None,
              file=sys.stderr) as bar:
        return run_trace(tokens, ckpt.weights, ckpt.args, dtype=DTYPES[options.dtype], device=device,
                         path=options.path, on_layer=lambda _: bar.update(), forward=split.get("forward"))


# --- walk ---

def walk_arguments(p) -> None:
    add_run_options(p, checkpoint_default="smollm2-135m")
    p.add_argument("--all-layers", action="store_true", help="print every step of every layer, not only layer 0")


def walk(options, ranks=None) -> None:
    from .walk import print_header, print_walk

    start = time.perf_counter()
    ckpt, tokenizer, prompt, tokens, device = _load(options, ranks)
    how = f"split over {ranks.world} ranks" if ranks else f"{options.path} path"
    print_header(ckpt, prompt, f"computing in {options.dtype} on {device} ({how})")
    trace = _run_trace(options, ranks, ckpt, tokens, device)
    print_walk(trace, tokenizer, all_layers=options.all_layers)
    print(f"({time.perf_counter() - start:.2f} s)")


# --- trace ---

def trace_arguments(p) -> None:
    add_run_options(p, checkpoint_default=None)
    p.add_argument("--out", required=True, help="the .npz file to write")


def trace(options, ranks=None) -> None:
    from ..run import check_trace_path, save_trace

    check_trace_path(options.out)
    ckpt, _, _, tokens, device = _load(options, ranks)
    trace = _run_trace(options, ranks, ckpt, tokens, device)
    out = save_trace(trace, options.out) if not ranks or ranks.rank == 0 else options.out  # rank 0 writes
    print(f"wrote {out}: {len(tokens)} tokens, {ckpt.args.n_layers} layers")


# --- generate ---

def generate_arguments(p) -> None:
    p.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
    add_prompt_options(p, default=None, help="the text to continue (with --chat: the user's message; '-': standard input)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="at most this many new tokens (default: 64)")
    p.add_argument("--temperature", type=float, default=0.6, help="0 = greedy; higher = more random (default: 0.6)")
    p.add_argument("--top-p", type=float, default=0.9,
                   help="sample from the most likely tokens holding this much probability (default: 0.9)")
    p.add_argument("--seed", type=int, default=None, help="random seed, for reproducible sampling")
    p.add_argument("--chat", action="store_true",
                   help="wrap the prompt in the checkpoint's chat template, or Llama 3's chat format (instruct models)")
    p.add_argument("--system", default=None, help="with --chat: a system message before the user's")
    p.add_argument("--json", action="store_true",
                   help='print only one JSON line: {"prompt_tokens": [...], "tokens": [...], "text": "..."}')
    add_device_options(p)


def generate(options, ranks=None) -> None:
    import json

    from ..generate import TextStream, generate
    from ..parallel.torchrun import split_options
    from ..text.chat import chat_prompt

    if options.system is not None and not options.chat:
        raise InputError("--system needs --chat: a system message is part of the chat format")
    text = prompt_text(options)
    device, ckpt, tokenizer = _load_model(options, ranks)
    if options.chat:
        prompt = chat_prompt(tokenizer, text, options.system)
    else:
        prompt = tokenizer.encode(text, bos=True, eos=False)
    new_tokens = generate(prompt, ckpt.weights, ckpt.args, max_new_tokens=options.max_new_tokens,
                          temperature=options.temperature, top_p=options.top_p, seed=options.seed,
                          stop_tokens=tokenizer.stop_tokens, dtype=DTYPES[options.dtype], device=device,
                          **split_options(ranks, ckpt.args))
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
