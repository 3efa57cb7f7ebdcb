"""Byte-pair encoding from scratch: the merge loop that tiktoken runs for us, written out.

*Training* makes a vocabulary: start from single bytes, count every adjacent pair, make the
most frequent pair one new token, and repeat. On the toy corpus "ab", "bc", "bcd", "cde" the
first merge is b + c (it occurs twice), so

    train(["ab", "bc", "bcd", "cde"], n_merges=2) -> [(b"b", b"c"), (b"a", b"b")]

*Encoding* cuts text with a finished vocabulary: split it into pieces with the regex
`PAT_STR`, then inside each piece repeatedly merge the adjacent pair whose joined bytes have
the lowest rank (were learned earliest). A token's id is its rank. `tests/test_bpe.py` and
the docs check that this gives exactly tiktoken's ids for Meta's 128,000 ranks.
"""

from __future__ import annotations

from collections import Counter

import regex  # tiktoken's own dependency; unlike `re` it knows \p{L} (letters) and \p{N} (numbers)

from .tokenizer import PAT_STR


def pair_counts(words: list[list[bytes]]) -> Counter[tuple[bytes, bytes]]:
    """How often each adjacent pair occurs, in order of first appearance.

    [[b"a", b"b"], [b"b", b"c"]] -> {(b"a", b"b"): 1, (b"b", b"c"): 1}
    """
    counts: Counter[tuple[bytes, bytes]] = Counter()
    for word in words:
        counts.update(zip(word, word[1:]))
    return counts


def merge(word: list[bytes], pair: tuple[bytes, bytes]) -> list[bytes]:
    """Replace every occurrence of `pair` in `word` by one joined token, left to right.

    merge([b"b", b"c", b"d"], (b"b", b"c")) -> [b"bc", b"d"]
    """
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def train(corpus: list[str], n_merges: int) -> list[tuple[bytes, bytes]]:
    """Learn up to `n_merges` merges from `corpus`, most frequent pair first.

    Ties go to the pair seen first; training stops early once every word is a single token.
    """
    words = [[bytes([b]) for b in text.encode("utf-8")] for text in corpus]
    merges = []
    for _ in range(n_merges):
        counts = pair_counts(words)
        if not counts:
            break
        best = max(counts, key=counts.get)  # max() keeps the first of equal counts
        merges.append(best)
        words = [merge(word, best) for word in words]
    return merges


def ranks_from_merges(merges: list[tuple[bytes, bytes]]) -> dict[bytes, int]:
    """A vocabulary as tiktoken stores it: the 256 bytes get ranks 0-255, merge i gets 256 + i."""
    ranks = {bytes([b]): b for b in range(256)}
    for a, b in merges:
        ranks[a + b] = len(ranks)
    return ranks


def encode_piece(piece: bytes, ranks: dict[bytes, int]) -> list[int]:
    """BPE on one piece: merge the adjacent pair with the lowest rank until none is in `ranks`.

    With the toy vocabulary (bc=256, ab=257, bcd=258, cd=259, cde=260): b"abcde" -> a b c d e
    -> a bc d e (bc ranks lowest) -> a bcd e -> no pair left in the vocabulary -> [97, 258, 101].
    """
    parts = [bytes([b]) for b in piece]
    while len(parts) > 1:
        joined = [parts[i] + parts[i + 1] for i in range(len(parts) - 1)]
        best = min(range(len(joined)), key=lambda i: ranks.get(joined[i], float("inf")))  # leftmost on ties
        if joined[best] not in ranks:
            break
        parts[best:best + 2] = [joined[best]]
    return [ranks[p] for p in parts]


def split(text: str) -> list[str]:
    """Cut text into the pieces BPE never merges across: "it's 42!" -> ["it", "'s", " ", "42", "!"]."""
    return regex.findall(PAT_STR, text)


def encode(text: str, ranks: dict[bytes, int]) -> list[int]:
    """Token ids for `text` (no special tokens): every piece's BPE ids, in order."""
    return [i for piece in split(text) for i in encode_piece(piece.encode("utf-8"), ranks)]
