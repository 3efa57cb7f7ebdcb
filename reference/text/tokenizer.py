"""Text <-> token ids: Meta's Llama 3 tokenizer, a byte-level BPE that tiktoken runs for us.

`tokenizer.model` is 128,000 lines of `base64(token bytes) rank`; line 1 is `IQ== 0`, the
byte "!" with rank 0. To encode, the regex `PAT_STR` cuts the text into pieces (words,
numbers, punctuation, spaces); BPE then merges each piece's bytes, lowest-ranked pair first,
and a token's id is its rank. Meta adds 256 special tokens after them (ids 128,000-128,255),
so the model's vocabulary has 128,256 rows.

    >>> tok = load_tokenizer()
    >>> tok.encode("the answer to the ultimate question", bos=True, eos=False)
    [128000, 1820, 4320, 311, 279, 17139, 3488]
    >>> tok.decode([2983])
    '42'
"""

from __future__ import annotations

import base64
import functools
import hashlib
import operator
import os
import re
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path

import tiktoken

from ..errors import InputError
from ..files import check_not_lfs_pointer, read_bounded

LLAMA3_TOKENIZER_SHA256 = "82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55"
HUB_REPO, HUB_FILE = "meta-llama/Meta-Llama-3-8B", "original/tokenizer.model"

# Pieces BPE never merges across, tried left to right:
#   (?i:'s|'t|'re|'ve|'m|'ll|'d)   English contractions, in any case
#   [^\r\n\p{L}\p{N}]?\p{L}+       a word, with at most one space or symbol glued in front
#   \p{N}{1,3}                     numbers, in groups of at most three digits
#    ?[^\s\p{L}\p{N}]+[\r\n]*      a run of punctuation, with one space before, newlines after
#   \s*[\r\n]+                     newlines, with the spaces before them
#   \s+(?!\S)                      spaces, leaving the last one to start the next word
#   \s+                            whatever whitespace is left (at the end of the text)
PAT_STR = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# The 256 special tokens in id order from 128,000, with the names Meta's current code uses.
# Llama 3.0 called 128004, 128005, 128008, 128010, 128011 "reserved"; the ids never changed.
_NAMED_SPECIAL = (
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
    "<|start_header_id|>", "<|end_header_id|>",
    "<|eom_id|>",  # end of message: the model called a tool and waits for its answer
    "<|eot_id|>",  # end of turn: the assistant has finished its reply
    "<|python_tag|>", "<|image|>",
)
SPECIAL_TOKENS = _NAMED_SPECIAL + tuple(
    f"<|reserved_special_token_{i}|>" for i in range(2, 2 + 256 - len(_NAMED_SPECIAL)))

# Meta encodes at most 400,000 characters at a time, and cuts any run of more than 25,000
# whitespace or non-whitespace characters: a million "a"s is one regex match and one BPE
# piece, and tiktoken's regex and BPE slow down badly on such pieces (tiktoken issue #195);
# older tiktoken releases even panicked on long inputs. Recent tiktoken copes, but we cut
# exactly where Meta cuts so that our ids equal Meta's for every input. The cuts can change
# ids only inside such a run, and real text has no 25,000-character words.
MAX_ENCODE_CHARS = 400_000
MAX_RUN_CHARS = 25_000
_RUN = re.compile(r"\s+|\S+")  # for str patterns `\s` is exactly str.isspace(), as in Meta's loop


def split_long_runs(text: str, max_run: int = MAX_RUN_CHARS) -> Iterator[str]:
    """Cut `text` so no piece holds more than `max_run` whitespace or non-whitespace in a row.

    split_long_runs("aaaaa bb", max_run=2) -> "aa", "aa", "a bb"
    """
    start = 0
    for run in _RUN.finditer(text):
        for cut in range(run.start() + max_run, run.end(), max_run):
            yield text[start:cut]
            start = cut
    yield text[start:]


TOKENIZER_LIMIT = 16 << 20  # Meta's tokenizer.model is 2,183,982 bytes


def _read(path: Path) -> bytes:
    data = read_bounded(path, "tokenizer.model", TOKENIZER_LIMIT, missing="expected Meta's tokenizer.model")
    check_not_lfs_pointer(path, data, "run `git lfs pull` in its repository or download tokenizer.model again")
    return data


# A non-empty line that is not `base64-token rank`.
_NOT_A_PAIR = re.compile(rb"^(?![A-Za-z0-9+/]+={0,2}[ \t]+\d+\r?$).+$", re.M)


