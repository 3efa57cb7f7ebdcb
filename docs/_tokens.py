"""The prompt's tokens as coloured chips, each with its id underneath (the BPE page)."""

from __future__ import annotations

import html

# Mid-tone hues at low opacity: readable on the light and the dark theme alike.
SPAN_HUES = ("79, 127, 217", "224, 123, 57", "58, 166, 117", "201, 80, 138", "138, 111, 209", "47, 166, 181")
BLANKS = str.maketrans({" ": "␣", "\n": "↵", "\t": "⇥"})  # how a token of white space is drawn, as on the figures' axes


def token_spans(tokens: list[int], texts: list[str]) -> str:
    """HTML: each token's text in its own coloured box, its id beneath."""
    spans = []
    for i, (token, text) in enumerate(zip(tokens, texts)):
        hue = SPAN_HUES[i % len(SPAN_HUES)]
        if text and not text.strip():  # only spaces or line breaks: an empty-looking chip would hide it
            shown = f'<span class="l3-token-blank">{html.escape(text.translate(BLANKS))}</span>'
        else:
            shown = html.escape(text).replace(" ", "&nbsp;") or "&nbsp;"
        spans.append(f'<span class="l3-token" style="background: rgba({hue}, 0.22); border-color: rgba({hue}, 0.8)">'
                     f'<span class="l3-token-text">{shown}</span><span class="l3-token-id">{token}</span></span>')
    return f'<div class="l3-tokens">{"".join(spans)}</div>\n'
