"""GGUF, llama.cpp's one-file format (Ollama and LM Studio keep models in it), read as Meta's
names and layout, its quantized weights used from their own blocks.

    load.py         the file as a `Checkpoint`: names, hyper-parameters, rope_freqs, weights
    header.py       the header read and checked: typed key/values, the tensor table, bounds
      keys.py       what type each key must hold
    quantized.py    `Quantized`: a tensor's blocks standing in for its float32 values
      blocks.py     blocks of 32 (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) expanded, as llama.cpp does
      k_quants.py   super-blocks of 256 (Q2_K … Q6_K) expanded, as llama.cpp does
      stored_rows.py  the fast path for a product: a slice of rows in the order its bytes lie

Nothing is ever written beside the file: the file is the only copy of the weights.
"""

from .load import FLOATS, GGUF_NAMES, QUANTIZED, ROPE_FREQS, GGUFWeights, load_gguf_checkpoint, meta_name, read_gguf

__all__ = ["FLOATS", "GGUF_NAMES", "QUANTIZED", "ROPE_FREQS", "GGUFWeights", "load_gguf_checkpoint", "meta_name",
           "read_gguf"]
