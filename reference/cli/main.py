"""`python -m reference` (or `llama3-reference`): the parser built from the table of commands,
and the one place an error becomes one line on stderr and an exit code.

Every problem with the user's arguments or files is one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys
import warnings

from ..errors import InputError, last_resort, shown
from .commands import BY_NAME, COMMANDS
from .options import Parser

MESSAGE_LIMIT = 2000  # characters of one error line; longer ones are cut, saying how long they were


def build_parser() -> Parser:
    parser = Parser(prog="python -m reference", description="Llama 3, from a prompt to the next token.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.arguments(sub.add_parser(command.name, help=command.help, description=command.description))
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        options = build_parser().parse_args(argv)
        command = BY_NAME[options.command]
        from ..parallel import torchrun

        with warnings.catch_warnings():  # numpy's and torch's warnings are not for the user's terminal
            if os.environ.get("LLAMA3_REFERENCE_TRACEBACK") != "1":
                warnings.simplefilter("ignore")
            if torchrun.launched():  # one of several ranks, started by torchrun: walk, trace or generate
                torchrun.run(options, command.run)
                return 0
            return command.run(options) or 0  # check and compare: 0 it matches, 1 it differs
    except InputError as e:
        # The one way a message reaches the terminal: a path or name from a stranger's file may
        # hold a newline or an escape code; `shown` writes them as escapes, never obeys them.
        print(f"error: {shown(str(e), MESSAGE_LIMIT)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - whatever no check caught is still one line: errors.last_resort
        return last_resort(e)
