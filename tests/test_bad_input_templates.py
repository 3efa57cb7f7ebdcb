"""A chat template is untrusted code with a budget (#31, class 2): whatever a template does —
raise, recurse, loop without end, build huge numbers or strings, print control characters —
rendering it ends within the deadline, in bounded memory, as one line naming the file.

The templates are real Jinja programs, rendered exactly as `generate --chat` renders them."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.errors import InputError
from reference.text import template
from reference.text.chat import render_chat
from reference.text.vocab_files import _default_template

SOURCE = "/models/x/tokenizer_config.json"
HI = [{"role": "user", "content": "Hi"}]


def render(text: str) -> str:
    return render_chat(text, HI, bos_token="<s>", eos_token="</s>", source=SOURCE)


def refused(text: str) -> str:
    start = time.monotonic()
    with pytest.raises(InputError) as e:
        render(text)
    assert time.monotonic() - start < template.TIME_S + 2
    message = str(e.value)
    assert message.startswith(f"{SOURCE}: chat template: ") and "\n" not in message and "\x1b" not in message
    return message


def test_a_real_template_renders_as_before():
    text = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    assert render(text) == "<|user|>Hi<|assistant|>"


@pytest.mark.parametrize("text, says", [
    ("{{ raise_exception('roles must alternate') }}", "it refused the conversation: roles must alternate"),
    ("{{ raise_exception('line one\nline two \x1b[2J') }}", "line one\\nline two \\x1b[2J"),
    ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ("{{ messages[5].content }}", "UndefinedError"),
    ("{{ ''.__class__.__mro__ }}", "SecurityError"),
    ("{% for %}", "line 1"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recurses too deeply"),
])
def test_what_a_template_raises_is_one_line_naming_the_file(text, says):
    assert says in refused(text)


@pytest.mark.parametrize("text", [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",  # 10¹⁰ steps
    "{{ (9 ** 9) ** (9 ** 9) }}",  # a number with 370 million digits
])
def test_a_template_that_computes_without_end_is_stopped_at_the_deadline(text, monkeypatch):
    monkeypatch.setattr(template, "TIME_S", 1.0)
    assert "still running after 1 s" in refused(text)


@pytest.mark.parametrize("text", [
    "{{ 'x' * 10 ** 10 }}",  # 10 GB at once
    "{{ ''|center(10 ** 10) }}",
    "{% set ns = namespace(s='x' * 1000000) %}{% for i in range(100000) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
])
def test_a_template_that_grows_without_bound_is_refused_within_its_memory(text):
    message = refused(text)
    assert "MiB of memory" in message or "without an answer" in message or "still running" in message


def test_a_template_that_writes_more_than_the_cap_is_refused():
    assert "characters; at most" in refused("{% for i in range(60000) %}{{ 'x' * 100 }}{% endfor %}")


def test_a_template_that_is_not_text_is_one_line():
    with pytest.raises(InputError, match="must be text, got int"):
        render_chat(42, HI, bos_token="", eos_token="", source=SOURCE)


def test_huggingfaces_list_of_named_templates_uses_default():
    named = [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "chat"}]
    assert _default_template(named, SOURCE) == "chat"


@pytest.mark.parametrize("value, says", [
    ([{"name": "tool_use", "template": "tools"}], 'names tool_use but no "default"'),
    ([{"name": "default"}], 'chat_template[0] must be an object with a string "name" and "template"'),
    ({"default": "x"}, "must be a string or a list"),
])
def test_a_list_of_templates_without_a_usable_default_is_one_line(value, says):
    with pytest.raises(InputError, match=None) as e:
        _default_template(value, SOURCE)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_chat_on_a_vocabulary_without_a_template_says_so(smollm2):
    tokenizer = smollm2.tokenizer
    saved = tokenizer.chat_template
    tokenizer.chat_template = None
    try:
        from reference.text.chat import chat_prompt
        with pytest.raises(InputError, match="has no chat template, so --chat cannot"):
            chat_prompt(tokenizer, "Hi")
    finally:
        tokenizer.chat_template = saved


SNIPPETS = st.sampled_from([
    "{{ messages[0].content }}", "{% for m in messages %}{{ m.role }}{% endfor %}", "{{ 1 / 0 }}", "{{ x.y.z }}",
    "{{ raise_exception('no') }}", "{% if %}", "{{ 'a' * 3 }}", "{{ range(5)|list }}", "{{ messages|tojson }}",
    "{% set a = [1, 2] %}{{ a[7] }}", "{{ '%d'|format('x') }}", "{{ bos_token ~ eos_token }}", "\x1b]0;title\x07",
    "{{ lipsum(2) }}", "{{ cycler(1, 2).next() }}", "{% macro m() %}{{ caller() }}{% endmacro %}{{ m() }}",
])


@settings(max_examples=40, deadline=None)
@given(st.lists(SNIPPETS, min_size=1, max_size=4))
def test_any_template_either_renders_or_is_one_line_naming_the_file(snippets):
    try:
        out = render("".join(snippets))
        assert isinstance(out, str)
    except InputError as e:
        assert str(e).startswith(f"{SOURCE}: chat template") and "\n" not in str(e)
