"""Text generation: the forward pass again and again, one new token at a time, with a KV cache.

The walk-through ends at one predicted token. To write more, append that token and predict
again. Re-running the whole sequence each time works (`kv_cache=False` does exactly that),
but repeats almost all of its work, so by default the pass runs with a `batched.KVCache`:
the prompt once, then each new token alone at its own position, attending to the cache.
Only the last position's logits are computed (`last_only`), and the last layer finishes only
the last position (`batched.next_token_block`): only it predicts the next token.

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
from collections.abc import Collection, Iterator

import torch

from .batched import KVCache, forward
from .config import ModelArgs
from .errors import InputError, is_finite_number, is_int
from .files import available_memory
from .model import Weights
from .run import check_tokens
from .upcast import resident


# --- choosing the next token ---

MIN_TEMPERATURE = 1e-4  # below it, logits / temperature overflow float32 for logits of a few hundred


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
    if not torch.isfinite(logits).all():  # argmax of NaN is 0: a made-up token, never an answer
        raise InputError("the logits are not finite (NaN or Inf): a weight or a hyper-parameter is broken; "
                         "`python -m reference walk` on the same checkpoint names the first non-finite tensor")
    if temperature == 0:
        return int(logits.argmax())
    # On the CPU in float32 whatever the device and dtype: a seed then gives the same draws everywhere.
    probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)  # [V]
    return sample_top_p(probs, top_p, generator)


# --- the loop ---


def generate(prompt: list[int], weights: Weights, args: ModelArgs, *, max_new_tokens: int = 64,
             temperature: float = 0.6, top_p: float = 0.9, seed: int | None = None,
             stop_tokens: Collection[int] = (), dtype: torch.dtype = torch.float32, device="cpu",
             kv_cache: bool = True, forward=forward, kv_heads: int | None = None) -> Iterator[int]:
    """The new tokens after `prompt`, one at a time as they are chosen (a generator).

    Everything is checked before anything is allocated. A prompt must leave room in the
    model's context (`args.max_seq_len`); generation stops when prompt + new tokens fill it,
    as Meta's does, so fewer than `max_new_tokens` may come back. `kv_cache=False` re-runs the
    whole sequence for every token: slower, and the same tokens. A tensor-parallel rank passes
    `parallel.forward` and the `kv_heads` it holds (K/N), the size of its share of the cache.
    """
    prompt = _checked_prompt(prompt, args)
    if not is_int(max_new_tokens) or max_new_tokens < 0:
        raise InputError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    if not (is_finite_number(temperature) and temperature >= 0):
        raise InputError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if 0 < temperature < MIN_TEMPERATURE:  # logits / 1e-300 overflow to inf, and softmax of inf is NaN
        raise InputError(f"temperature {temperature!r} is too small to divide by (at least {MIN_TEMPERATURE}); "
                         "use 0 for greedy")
    if not (is_finite_number(top_p) and 0 < top_p <= 1):
        raise InputError(f"top_p must be in (0, 1], got {top_p!r}")
    if seed is not None and not (is_int(seed) and 0 <= seed < 2**64):
        raise InputError(f"seed must be a non-negative integer below 2**64 (torch.Generator's range), got {seed!r}")
    n_new = min(max_new_tokens, args.max_seq_len - len(prompt))
    if kv_cache and torch.device(device).type == "cpu":
        _check_cache_fits(args, len(prompt) + n_new - 1, dtype, kv_heads)
    generator = torch.Generator()
    if seed is None:
        generator.seed()  # fresh randomness from the OS
    else:
        generator.manual_seed(seed)
    return _generate(prompt, weights, args, n_new, temperature, top_p, generator, frozenset(stop_tokens),
                     dtype, device, kv_cache, forward, kv_heads)


def _check_cache_fits(args: ModelArgs, positions: int, dtype: torch.dtype, kv_heads: int | None) -> None:
    """Refuse, before allocating it, a KV cache larger than the memory available: Llama 3.1's context
    of 131,072 positions takes 32 GiB in float32 for the 8B, and the kernel would kill the process."""
    need, free = KVCache.nbytes(args, positions, dtype, kv_heads), available_memory()
    if free is not None and need > free:
        raise InputError(f"the KV cache for {positions:,} positions (the prompt and the new tokens, up to the "
                         f"model's context of {args.max_seq_len:,}) needs {need / 2**30:,.1f} GiB, but "
                         f"{free / 2**30:,.1f} GiB of memory is available; ask for fewer with --max-new-tokens")


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
              kv_cache, forward, kv_heads) -> Iterator[int]:
    if n_new == 0:
        return
    tokens = list(prompt)
    weights = resident(weights, dtype, device)  # a small model is upcast once, not at every token
    # The last new token is never fed back in, so it needs no slot.
    cache = KVCache.allocate(args, len(prompt) + n_new - 1, dtype, device, kv_heads) if kv_cache else None
    logits = forward(torch.tensor(prompt), weights, args, dtype=dtype, device=device, cache=cache, last_only=True)
    for step in range(n_new):
        token = next_token(logits[0], temperature, top_p, generator)
        if token in stop_tokens:
            return
        yield token
        tokens.append(token)
        if step == n_new - 1:
            return
        if kv_cache:  # only the new token, at its position; the cache holds the rest
            logits = forward(torch.tensor([token]), weights, args, dtype=dtype, device=device, cache=cache,
                             start=len(tokens) - 1, last_only=True)  # [1, V]
        else:
            logits = forward(torch.tensor(tokens), weights, args, dtype=dtype, device=device, last_only=True)


# --- text as it is written ---


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
