"""Text generation: the forward pass again and again, one new token at a time, with a KV cache.

The walk-through ends at one predicted token. To write more, append that token and predict
again. Re-running the whole sequence each time works (`kv_cache=False` does exactly that,
with `forward_uncached`), but repeats almost all of its work: a token's keys and values never
change once computed, because the causal mask stops it from seeing anything after it. So
the first pass (the "prefill") runs the whole prompt and stores every layer's rotated keys
and values in a preallocated `KVCache`; every later pass runs only the one new token, at its
own position, and attends to the cache.

    tokens = tokenizer.encode("the answer is", bos=True, eos=False)   # [128000, 1820, 4320, 374]
    new = list(generate(tokens, ckpt.weights, ckpt.args, max_new_tokens=32, temperature=0,
                        stop_tokens=tokenizer.stop_tokens))
    print(tokenizer.decode(new))

Greedy (`temperature=0`) takes the most likely token; otherwise the logits are divided by the
temperature and a token is drawn from the smallest set of most likely tokens whose
probabilities add up to `top_p` (nucleus sampling), from a seeded `torch.Generator`.
Generation stops at a stop token (`<|end_of_text|>`, `<|eom_id|>`, `<|eot_id|>`), which is
not returned, or after `max_new_tokens`, or when the sequence fills the model's context.
"""

from __future__ import annotations

import codecs
import functools
import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass

import torch

from . import batched, model
from .config import ModelArgs
from .errors import InputError
from .model import Weights, apply_rope, causal_mask, linear, output_weight_name, rms_norm, softmax, weight
from .trace import check_tokens


# --- the KV cache ---


@dataclass(frozen=True)
class KVCache:
    """Every layer's keys (after RoPE) and values so far, in one preallocated tensor each."""

    k: torch.Tensor  # [n_layers, K, max_len, d]
    v: torch.Tensor  # [n_layers, K, max_len, d]

    @classmethod
    def allocate(cls, args: ModelArgs, max_len: int, dtype: torch.dtype, device="cpu") -> "KVCache":
        """Zeros for `max_len` positions: Llama 3 8B in float32 needs 2·32·8·128·4 = 256 KiB a position."""
        shape = (args.n_layers, args.n_kv_heads, max_len, args.head_dim)
        return cls(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))

    @property
    def max_len(self) -> int:
        return self.k.shape[2]


def attention_cached(x: torch.Tensor, layer: int, weights: Weights, args: ModelArgs, cis: torch.Tensor,
                     dtype: torch.dtype, device, trace=None, *, cache: KVCache, start: int) -> torch.Tensor:
    """`batched.attention_batched` for T new tokens at positions start … start+T-1, reading earlier
    keys and values from `cache` and writing theirs into it. Same arguments, plus the two keywords."""
    H, K, d, T = args.n_heads, args.n_kv_heads, args.head_dim, x.shape[0]
    p = f"layers.{layer}."
    q = linear(x, weights[p + "attention.wq.weight"], dtype, device).reshape(T, H, d).transpose(0, 1)  # [H, T, d]
    k = linear(x, weights[p + "attention.wk.weight"], dtype, device).reshape(T, K, d).transpose(0, 1)  # [K, T, d]
    v = linear(x, weights[p + "attention.wv.weight"], dtype, device).reshape(T, K, d).transpose(0, 1)  # [K, T, d]
    q_rot, k_rot = apply_rope(q, cis), apply_rope(k, cis)  # cis holds positions start … start+T-1
    end = start + T
    cache.k[layer, :, start:end] = k_rot
    cache.v[layer, :, start:end] = v
    keys = cache.k[layer, :, :end].repeat_interleave(args.n_rep, dim=0)  # [H, S, d], S = start + T
    values = cache.v[layer, :, :end].repeat_interleave(args.n_rep, dim=0)  # [H, S, d]
    # The one subtle thing. The scores are [T, S]: T new queries against all S = start + T keys.
    # Query i is the token at position start + i, so it may see keys 0 … start + i: the mask is
    # -inf only where key j > start + i, i.e. above the diagonal shifted right by `start`
    # (causal_mask(T, S) does that). A square mask, or `is_causal=True` in PyTorch's fused
    # attention, would align the diagonal top-left instead and hide the cached keys from the
    # queries. When T = 1, nothing is masked: the newest token sees everything.
    scores = q_rot @ keys.transpose(1, 2) / math.sqrt(d) + causal_mask(T, end, dtype, device)  # [H, T, S]
    out = softmax(scores) @ values  # [H, T, d]
    attention = out.transpose(0, 1).reshape(T, H * d)  # [T, H·d]
    return linear(attention, weights[p + "attention.wo.weight"], dtype, device)  # [T, D]


def forward_cached(tokens: torch.Tensor, start: int, weights: Weights, args: ModelArgs, cache: KVCache, *,
                   dtype: torch.dtype = torch.float32, device="cpu") -> torch.Tensor:
    """Logits [V] after the last of `tokens` [T], the tokens at positions start … start+T-1.

    `model.forward` step by step, with RoPE at the true positions and `attention_cached`; only
    the last position's logits are computed, since only they predict the next token.
    """
    x = model.embed(tokens, weights["tok_embeddings.weight"], dtype).to(device)  # [T, D]
    rope_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    cis = model.freqs_cis(args, len(tokens), start=start, dtype=rope_dtype, device=device)  # [T, d/2] complex
    attention = functools.partial(attention_cached, cache=cache, start=start)
    for layer in range(args.n_layers):
        x = model.transformer_block(x, layer, weights, args, cis, dtype, device, None, attention,
                                    batched.feed_forward_batched)  # [T, D]
    last = rms_norm(x[-1:], weight(weights, "norm.weight", dtype, device), args.norm_eps)  # [1, D]
    return batched.output_logits(last, weights[output_weight_name(weights)], dtype, device)[0]  # [V]


