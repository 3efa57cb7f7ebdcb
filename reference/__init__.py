"""llama3-reference: Meta's Llama 3 forward pass, one readable step at a time.

The root holds the pass, readable top to bottom (config, model, batched, upcast, generate,
lens), the trace contract (trace) and running it (run), and two shared helpers (errors,
files). Around it, one room per role: text/, formats/, check/, verify/, parallel/, explorer/
and cli/.
"""

# The walk-through's prompt: the default of `walk`, the first golden, the docs' running example.
WALKTHROUGH_PROMPT = "the answer to the ultimate question of life, the universe, and everything is "

from .config import PRESETS, ModelArgs, preset  # noqa: E402
from .errors import InputError  # noqa: E402
from .formats.params import load_params  # noqa: E402

__all__ = ["ModelArgs", "PRESETS", "preset", "load_params", "InputError", "WALKTHROUGH_PROMPT"]