def _bad_line(path: Path, lineno: int, line: bytes) -> InputError:
    return InputError(f"{path}: line {lineno} is not a `base64-token rank` pair "
                      f"({line[:40]!r}); is this a tiktoken tokenizer.model?")


def read_bpe_ranks(path: Path, sha256: str | None = None) -> dict[bytes, int]:
    """Parse a tiktoken BPE file into {token bytes: rank}, checking its sha256 if one is given.

    The line `IQ== 0` becomes {b"!": 0}. (tiktoken.load.load_tiktoken_bpe does the same, but
    it keeps a copy of every file it reads in a temp cache keyed by path, and would hand back
    that stale copy after the file changed; its errors also quote the whole offending line.)
    """
    data = _read(path)
    actual = hashlib.sha256(data).hexdigest()  # before parsing: a wrong file costs 4 ms, not seconds
    if sha256 is not None and actual != sha256:
        bad = _NOT_A_PAIR.search(data)  # one regex pass, no dict: still say which line is broken
        if bad:
            raise _bad_line(path, data.count(b"\n", 0, bad.start()) + 1, bad.group())
        raise InputError(f"{path}: sha256 is {actual}, expected {sha256}; the file is corrupted "
                         "or is not Meta's Llama 3 tokenizer.model")
    ranks = {}
    for lineno, line in enumerate(data.splitlines(), start=1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError:  # wrong field count, bad base64 (binascii.Error), or rank not an int
            raise _bad_line(path, lineno, line) from None
    if not ranks:
        raise InputError(f"{path}: empty (expected Meta's tokenizer.model)")
    if set(ranks.values()) != set(range(len(ranks))):
        raise InputError(f"{path}: ranks are not 0..{len(ranks) - 1} with each token once")
    return ranks


class Tokenizer:
    """Meta's Llama 3 tokenizer: the BPE ranks in `model_path` plus 256 special tokens.

    `load_tokenizer()` is the usual way in: it finds the file and insists on Llama 3's sha256.
    """

    def __init__(self, model_path: str | Path, sha256: str | None = None):
        self.path = Path(model_path)
        ranks = read_bpe_ranks(self.path, sha256)
        n_base = len(ranks)  # 128,000
        self.special_tokens = {name: n_base + i for i, name in enumerate(SPECIAL_TOKENS)}
        self.n_words = n_base + len(SPECIAL_TOKENS)  # 128,256: the model's vocab_size
        self.model = tiktoken.Encoding(name=self.path.name, pat_str=PAT_STR,
                                       mergeable_ranks=ranks, special_tokens=self.special_tokens)
        self.bos_id = self.special_tokens["<|begin_of_text|>"]  # 128000
        self.eos_id = self.special_tokens["<|end_of_text|>"]  # 128001
        self.start_header_id = self.special_tokens["<|start_header_id|>"]  # 128006
        self.end_header_id = self.special_tokens["<|end_header_id|>"]  # 128007
        self.eom_id = self.special_tokens["<|eom_id|>"]  # 128008
        self.eot_id = self.special_tokens["<|eot_id|>"]  # 128009
        self.stop_tokens = {self.eos_id, self.eom_id, self.eot_id}  # generation ends on any of these
        self.source = str(self.path)
        self.chat_template = None  # Meta's checkpoints use Llama 3's header format (text/chat.py)

    def __repr__(self) -> str:
        return f"Tokenizer({str(self.path)!r}, n_words={self.n_words})"

    def encode(self, text: str, *, bos: bool, eos: bool,
               allowed_special: str | Iterable[str] = frozenset()) -> list[int]:
        """Token ids for `text`, with <|begin_of_text|> before and <|end_of_text|> after if asked.

        Special-token text counts as plain text unless `allowed_special` names it (or is "all"),
        so a prompt cannot smuggle in a turn end: "<|eot_id|>" encodes to seven ordinary
        tokens, [27, 91, 68, 354, 851, 91, 29], and only with allowed_special={"<|eot_id|>"}
        to [128009]. "This is a test sentence." with bos and eos ->
        [128000, 2028, 374, 264, 1296, 11914, 13, 128001].
        """
        if not isinstance(text, str):
            raise InputError(f"encode expects a str, got {type(text).__name__}")
        if allowed_special != "all":
            if isinstance(allowed_special, str):
                raise InputError(f"allowed_special must be 'all' or a set of names, got {allowed_special!r}")
            allowed_special = frozenset(allowed_special)
            unknown = sorted(allowed_special - self.special_tokens.keys())
            if unknown:
                raise InputError(f"allowed_special: {unknown[0]!r} is not a special token")
        ids = [self.bos_id] if bos else []
        for start in range(0, len(text), MAX_ENCODE_CHARS):
            for piece in split_long_runs(text[start:start + MAX_ENCODE_CHARS]):
                # disallowed_special=(): tiktoken's default is to raise on special-token text.
                ids += self.model.encode(piece, allowed_special=allowed_special, disallowed_special=())
        if eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The text for `ids`; bytes that are not valid UTF-8 become U+FFFD. [2983] -> "42"."""
        return self.model.decode(self._checked(ids))

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The raw bytes for `ids`, for streaming: "😀" is [76460, 222] -> b"\\xf0\\x9f\\x98" + b"\\x80"."""
        return self.model.decode_bytes(self._checked(ids))

    def token_text(self, id: int) -> str:
        """One token, for display: 2983 -> "42", 128009 -> "<|eot_id|>", 222 -> "\\x80"."""
        [id] = self._checked([id])
        return self.model.decode_single_token_bytes(id).decode("utf-8", errors="backslashreplace")

    def _checked(self, ids: Iterable[int]) -> list[int]:
        return checked_ids(ids, self.n_words)


def checked_ids(ids: Iterable[int], n_words: int) -> list[int]:
    """`ids` as a list of Python ints, each in [0, n_words), or an InputError naming the culprit."""
    try:
        ids = [operator.index(i) for i in ids]  # accepts numpy and 0-d torch integers, not floats
    except TypeError:
        raise InputError(f"token ids must be a sequence of integers, got {ids!r:.80}") from None
    bad = next((i for i in ids if not 0 <= i < n_words), None)
    if bad is not None:
        raise InputError(f"token id {bad} is out of range: ids run from 0 to {n_words - 1}")
    return ids


def find_tokenizer_model(checkpoint_dir: str | Path | None = None) -> Path:
    """Where `tokenizer.model` is: in `checkpoint_dir`, else in llama_models, else from the Hub."""
    if checkpoint_dir is not None:
        directory = Path(checkpoint_dir)
        if not directory.is_dir():
            raise InputError(f"{directory}: not a directory (expected a Meta checkpoint directory)")
        if os.path.lexists(directory / "tokenizer.model"):  # a broken link is an error, not a skip
            return directory / "tokenizer.model"
    try:  # `pip install llama-models` ships the file, so the tokenizer works offline
        packaged = resources.files("llama_models") / "llama3" / "tokenizer.model"
        if isinstance(packaged, Path) and packaged.is_file():
            return packaged
    except ModuleNotFoundError:
        pass
    return download_tokenizer_model()


def download_tokenizer_model() -> Path:
    """Fetch Meta's tokenizer.model from the (gated) Hugging Face repo, or say what to do instead."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import RepositoryNotFoundError

    or_else = "or `pip install llama-models` (it ships tokenizer.model)"
    try:
        return Path(hf_hub_download(HUB_REPO, HUB_FILE))
    except RepositoryNotFoundError:  # GatedRepoError, and what the Hub says to a missing token
        raise InputError(f"{HUB_REPO}/{HUB_FILE}: not authorised; accept Meta's licence on the Hub and "
                         f"run `hf auth login` (formerly `huggingface-cli login`), {or_else}") from None
    except OSError as e:  # offline, nothing cached, connection refused, other HTTP errors
        raise InputError(f"{HUB_REPO}/{HUB_FILE}: cannot download ({type(e).__name__}); "
                         f"connect to the Hub, pass a checkpoint directory with tokenizer.model, {or_else}") from None


def load_tokenizer(checkpoint_dir: str | Path | None = None) -> Tokenizer:
    """The Llama 3 tokenizer, found by `find_tokenizer_model` and checked against its sha256."""
    path = find_tokenizer_model(checkpoint_dir)
    digest = hashlib.sha256(_read(path)).hexdigest()  # ~4 ms; parsing and tiktoken take ~250 ms
    return _load_checked(path.resolve(), digest)


@functools.lru_cache(maxsize=8)
def _load_checked(path: Path, digest: str) -> Tokenizer:
    # `digest` is only the cache key: the content's hash rather than mtime and size, because a
    # file rewritten within one tick of the filesystem clock keeps its mtime. Repeated loads
    # share one Tokenizer, which is fine: it never changes after __init__.
    return Tokenizer(path, sha256=LLAMA3_TOKENIZER_SHA256)
