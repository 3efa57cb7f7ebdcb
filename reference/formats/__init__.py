"""Checkpoint formats, as peers behind one `load_checkpoint`: each turns its files into Meta's
names and layout, so everything downstream sees one kind of `Checkpoint`.

    meta.py     params.json + consolidated.*.pth (+ shards.py for the 70B's model-parallel files)
    hf.py       Hugging Face: config.json + model*.safetensors (names and q/k rows converted)
    gguf/       llama.cpp's one file (.gguf), quantized or not, with its own tokenizer

No format imports another. What they share: `checkpoint.py` (the `Checkpoint` and its checks),
`params.py` (hyper-parameters read into `ModelArgs`), `layout.py` (Meta's and Hugging Face's
names and q/k order: pure, also used by the checker and the parity tests). Beside them, where
checkpoints come from: `hub.py` (the Hub and the built-in names) and `synthesize.py` (random
weights written in Meta's format).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..files import user_path
from .checkpoint import Checkpoint
from .gguf import load_gguf_checkpoint
from .gguf.header import is_gguf_file
from .hf import HF_WEIGHTS_GLOB, load_hf_checkpoint
from .meta import load_meta_checkpoint

__all__ = ["Checkpoint", "load_checkpoint"]


def load_checkpoint(path: str | Path, progress: bool = False) -> Checkpoint:
    """Load and check a checkpoint: a directory, Meta's or Hugging Face's, or a GGUF file (named
    .gguf or not, as Ollama's blobs) or a directory holding exactly one .gguf; any problem is one
    line naming file and tensor."""
    path = user_path(path)
    if not path.exists():
        raise InputError(f"{path}: no such checkpoint directory")
    if is_gguf_file(path):
        return load_gguf_checkpoint(path, progress)
    ggufs = sorted(path.glob("*.gguf")) if path.is_dir() else []
    if ggufs and not (path / "params.json").exists() and not (path / "config.json").exists():
        if len(ggufs) > 1:
            raise InputError(f"{path}: holds {len(ggufs)} .gguf files ({', '.join(g.name for g in ggufs[:3])}"
                             f"{', …' if len(ggufs) > 3 else ''}); name the one to load")
        return load_gguf_checkpoint(ggufs[0], progress)
    if not path.is_dir():
        raise InputError(f"{path}: is a file but not a GGUF (those start with b'GGUF'); expected a GGUF file or a "
                         "checkpoint directory (params.json, consolidated.00.pth, tokenizer.model)")
    if not any(path.iterdir()):
        raise InputError(f"{path}: directory is empty; expected params.json, consolidated.00.pth, tokenizer.model")
    if not (path / "params.json").exists() and (path / "config.json").exists():
        if any(path.glob(HF_WEIGHTS_GLOB)):
            return load_hf_checkpoint(path, progress)
        if (path / "original" / "params.json").exists():
            raise InputError(f"{path}: looks like a Hugging Face repo without its safetensors; Meta's checkpoint is in "
                             f"{path / 'original'}")
        raise InputError(f"{path}: has config.json but no {HF_WEIGHTS_GLOB} weights (.bin files are not read: "
                         "they are pickles that can run code); download the safetensors files")
    if not (path / "params.json").exists() and (path / "original" / "params.json").exists():
        raise InputError(f"{path}: looks like a Hugging Face repo; Meta's checkpoint is in {path / 'original'}")
    return load_meta_checkpoint(path, progress)
