"""Chat formats: how a conversation becomes the tokens an instruct model continues.

Meta's checkpoints use Llama 3's header format (`llama3_chat_tokens`). A GGUF or a Hugging Face
directory carries its own *chat template*: a Jinja program that writes the conversation as text.

A GGUF keeps it under `tokenizer.chat_template`, tokenizer_config.json under "chat_template".
SmolLM2's writes each message as "<|im_start|>{role}\\n{content}<|im_end|>\\n", puts its own
system prompt first when the conversation has none, and ends with the assistant's opening:

    >>> render_chat(template, [{"role": "user", "content": "Hi"}], bos_token="<|im_start|>",
    ...             eos_token="<|im_end|>")
    '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n'

The template writes every special token (BOS too, where the model wants one), so the ids are that
text encoded with special tokens allowed and no BOS added: what `chat_ids` does, and what
transformers' `apply_chat_template` does.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import InputError


class _Generation(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` renders its body as is.

    transformers uses the tag to find which tokens the assistant wrote; some templates have it.
    """

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def _raise_exception(message):
    # A template calls this for a conversation it cannot write, such as roles out of order.
    raise InputError(f"chat template: {message}")


@functools.lru_cache(maxsize=16)
def compile_template(template: str) -> jinja2.Template:
    """The template compiled as transformers compiles it: sandboxed, trim_blocks, lstrip_blocks.

    Templates come with downloaded models, so they run in Jinja's sandbox, which refuses
    attribute tricks such as `"".__class__`. The extra names are those transformers provides:
    `raise_exception`, `strftime_now` and a `tojson` that does not escape HTML.
    """
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols, _Generation])
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: \
        json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda format: datetime.now().strftime(format)
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as e:
        raise InputError(f"chat template: line {e.lineno}: {e.message}") from None


def render_chat(template: str, messages: list[dict], *, bos_token: str, eos_token: str,
                add_generation_prompt: bool = True, **variables) -> str:
    """The conversation `messages` ([{"role": ..., "content": ...}, ...]) as the template writes it.

    `variables` reach the template as well (`tools`, `date_string`, ...). Keys whose value is
    None are dropped from each message first, as transformers does, since templates test
    `"key" in message` rather than for None.
    """
    if not isinstance(messages, list) or not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                                 for m in messages):
        raise InputError(f"messages must be a list of dicts with a 'role', got {messages!r:.80}")
    messages = [{k: v for k, v in m.items() if v is not None} for m in messages]
    try:
        return compile_template(template).render(messages=messages, bos_token=bos_token, eos_token=eos_token,
                                                 add_generation_prompt=add_generation_prompt, **variables)
    except jinja2.TemplateError as e:  # undefined names, sandbox refusals
        raise InputError(f"chat template: {e}") from None


def chat_prompt(tokenizer, prompt: str, system: str | None = None) -> list[int]:
    """One user turn (after an optional system message), ready for the assistant's reply: in the
    checkpoint's own chat template if it has one, else in Llama 3's header format."""
    if tokenizer.chat_template is None:
        return llama3_chat_tokens(tokenizer, prompt, system)
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": prompt}]
    return chat_ids(tokenizer, messages)


def llama3_chat_tokens(tokenizer, prompt: str, system: str | None = None) -> list[int]:
    """The Llama 3 chat format for one user turn, ending with the assistant's header to continue.

    <|begin_of_text|>[<|start_header_id|>system<|end_header_id|>\\n\\n{system}<|eot_id|>]
    <|start_header_id|>user<|end_header_id|>\\n\\n{prompt}<|eot_id|>
    <|start_header_id|>assistant<|end_header_id|>\\n\\n
    Each piece is encoded on its own, as Meta's ChatFormat does, so BPE never merges across them.
    """

    def header(role: str) -> list[int]:
        return ([tokenizer.start_header_id] + tokenizer.encode(role, bos=False, eos=False)
                + [tokenizer.end_header_id] + tokenizer.encode("\n\n", bos=False, eos=False))

    def message(role: str, content: str) -> list[int]:
        return header(role) + tokenizer.encode(content, bos=False, eos=False) + [tokenizer.eot_id]

    tokens = [tokenizer.bos_id]
    if system is not None:
        tokens += message("system", system)
    return tokens + message("user", prompt) + header("assistant")


def chat_ids(tokenizer, messages: list[dict], *, add_generation_prompt: bool = True, **variables) -> list[int]:
    """Token ids of a conversation, written by the tokenizer's own chat template.

    For SmolLM2 and [{"role": "user", "content": "Hi"}]: [1, 9690, 198, ...,  1, 520, 9531, 198],
    ending "<|im_start|>assistant\\n", where the model starts to write.
    """
    if not tokenizer.chat_template:
        raise InputError(f"{tokenizer.source}: has no chat template (tokenizer.chat_template)")

    def text(i):
        return "" if i is None else tokenizer.token_text(i)

    rendered = render_chat(tokenizer.chat_template, messages, bos_token=text(tokenizer.bos_id),
                           eos_token=text(tokenizer.eos_id), add_generation_prompt=add_generation_prompt,
                           **variables)
    return tokenizer.encode(rendered, bos=False, eos=False, allowed_special="all")
