"""Every command of `python -m reference`, in one table: its name, its help, the flags it takes
and what it runs. `main.py` builds the parser from this table and dispatches through it; adding
a command is adding a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import check_commands, model_commands, tool_commands


@dataclass(frozen=True)
class Command:
    name: str
    help: str  # one line, in `python -m reference --help`
    description: str  # the opening of `python -m reference NAME --help`
    arguments: Callable  # (parser) -> None: declares the command's flags
    run: Callable  # (options) -> exit code or None (0); walk, trace, generate also take `ranks` (torchrun)


COMMANDS = [
    Command("walk", "print every step of the forward pass, ending in the next token",
            "Run the prompt through the model, printing each step's tensor.",
            model_commands.walk_arguments, model_commands.walk),
    Command("trace", "write every intermediate tensor to an .npz file",
            "Write the trace (names and shapes as in TRACE.md) to one .npz file.",
            model_commands.trace_arguments, model_commands.trace),
    Command("generate", "write text after a prompt, token by token, with a KV cache",
            "Generate text after the prompt, streamed as it is written; stops at <|end_of_text|>, <|eom_id|> or "
            "<|eot_id|> (or the model's own end of turn, e.g. <|im_end|>).",
            model_commands.generate_arguments, model_commands.generate),
    Command("synthesize", "write a deterministic random checkpoint in Meta's format",
            "Write params.json, consolidated.00.pth (bf16) and tokenizer.model.",
            tool_commands.synthesize_arguments, tool_commands.synthesize),
    Command("download", "download a Meta checkpoint (original/*) from the Hugging Face Hub",
            "Fetch original/* of a gated Hub repo; needs `huggingface-cli login`.",
            tool_commands.download_arguments, tool_commands.download),
    Command("goldens", "regenerate the golden traces of new or changed prompts",
            "Recompute the goldens of goldens/prompts.json; write only those that are new or changed (or named), "
            "atomically, and print what changed.",
            tool_commands.goldens_arguments, tool_commands.goldens),
    Command("parity", "compare every tensor with Hugging Face transformers; print the table",
            "Run our pass and transformers' LlamaForCausalLM on the same weights and print the worst error per "
            "tensor kind as a Markdown table.",
            tool_commands.parity_arguments, tool_commands.parity),
    Command("serve", "the explorer: a local web page where your prompt goes through every step",
            "Start the explorer on http://HOST:PORT/ (Ctrl-C stops it). It binds 127.0.0.1 unless --host says "
            "otherwise; it has no authentication.",
            tool_commands.serve_arguments, tool_commands.serve),
    Command("check", "check your trace against this pass: the first tensor that differs, and why",
            "Compare an .npz trace (names of TRACE.md) with this pass on the same checkpoint and tokens; name the "
            "first tensor that differs and the mistake that explains it. Exit 0: it matches; 1: something differs; "
            "2: bad input.",
            check_commands.check_arguments, check_commands.check),
    Command("compare", "compare two traces of the same tokens, tensor by tensor and layer by layer",
            "Every tensor's error of B against A, by layer, and where they first part beyond a tolerance. Exit 0: "
            "within it; 1: they part; 2: bad input.",
            check_commands.compare_arguments, check_commands.compare),
]
BY_NAME = {c.name: c for c in COMMANDS}
