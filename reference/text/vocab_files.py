"""Where a byte-level BPE vocabulary comes from: a GGUF's `tokenizer.ggml.*` metadata, or a
Hugging Face tokenizer.json (with tokenizer_config.json beside it). Both become a
`vocab.BPETokenizer`; what each file calls its pre-tokenizer becomes the regexes it runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..config import PLAUSIBLE
from ..errors import InputError, described, expect, shown
from ..files import read_json, read_text_file
from .tokenizer import PAT_STR as LLAMA3_PAT
from .vocab import CONTROL, GPT2_PAT, NORMAL, PRE_TOKENIZERS, USER_DEFINED, BPETokenizer

MAX_VOCAB = PLAUSIBLE["vocab_size"]  # 4,194,304 ids at most (Llama 3 has 128,256)


def tokenizer_from_gguf(metadata: dict, source: str | Path) -> BPETokenizer:
    """The tokenizer in a GGUF's `tokenizer.ggml.*` keys, as a dict of key -> Python value.

    Only byte-level BPE (`tokenizer.ggml.model` = "gpt2") with a pre-tokenizer in
    PRE_TOKENIZERS; anything else is an InputError naming the key.
    """
    source = str(source)

    def get(key, default=KeyError):
        if key in metadata:
            return metadata[key]
        if default is KeyError:
            raise InputError(f"{source}: no {key} in the GGUF metadata; is this a model with a tokenizer?")
        return default

    model = get("tokenizer.ggml.model")
    if model == "llama":
        raise InputError(f"{source}: tokenizer.ggml.model = 'llama' is a SentencePiece tokenizer; "
                         "only byte-level BPE ('gpt2') is supported")
    if model != "gpt2":
        raise InputError(f"{source}: tokenizer.ggml.model = {model!r} is not supported; "
                         "only byte-level BPE ('gpt2') is")
    pre = get("tokenizer.ggml.pre", None)
    if pre is None:  # llama.cpp then guesses ("default") and warns that quality will suffer
        raise InputError(f"{source}: no tokenizer.ggml.pre, so how to cut text before BPE is unknown; "
                         "convert the model again with a recent llama.cpp")
    if pre not in PRE_TOKENIZERS:
        raise InputError(f"{source}: tokenizer.ggml.pre = {pre!r} is not a known pre-tokenizer; "
                         f"supported: {', '.join(PRE_TOKENIZERS)}")
    tokens = list(expect(get("tokenizer.ggml.tokens"), list, f"{source}: tokenizer.ggml.tokens"))
    for i, token in enumerate(tokens):
        if not isinstance(token, str) or not token:  # an empty token matches nowhere and everywhere
            raise InputError(f"{source}: tokenizer.ggml.tokens[{i}] must be a non-empty string, got {described(token)}")
    types = list(expect(get("tokenizer.ggml.token_type", [NORMAL] * len(tokens)), list,
                        f"{source}: tokenizer.ggml.token_type"))
    if len(types) != len(tokens):
        raise InputError(f"{source}: tokenizer.ggml.token_type has {len(types)} entries for {len(tokens)} tokens")
    ids = {}
    for key in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
        value = get(key, None)
        if value is not None and not 0 <= expect(value, int, f"{source}: {key}") < len(tokens):
            raise InputError(f"{source}: {key} = {value} is outside the {len(tokens)} tokens")
        ids[key] = None if value is None else int(value)
    if ids["tokenizer.ggml.eos_token_id"] is None:
        raise InputError(f"{source}: no tokenizer.ggml.eos_token_id in the GGUF metadata")
    # llama.cpp: the file's flag if it has one, else on for Llama 3's pre-tokenizer, off for others.
    add_bos = expect(get("tokenizer.ggml.add_bos_token", PRE_TOKENIZERS[pre][-1] == LLAMA3_PAT), bool,
                     f"{source}: tokenizer.ggml.add_bos_token")
    if add_bos and ids["tokenizer.ggml.bos_token_id"] is None:
        raise InputError(f"{source}: tokenizer.ggml.add_bos_token is true, "
                         "but tokenizer.ggml.bos_token_id is not set")
    return BPETokenizer(source=source, tokens=tokens, types=types, merges=list(get("tokenizer.ggml.merges")), pre=pre,
               patterns=PRE_TOKENIZERS[pre], bos_id=ids["tokenizer.ggml.bos_token_id"],
               eos_id=ids["tokenizer.ggml.eos_token_id"], add_bos=add_bos,
               chat_template=get("tokenizer.chat_template", None), key="tokenizer.ggml.merges")

def tokenizer_from_json(path: str | Path) -> BPETokenizer:
    """The tokenizer in a Hugging Face tokenizer.json, with tokenizer_config.json beside it.

    Only a byte-level BPE whose pre-tokenizer is a chain of Split(isolated), Digits and
    ByteLevel steps, the shapes Llama 3 and SmolLM2 use.
    """
    path = Path(path)
    data = expect(read_json(path, limit=64 << 20), dict, f"{path}: the file")  # tokenizer.json runs to ~20 MB
    config_path = path.with_name("tokenizer_config.json")
    config = expect(read_json(config_path), dict, f"{config_path}: the file") if config_path.exists() else {}
    model = expect(data.get("model") or {}, dict, f"{path}: model")
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise InputError(f"{path}: model.type is {described(model.get('type'))}; only byte-level BPE is supported")
    for key, allowed in (("byte_fallback", (False, None)), ("continuing_subword_prefix", ("", None)),
                         ("end_of_word_suffix", ("", None)), ("dropout", (None,))):
        if model.get(key) not in allowed or isinstance(model.get(key), (list, dict)):
            raise InputError(f"{path}: model.{key} = {described(model.get(key))} is not supported")
    if data.get("normalizer") is not None:
        raise InputError(f"{path}: normalizer {described(data['normalizer'])} is not supported")
    patterns = _patterns_from_json(data.get("pre_tokenizer"), path)
    tokens, types = _tokens_from_json(model["vocab"], expect(data.get("added_tokens", []), list,
                                                             f"{path}: added_tokens"), path)
    # Newer files write a merge as ["a", "b"], older ones as "a b".
    merges = []
    for i, m in enumerate(expect(model.get("merges", []), list, f"{path}: model.merges")):
        if not (isinstance(m, str) or isinstance(m, list) and len(m) == 2 and all(isinstance(p, str) for p in m)):
            raise InputError(f"{path}: model.merges[{i}] must be \"a b\" or [\"a\", \"b\"], got {described(m)}")
        merges.append(m if isinstance(m, str) else " ".join(m))

    def token_id(name):
        value = config.get(name)
        text = value.get("content") if isinstance(value, dict) else value
        if text is not None:
            expect(text, str, f"{config_path}: {name}" + (".content" if isinstance(value, dict) else ""))
        if text is not None and text not in tokens:
            raise InputError(f"{config_path}: {name} = {shown(repr(text), 60)} is not in the vocabulary of {path.name}")
        return None if text is None else tokens.index(text)

    bos_id, eos_id = token_id("bos_token"), token_id("eos_token")
    if eos_id is None:
        raise InputError(f"{config_path}: no eos_token (is tokenizer_config.json missing?)")
    add_bos = config.get("add_bos_token")
    if add_bos is not None:  # "false", a string, would be true to Python
        expect(add_bos, bool, f"{config_path}: add_bos_token")
    if add_bos is None:  # then the post-processor says: does its template start with BOS?
        add_bos = bos_id is not None and _template_starts_with(data.get("post_processor"), tokens[bos_id])
    template, template_source = _default_template(config.get("chat_template"), config_path), config_path
    if template is None and path.with_name("chat_template.jinja").exists():
        template_source = path.with_name("chat_template.jinja")
        template = read_text_file(template_source, "chat template")
    tokenizer = BPETokenizer(source=str(path), tokens=tokens, types=types, merges=merges, pre="tokenizer.json",
                             patterns=patterns, bos_id=bos_id, eos_id=eos_id, add_bos=bool(add_bos),
                             chat_template=template, key="model.merges")
    tokenizer.template_source = str(template_source)
    return tokenizer


def _default_template(value, config_path: Path) -> str | None:
    """tokenizer_config.json's "chat_template": one template, or (as transformers also accepts) a
    list of named ones, [{"name": "default", "template": "..."}, {"name": "tool_use", ...}], of
    which a plain chat uses "default"."""
    if value is None or isinstance(value, str):
        return value
    where = f"{shown(str(config_path))}: chat_template"
    if not isinstance(value, list):
        raise InputError(f"{where} must be a string or a list of {{\"name\", \"template\"}} objects, "
                         f"got {type(value).__name__}")
    named = {}
    for i, item in enumerate(value):
        if not (isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("template"), str)):
            raise InputError(f"{where}[{i}] must be an object with a string \"name\" and \"template\"")
        named[item["name"]] = item["template"]
    if "default" not in named:
        raise InputError(f"{where} names {', '.join(shown(n, 40) for n in named) or 'no templates'} but no "
                         "\"default\", the one a plain chat uses")
    return named["default"]


def _tokens_from_json(vocab: dict, added: list, path: Path) -> tuple[list[str], list[int]]:
    """Every token by id, from model.vocab and added_tokens: each id an integer in range, each
    token a non-empty string, no id left out."""
    last = -1
    for token, i in vocab.items():
        expect(i, int, f"{path}: model.vocab[{shown(repr(token), 40)}]")
        last = max(last, i)
    for k, entry in enumerate(added):
        expect(entry, dict, f"{path}: added_tokens[{k}]")
        last = max(last, expect(entry.get("id"), int, f"{path}: added_tokens[{k}].id"))
        expect(entry.get("content"), str, f"{path}: added_tokens[{k}].content")
        if "special" in entry:
            expect(entry["special"], bool, f"{path}: added_tokens[{k}].special")
    if not 0 <= last < MAX_VOCAB or min([*vocab.values(), *(e["id"] for e in added)], default=0) < 0:
        raise InputError(f"{path}: token ids run from {min([*vocab.values(), *(e['id'] for e in added)], default=0)} "
                         f"to {last}; a vocabulary has ids 0 … at most {MAX_VOCAB - 1:,}")
    tokens, types = [None] * (last + 1), [NORMAL] * (last + 1)
    for token, i in vocab.items():
        tokens[i] = token
    for entry in added:
        tokens[entry["id"]] = entry["content"]
        types[entry["id"]] = CONTROL if entry.get("special") else USER_DEFINED
    if None in tokens:
        raise InputError(f"{path}: token id {tokens.index(None)} is missing from model.vocab and added_tokens")
    if "" in tokens:  # an empty token matches nowhere and everywhere: BPE could never produce it
        raise InputError(f"{path}: token id {tokens.index('')} is the empty string")
    return tokens, types


def _patterns_from_json(node: dict | None, path: Path) -> tuple[str, ...]:
    """The regexes a tokenizer.json pre-tokenizer applies, in order, for `encode`'s chain.

    Sequence[Digits(individual_digits), ByteLevel] -> (r"\\p{N}", GPT2_PAT);
    Sequence[Split(Llama 3's regex, isolated), ByteLevel(use_regex=false)] -> (LLAMA3_PAT,).
    """
    if node is not None:
        expect(node, dict, f"{path}: pre_tokenizer")
    steps = node.get("pretokenizers", []) if node and node.get("type") == "Sequence" else [node]
    patterns, byte_level = [], False
    for i, step in enumerate(expect(steps, list, f"{path}: pre_tokenizer.pretokenizers")):
        kind = step.get("type") if isinstance(step, dict) else None
        if kind == "Split" and step.get("behavior") == "Isolated" and not step.get("invert"):
            pattern = expect(step.get("pattern"), dict, f"{path}: pre_tokenizer step {i}: pattern")
            key = "Regex" if "Regex" in pattern else "String"
            text = expect(pattern.get(key), str, f"{path}: pre_tokenizer step {i}: pattern.{key}")
            patterns.append(text if key == "Regex" else re.escape(text))
        elif kind == "Digits":
            patterns.append(r"\p{N}" if step.get("individual_digits") else r"\p{N}+")
        elif kind == "ByteLevel" and not step.get("add_prefix_space"):
            byte_level = True
            if step.get("use_regex", True):
                patterns.append(GPT2_PAT)
        else:
            raise InputError(f"{path}: pre_tokenizer step {shown(json.dumps(step), 80)} is not supported; "
                             "only Split (isolated), Digits and ByteLevel (no prefix space)")
    if not byte_level or not patterns:
        raise InputError(f"{path}: pre_tokenizer has no ByteLevel step or no regex; not a byte-level BPE")
    return tuple(patterns)


def _template_starts_with(node: dict | None, token: str) -> bool:
    """Whether a post-processor puts `token` first: Llama 3's TemplateProcessing "<|begin_of_text|> $A"."""
    if not isinstance(node, dict):
        return False
    if node.get("type") == "Sequence":
        processors = node.get("processors")
        return isinstance(processors, list) and any(_template_starts_with(p, token) for p in processors)
    single = node.get("single")
    first = single[0] if isinstance(single, list) and single else None
    special = first.get("SpecialToken") if isinstance(first, dict) else None
    return node.get("type") == "TemplateProcessing" and isinstance(special, dict) and special.get("id") == token
