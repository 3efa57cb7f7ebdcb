"""The command line, and every argparse line of the project: the table of commands
(`commands.py`), the option groups they share (`options.py`), the commands that run the model
(`model_commands.py`), those around it (`tool_commands.py`), those that judge traces
(`check_commands.py`), and the walk's printout (`walk.py`). What a command runs lives in the
room it belongs to and takes plain values.
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
