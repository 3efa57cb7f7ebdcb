"""llama3-reference: Meta's Llama 3 forward pass, one readable step at a time."""

from .config import PRESETS, ModelArgs, load_params, preset
from .errors import InputError

__all__ = ["ModelArgs", "PRESETS", "preset", "load_params", "InputError"]
