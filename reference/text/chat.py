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

from ..errors import InputError, shown
from .template import render_template


def render_chat(template: str, messages: list[dict], *, bos_token: str, eos_token: str,
                add_generation_prompt: bool = True, source: str | None = None, **variables) -> str:
    """The conversation `messages` ([{"role": ..., "content": ...}, ...]) as the template writes it.

    `variables` reach the template as well (`tools`, `date_string`, ...). Keys whose value is
    None are dropped from each message first, as transformers does, since templates test
    `"key" in message` rather than for None. The template runs with a budget (template.py);
    whatever stops it is one line naming `source`, the file it came from.
    """
    if not isinstance(messages, list) or not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                                 for m in messages):
        raise InputError(f"messages must be a list of dicts with a 'role', got {messages!r:.80}")
    messages = [{k: v for k, v in m.items() if v is not None} for m in messages]
    return render_template(template, source, messages=messages, bos_token=bos_token, eos_token=eos_token,
                           add_generation_prompt=add_generation_prompt, **variables)


def chat_prompt(tokenizer, prompt: str, system: str | None = None) -> list[int]:
    """One user turn (after an optional system message), ready for the assistant's reply: in the
    checkpoint's own chat template if it has one, else in Llama 3's header format."""
    if tokenizer.chat_template is None:
        if not hasattr(tokenizer, "start_header_id"):  # a vocabulary of its own, not Llama 3's tokenizer.model
            raise InputError(f"{shown(tokenizer.source)}: has no chat template, so --chat cannot know how this "
                             "model writes a conversation; run without --chat")
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
        raise InputError(f"{shown(tokenizer.source)}: has no chat template (tokenizer.chat_template)")

    def text(i):
        return "" if i is None else tokenizer.token_text(i)

    rendered = render_chat(tokenizer.chat_template, messages, bos_token=text(tokenizer.bos_id),
                           eos_token=text(tokenizer.eos_id), add_generation_prompt=add_generation_prompt,
                           source=getattr(tokenizer, "template_source", None) or tokenizer.source, **variables)
    return tokenizer.encode(rendered, bos=False, eos=False, allowed_special="all")
