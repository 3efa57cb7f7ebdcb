"""How this pass is itself verified: golden traces and their regeneration (`goldens.py`, written
whole by `swap.py`), the per-tensor tolerances they are compared with (`tolerances.py`), and
parity with Hugging Face transformers' `LlamaForCausalLM` (`parity.py`).
"""
