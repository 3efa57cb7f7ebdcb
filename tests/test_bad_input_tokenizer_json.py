"""tokenizer.json and tokenizer_config.json validated where they enter, by type (#31, class 1):
each field of the wrong type, an id out of range, an empty token or a string where a flag goes
is one line naming the file and the key as the file spells it — never a traceback and never a
silently different tokenizer. The files are real, written by the tests."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference.errors import InputError
from reference.text.vocab import bytes_to_unicode
from reference.text.vocab_files import tokenizer_from_json

BYTES = list(bytes_to_unicode().values())


def valid() -> tuple[dict, dict]:
    """A byte-level BPE of the 256 bytes plus "ab" and an end token, as transformers writes one."""
    vocab = {t: i for i, t in enumerate(BYTES)} | {"ab": 256}
    data = {"model": {"type": "BPE", "vocab": vocab, "merges": [["a", "b"]]},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
            "added_tokens": [{"id": 257, "content": "<|end|>", "special": True}]}
    return data, {"eos_token": "<|end|>", "add_bos_token": False}


def write(tmp_path, data, config):
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return tmp_path / "tokenizer.json"


def test_the_valid_file_reads(tmp_path):
    t = tokenizer_from_json(write(tmp_path, *valid()))
    assert t.encode("ab", bos=False, eos=True) == [256, 257]


@pytest.mark.parametrize("change, file, says", [
    (lambda d, c: d["model"]["vocab"].update({"ab": "256"}), "tokenizer.json", "model.vocab['ab'] must be an integer"),
    (lambda d, c: d["model"]["vocab"].update({"ab": 10 ** 12}), "tokenizer.json", "a vocabulary has ids 0"),
    (lambda d, c: d["model"]["vocab"].update({"ab": -5}), "tokenizer.json", "token ids run from -5"),
    (lambda d, c: d["model"]["vocab"].update({"": 258}), "tokenizer.json", "is the empty string"),
    (lambda d, c: d["model"].update(merges="a b"), "tokenizer.json", "model.merges must be a list"),
    (lambda d, c: d["model"].update(merges=[["a", "b", "c"]]), "tokenizer.json", "model.merges[0] must be"),
    (lambda d, c: d["model"].update(merges=[7]), "tokenizer.json", "model.merges[0] must be"),
    (lambda d, c: d.update(added_tokens={"id": 1}), "tokenizer.json", "added_tokens must be a list"),
    (lambda d, c: d["added_tokens"][0].update(id="257"), "tokenizer.json", "added_tokens[0].id must be an integer"),
    (lambda d, c: d["added_tokens"][0].update(content=None), "tokenizer.json", "added_tokens[0].content must be"),
    (lambda d, c: d["added_tokens"][0].update(special="yes"), "tokenizer.json", "added_tokens[0].special must be"),
    (lambda d, c: d.update(model=[1]), "tokenizer.json", "model must be an object"),
    (lambda d, c: d.update(pre_tokenizer="ByteLevel"), "tokenizer.json", "pre_tokenizer must be an object"),
    (lambda d, c: d.update(pre_tokenizer={"type": "Split", "behavior": "Isolated", "pattern": {"Regex": 5}}),
     "tokenizer.json", "pattern.Regex must be a string"),
    (lambda d, c: c.update(add_bos_token="false"), "tokenizer_config.json", "add_bos_token must be true or false"),
    (lambda d, c: c.update(eos_token=42), "tokenizer_config.json", "eos_token must be a string"),
    (lambda d, c: c.update(eos_token={"content": ["x"]}), "tokenizer_config.json", "eos_token.content must be"),
    (lambda d, c: c.update(chat_template=5), "tokenizer_config.json", "chat_template must be a string or a list"),
])
def test_a_field_of_the_wrong_kind_is_one_line_naming_the_file_and_key(tmp_path, change, file, says):
    data, config = valid()
    change(data, config)
    with pytest.raises(InputError) as e:
        tokenizer_from_json(write(tmp_path, data, config))
    message = str(e.value)
    assert message.startswith(str(tmp_path / file)) and says in message and "\n" not in message, message


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2, 300) | st.text(max_size=4),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=8)
PLACES = ["model.vocab.ab", "model.merges", "model.type", "added_tokens", "pre_tokenizer", "post_processor",
          "config.eos_token", "config.bos_token", "config.add_bos_token", "config.chat_template"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(PLACES), JSON)
def test_any_value_anywhere_reads_or_is_one_line(tmp_path, place, value):
    data, config = valid()
    target, *path = place.split(".")
    node = config if target == "config" else data
    keys = path if target == "config" else [target, *path]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    try:
        tokenizer_from_json(write(tmp_path, data, config)).encode("abc", bos=False, eos=False)
    except InputError as e:
        assert "\n" not in str(e) and str(e).startswith(str(tmp_path))
