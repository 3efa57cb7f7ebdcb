"""Text to token ids and back: Meta's tokenizer (tiktoken on tokenizer.model, `tokenizer.py`),
the same BPE from scratch (`bpe.py`), the byte-level BPE of a file's own vocabulary
(`vocab.py`, read from tokenizer.json or a GGUF by `vocab_files.py`), and a conversation
wrapped in a chat template (`chat.py`).
"""
