"""llama3-reference: Meta's Llama 3 forward pass, one readable step at a time."""

from .config import PRESETS, ModelArgs, load_params, preset
from .errors import InputError

# The walk-through's prompt: the default of `walk`, the first golden, the docs' running example.
WALKTHROUGH_PROMPT = "the answer to the ultimate question of life, the universe, and everything is "

__all__ = ["ModelArgs", "PRESETS", "preset", "load_params", "InputError", "WALKTHROUGH_PROMPT"]