def forward_uncached(tokens: torch.Tensor, weights: Weights, args: ModelArgs, *, dtype: torch.dtype = torch.float32,
                     device="cpu") -> torch.Tensor:
    """Logits [V] after the last of `tokens`, from the whole sequence: `batched.forward` without a
    cache, projecting only the last position onto the vocabulary."""

    def last_logits(x, w, dtype, device):
        return batched.output_logits(x[-1:], w, dtype, device)  # [1, V]

    return model.forward(tokens, weights, args, dtype=dtype, device=device, attention=batched.attention_batched,
                         ffn=batched.feed_forward_batched, output=last_logits)[0]


# --- choosing the next token ---


def sample_top_p(probs: torch.Tensor, top_p: float, generator: torch.Generator) -> int:
    """Draw from the most likely tokens whose probabilities, before each, sum to at most `top_p`.

    probs [0.5, 0.3, 0.15, 0.05], top_p 0.7: 0.5 and 0.3 are kept (0 and 0.5 come before them),
    0.15 is not (0.8 comes before it); the draw is from [0.625, 0.375]. As Meta's sample_top_p.
    """
    sorted_probs, order = torch.sort(probs, descending=True)  # [V], [V]
    before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # [V]: the mass of the tokens ahead
    kept = torch.where(before > top_p, torch.zeros_like(sorted_probs), sorted_probs)
    choice = torch.multinomial(kept / kept.sum(), num_samples=1, generator=generator)  # [1]
    return int(order[choice])


def next_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> int:
    """Greedy at temperature 0; otherwise top-p sampling from softmax(logits / temperature)."""
    if temperature == 0:
        return int(logits.argmax())
    # On the CPU in float32 whatever the device and dtype: a seed then gives the same draws everywhere.
    probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)  # [V]
    return sample_top_p(probs, top_p, generator)


# --- the loop ---


def generate(prompt: list[int], weights: Weights, args: ModelArgs, *, max_new_tokens: int = 64,
             temperature: float = 0.6, top_p: float = 0.9, seed: int | None = None,
             stop_tokens: Collection[int] = (), dtype: torch.dtype = torch.float32, device="cpu",
             kv_cache: bool = True) -> Iterator[int]:
    """The new tokens after `prompt`, one at a time as they are chosen (a generator).

    Everything is checked before anything is allocated. A prompt must leave room in the
    model's context (`args.max_seq_len`); generation stops when prompt + new tokens fill it,
    as Meta's does, so fewer than `max_new_tokens` may come back. `kv_cache=False` re-runs the
    whole sequence for every token (`forward_uncached`): slower, and the same tokens.
    """
    prompt = _checked_prompt(prompt, args)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise InputError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature >= 0):
        raise InputError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise InputError(f"top_p must be in (0, 1], got {top_p!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    n_new = min(max_new_tokens, args.max_seq_len - len(prompt))
    generator = torch.Generator()
    if seed is None:
        generator.seed()  # fresh randomness from the OS
    else:
        generator.manual_seed(seed)
    return _generate(prompt, weights, args, n_new, temperature, top_p, generator, frozenset(stop_tokens),
                     dtype, device, kv_cache)


def _checked_prompt(prompt, args: ModelArgs) -> list[int]:
    try:
        prompt = [int(t) for t in prompt]
    except (TypeError, ValueError):
        raise InputError(f"the prompt must be a list of token ids, got {prompt!r:.80}") from None
    if len(prompt) >= args.max_seq_len:
        raise InputError(f"the prompt has {len(prompt)} tokens, but the model's context (max_seq_len) is "
                         f"{args.max_seq_len}, which leaves no room to generate; shorten the prompt")
    check_tokens(torch.tensor(prompt, dtype=torch.int64), args)  # empty, or an id outside the vocabulary
    return prompt


def _generate(prompt, weights, args, n_new, temperature, top_p, generator, stop_tokens, dtype, device,
              kv_cache) -> Iterator[int]:
    if n_new == 0:
        return
    tokens = list(prompt)
    if kv_cache:
        # The last new token is never fed back in, so it needs no slot.
        cache = KVCache.allocate(args, len(prompt) + n_new - 1, dtype, device)
        logits = forward_cached(torch.tensor(prompt), 0, weights, args, cache, dtype=dtype, device=device)
    else:
        logits = forward_uncached(torch.tensor(prompt), weights, args, dtype=dtype, device=device)
    for step in range(n_new):
        token = next_token(logits, temperature, top_p, generator)
        if token in stop_tokens:
            return
        yield token
        tokens.append(token)
        if step == n_new - 1:
            return
        if kv_cache:
            logits = forward_cached(torch.tensor([token]), len(tokens) - 1, weights, args, cache,
                                    dtype=dtype, device=device)  # [V]
        else:
            logits = forward_uncached(torch.tensor(tokens), weights, args, dtype=dtype, device=device)


# --- prompts and text ---


def chat_tokens(tokenizer, prompt: str, system: str | None = None) -> list[int]:
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


class TextStream:
    """Token ids in, text out as soon as it is whole: a character split over two tokens waits.

    "😀" is the tokens [76460, 222], bytes F0 9F 98 and 80: push(76460) -> "", push(222) -> "😀".
    Bytes that never become valid UTF-8 come out as U+FFFD, as `Tokenizer.decode` does.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        return self.decoder.decode(self.tokenizer.decode_bytes([token]))

    def flush(self) -> str:
        """Whatever is left at the end (an incomplete character becomes U+FFFD)."""
        return self.decoder.decode(b"", final=True)
