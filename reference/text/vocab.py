"""Text <-> token ids for any byte-level BPE that a model file carries: a GGUF or a tokenizer.json.

`tokenizer.py` reads Meta's tokenizer.model, where every line already is token bytes and a rank.
A GGUF (llama.cpp's format) and Hugging Face's tokenizer.json store the same kind of BPE another way:

- tokens spelt in GPT-2's byte alphabet, one printable character per byte: "Ġthe" is b" the";
- merges in the order they were learned, as "a b" strings: "Ġ t", ..., "Ġt he" makes "Ġthe";
- the pre-tokenizer, the regexes that cut text before BPE, by *name* in a GGUF
  (`tokenizer.ggml.pre`: "llama-bpe" is Llama 3's regex, "smollm" isolates every digit first).

tiktoken runs BPE by rank, lowest first, and a merge learned earlier must win, so a token's rank
is the position of the merge that makes it (after the 256 single bytes), and a table turns ranks
back into the file's ids. On SmolLM2-135M-Instruct's GGUF:

    >>> tok = vocab_files.tokenizer_from_gguf(metadata, "SmolLM2-135M-Instruct.Q4_1.gguf")
    >>> tok.encode("Hello world", bos=True, eos=False)   # no BOS: add_bos_token is false
    [19556, 905]
    >>> tok.encode("  42", bos=False, eos=False)         # "  " then each digit: [ĠĠ, 4, 2]
    [256, 36, 34]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import regex  # \p{N} and friends, as in bpe.py
import tiktoken

from ..errors import InputError, shown
from .tokenizer import PAT_STR as LLAMA3_PAT, checked_ids

# GPT-2's pattern, which Hugging Face's ByteLevel pre-tokenizer applies (llama.cpp's copy drops
# the last `|\s+` but its hand-written matcher for it has that branch, so the two agree).
GPT2_PAT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

# `tokenizer.ggml.pre` -> the regexes llama.cpp applies, in order (src/llama-vocab.cpp). Every
# pattern but the last only *isolates* its matches: it cuts the text into matches and the text
# between them, and the next pattern runs on each piece separately. That is not one alternation:
# for "  1", smollm gives "  " and "1", while r"\p{N}|" + GPT2_PAT gives " " and " 1".
PRE_TOKENIZERS: dict[str, tuple[str, ...]] = {
    "llama-bpe": (LLAMA3_PAT,),  # Llama 3 and 3.x; "llama3", "llama-v3" are older names for it
    "llama3": (LLAMA3_PAT,),
    "llama-v3": (LLAMA3_PAT,),
    "smollm": (r"\p{N}", GPT2_PAT),  # SmolLM, SmolLM2: Digits(individual_digits) then ByteLevel
    "gpt-2": (GPT2_PAT,),
}

# Special tokens after which a model has finished its turn; `stop_tokens` is EOS plus these.
END_OF_TURN = ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|im_end|>", "<|endoftext|>",
               "<end_of_turn>", "<|end|>")

# llama.cpp's token types (`tokenizer.ggml.token_type`).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte alphabet: printable bytes stand for themselves, the rest move up to U+0100...

    32 (space) -> "Ġ" (U+0120), 10 (newline) -> "Ċ", 65 -> "A".
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    moved = [b for b in range(256) if b not in printable]
    spelling = {**{b: chr(b) for b in printable}, **{b: chr(256 + i) for i, b in enumerate(moved)}}
    return dict(sorted(spelling.items()))


BYTE_OF = {char: byte for byte, char in bytes_to_unicode().items()}


# A pre-tokenizer regex comes from the model's file: one that backtracks catastrophically on
# some text would hang `encode`, so each match runs against this deadline (the regex package's).
REGEX_TIMEOUT_S = 10.0


def split_isolated(pieces: Iterable[str], pattern: str) -> list[str]:
    """Cut every piece around each match of `pattern`, keeping the matches and what lies between.

    split_isolated(["a 12"], r"\\p{N}") -> ["a ", "1", "2"]
    """
    out = []
    for piece in pieces:
        start = 0
        for match in regex.finditer(pattern, piece, timeout=REGEX_TIMEOUT_S):
            out += [piece[start:match.start()], match.group()]
            start = match.end()
        out.append(piece[start:])
    return [p for p in out if p]


class BPETokenizer:
    """A byte-level BPE read from a file's vocabulary, with the interface of tokenizer.Tokenizer.

    `vocab_files.py` builds one from a GGUF (`tokenizer_from_gguf`) or a tokenizer.json (`tokenizer_from_json`).
    """

    def __init__(self, *, source: str, tokens: Sequence[str], types: Sequence[int], merges: Sequence[str],
                 pre: str, patterns: tuple[str, ...], bos_id: int | None, eos_id: int, add_bos: bool,
                 chat_template: str | None = None, key: str = "merges"):
        self.source, self.pre, self.add_bos, self.chat_template = source, pre, add_bos, chat_template
        self.n_words = len(tokens)
        self.bos_id, self.eos_id = bos_id, eos_id
        ids = {token: i for i, token in enumerate(tokens)}
        if len(ids) != len(tokens):  # llama.cpp refuses such a file too
            first = next(t for i, t in enumerate(tokens) if ids[t] != i)
            raise InputError(f"{shown(source)}: token {shown(repr(first), 60)} appears twice, as ids "
                             f"{tokens.index(first)} and {ids[first]}")

        # Control tokens (and "unknown" ones such as <unk>) are matched in the text only when the
        # caller allows them; user-defined ones (like <think>) always, as llama.cpp and
        # transformers do: they are ordinary vocabulary that happens to be written as text.
        self.special_tokens = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty in (CONTROL, UNKNOWN)}
        self.user_defined = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty == USER_DEFINED}
        self._id_bytes = [t.encode() if ty in (CONTROL, UNKNOWN, USER_DEFINED) else _token_bytes(t)
                          for t, ty in zip(tokens, types)]

        # Ranks: single bytes 0-255, then 256 + i for the token merge i makes. A token made again
        # by a later merge keeps its first rank; a normal token no merge makes gets none, as BPE
        # could never produce it. Bytes the vocabulary lacks get a rank but no id (-1), so they
        # can be dropped, as Hugging Face's BPE drops them when there is no unk token.
        ranks = {bytes([b]): b for b in range(256)}
        self._rank_to_id = [ids.get(char, -1) for char in bytes_to_unicode().values()]  # in byte order
        for i, merge in enumerate(merges):
            parts = merge.split(" ")
            if len(parts) != 2 or not all(p in ids for p in parts) or parts[0] + parts[1] not in ids:
                raise InputError(f"{source}: {key}[{i}] = {merge!r} is not two tokens joining into a third")
            made = _token_bytes(parts[0] + parts[1])
            if made not in ranks:
                ranks[made] = len(self._rank_to_id)
                self._rank_to_id.append(ids[parts[0] + parts[1]])
        self._missing = bytes(b for b in range(256) if self._rank_to_id[b] < 0)
        self._ranks = ranks
        self.patterns = patterns
        for i, pattern in enumerate(patterns):  # each compiles, in Python's regex and in tiktoken's Rust one
            try:
                regex.compile(pattern)
            except (regex.error, TypeError) as e:
                raise InputError(f"{shown(source)}: pre-tokenizer regex {i} does not compile ({shown(e, 100)}): "
                                 f"{shown(pattern, 80)}") from None
        try:
            self.model = tiktoken.Encoding(name=Path(source).name, pat_str=patterns[-1], mergeable_ranks=ranks,
                                           special_tokens={})
        except ValueError as e:
            raise InputError(f"{shown(source)}: tiktoken cannot compile the pre-tokenizer regex ({shown(e, 100)}): "
                             f"{shown(patterns[-1], 80)}") from None

        eot = [self.special_tokens[t] for t in END_OF_TURN if t in self.special_tokens]
        self.stop_tokens = {eos_id, *eot}

    def __repr__(self) -> str:
        return f"BPETokenizer({self.source!r}, pre={self.pre!r}, n_words={self.n_words})"

    def encode(self, text: str, *, bos: bool, eos: bool,
               allowed_special: str | Iterable[str] = frozenset()) -> list[int]:
        """Token ids for `text`; BOS first if asked *and* the file adds one, EOS last if asked.

        Special-token text is plain text unless `allowed_special` names it (or is "all"), as in
        tokenizer.Tokenizer.encode: for SmolLM2 "<|im_end|>" is seven tokens, [44, 108, 306, 79,
        486, 108, 46], and with allowed_special={"<|im_end|>"} it is [2].
        """
        if not isinstance(text, str):
            raise InputError(f"encode expects a str, got {type(text).__name__}")
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        elif isinstance(allowed_special, str):
            raise InputError(f"allowed_special must be 'all' or a set of names, got {allowed_special!r}")
        else:
            allowed = set(allowed_special)
            unknown = sorted(allowed - self.special_tokens.keys())
            if unknown:
                raise InputError(f"allowed_special: {unknown[0]!r} is not a special token")
        ids = [self.bos_id] if bos and self.add_bos else []
        matchable = {**self.user_defined, **{t: self.special_tokens[t] for t in allowed}}
        for piece, special in _split_special(text, matchable):
            ids += [special] if special is not None else self._guarded(self._encode_ordinary, piece)
        if eos:
            ids.append(self.eos_id)
        return ids

    def _guarded(self, encode, text: str) -> list[int]:
        """`encode(text)`, with what the file's regexes or tiktoken's Rust core can do to a
        stranger's text turned into one line: a regex past its deadline, a panic (pyo3's
        PanicException is a BaseException, which `except Exception` would let through)."""
        try:
            return encode(text)
        except TimeoutError:
            raise InputError(f"{shown(self.source)}: a pre-tokenizer regex ran past {REGEX_TIMEOUT_S:g} s on this "
                             "text (catastrophic backtracking); the tokenizer cannot split it") from None
        except BaseException as e:
            if type(e).__name__ != "PanicException":
                raise
            raise InputError(f"{shown(self.source)}: the tokenizer failed on this text "
                             f"({shown(str(e).splitlines()[0] if str(e) else 'a panic', 120)})") from None

    def _encode_ordinary(self, text: str) -> list[int]:
        """Ids for text holding no special token: every pre-tokenizer pattern, then BPE."""
        pieces = [text]
        for pattern in self.patterns[:-1]:
            pieces = split_isolated(pieces, pattern)
        ranks = []
        for piece in pieces:
            lossy = self._lacks_bytes(piece)
            ranks += self._bpe_dropping_missing(piece) if lossy else self.model.encode_ordinary(piece)
        return [self._rank_to_id[r] for r in ranks]

    def _lacks_bytes(self, text: str) -> bool:
        data = text.encode("utf-8", "replace")
        return len(data.translate(None, self._missing)) != len(data)

    def _bpe_dropping_missing(self, text: str) -> list[int]:
        # A byte the vocabulary lacks (SmolLM2 lacks 21: six control characters such as \x04,
        # 0xF1 and 0xF2 that start U+40000-U+BFFFF, and bytes UTF-8 never uses) is dropped
        # *before* merging, as Hugging Face's BPE does, so the bytes either side of it may merge:
        # "!\x04!" is the one token "!!" (llama.cpp drops it after: "!", "!"). The bytes kept
        # are merged by tiktoken's own BPE over bytes, in linear time: bpe.encode_piece, the
        # from-scratch version, is quadratic in a piece's length, and a piece is as long as the
        # user's run of one character (60 KB of U+40000 took minutes).
        ranks = []
        for piece in regex.findall(self.patterns[-1], text, timeout=REGEX_TIMEOUT_S):
            if not self._lacks_bytes(piece):
                ranks += self.model.encode_ordinary(piece)  # a match alone is matched whole again
                continue
            kept = bytes(b for b in piece.encode("utf-8") if b not in self._missing)
            ranks += self.model._encode_single_piece(kept) if kept else []
        return ranks

    def decode(self, ids: Iterable[int]) -> str:
        """The text for `ids`; bytes that are not valid UTF-8 become U+FFFD. [19556, 905] -> "Hello world"."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The raw bytes for `ids`, for streaming; special tokens come out as their text."""
        return b"".join(self._id_bytes[i] for i in self._checked(ids))

    def token_text(self, id: int) -> str:
        """One token, for display: 905 -> " world", 2 -> "<|im_end|>"."""
        [id] = self._checked([id])
        return self._id_bytes[id].decode("utf-8", errors="backslashreplace")

    def _checked(self, ids: Iterable[int]) -> list[int]:
        return checked_ids(ids, self.n_words)


def _token_bytes(token: str) -> bytes:
    """A token's bytes from its byte-alphabet spelling: "Ġthe" -> b" the".

    A token written outside the alphabet is taken as its own UTF-8 text, as transformers does.
    """
    if _OUTSIDE_ALPHABET.search(token):
        return token.encode("utf-8")
    return token.translate(_TO_LATIN1).encode("latin-1")  # each character -> the byte it spells


_TO_LATIN1 = {ord(char): byte for char, byte in BYTE_OF.items()}
_OUTSIDE_ALPHABET = re.compile("[^" + re.escape("".join(BYTE_OF)) + "]")


def _split_special(text: str, specials: dict[str, int]):
    """(text, None) and (name, id) pieces: `text` cut at each special token, leftmost then longest.

    _split_special("a<|im_end|>b", {"<|im_end|>": 2}) -> ("a", None), ("<|im_end|>", 2), ("b", None)
    """
    if not specials:
        yield text, None
        return
    found = re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)))
    start = 0
    for match in found.finditer(text):
        if match.start() > start:
            yield text[start:match.start()], None
        yield match.group(), specials[match.group()]
        start = match.end()
    if start < len(text):
        yield text[start:], None
