"""The mistakes `check` can name: one table, each cause with what it is and how to fix it.

`mistakes.py` recomputes a step under each of them; `checker.py` names the one whose
recomputation reproduces the user's tensor. The docs render this table as it is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    id: str  # what --json's "cause" says
    explanation: str  # what went wrong, in the trace's words
    fix: str  # what to change


CAUSES: dict[str, Cause] = {c.id: c for c in (
    Cause("tokens-no-bos",
          "the tokens lack the <|begin_of_text|> (BOS) token the checkpoint's tokenizer puts first: every position "
          "moves by one and no token can attend to BOS, so every tensor differs",
          "encode with the BOS token first (tokenizer.encode(text, bos=True, eos=False), or prepend tokenizer.bos_id)"),
    Cause("rope-theta",
          "RoPE turns at the wrong speeds: its base θ is not the checkpoint's rope_theta, or Llama 3.1's scaling of "
          "the low frequencies is missing",
          "use the checkpoint's rope_theta (params.json, or config.json's rope_theta) and, where use_scaled_rope is "
          "set, scale the frequencies as Llama 3.1 does"),
    Cause("rope-positions",
          "the RoPE positions start elsewhere than 0 (often at 1): every token is turned by another position's angle",
          "rotate position m by m·θ_j with m = 0 … T-1 (torch.arange(T)); with a KV cache, start at the number of "
          "tokens already cached"),
    Cause("rope-pairs",
          "RoPE pairs the wrong dimensions for the weights' row order: Meta's layout pairs (2j, 2j+1); Hugging "
          "Face's rotate_half pairs (j, j + d/2) and needs wq and wk with their rows permuted within each head",
          "match the pairing to the weights: with Meta's rows pair (2j, 2j+1) (view_as_complex); with rotate_half, "
          "permute wq/wk's rows as Hugging Face's conversion does (formats/layout.py: to_rotate_half)"),
    Cause("attention-scale",
          "the scores are not q·kᵀ/√d (d = head_dim): the 1/√d is missing, or it is 1/d, 1/√D or another factor, "
          "so the softmax comes out too sharp or too flat",
          "scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)"),
    Cause("causal-mask",
          "the causal mask is missing or off by one: a token sees later tokens, or not even itself (a row of −inf "
          "gives NaN after the softmax)",
          "add −inf where the key's position is after the query's: torch.triu(torch.full((T, T), float('-inf')), "
          "diagonal=1)"),
    Cause("softmax-axis",
          "the softmax is taken over another axis than the keys (over the queries or the heads), so a row of "
          "attention weights does not sum to 1",
          "softmax(scores, dim=-1)"),
    Cause("gqa-grouping",
          "the kv heads are tiled (query head h reads kv head h % K) instead of each being repeated H/K times "
          "(query head h reads kv head h // (H/K))",
          "k.repeat_interleave(H // K, dim=0), as Meta's repeat_kv, not k.repeat(H // K, 1, 1)"),
    Cause("rmsnorm",
          "RMSNorm is computed another way: its weight not applied (or applied as 1 + w), eps missing or added "
          "outside the square root, the mean subtracted as in LayerNorm, or the mean of squares taken over the "
          "positions instead of the features",
          "x / sqrt(mean(x², last axis) + eps) · weight, with the checkpoint's norm_eps, in float32 or wider"),
    Cause("swiglu-branches",
          "the SiLU gate is on the wrong branch: silu(w3·x) ⊙ w1·x instead of silu(w1·x) ⊙ w3·x (w1 is Hugging "
          "Face's gate_proj, w3 its up_proj)",
          "w2(silu(w1·x) ⊙ w3·x): in Hugging Face's names down_proj(silu(gate_proj(x)) * up_proj(x))"),
    Cause("activation",
          "the feed-forward gate uses another activation (GELU, ReLU, a bare sigmoid) where Llama uses SiLU, "
          "x·sigmoid(x)",
          "torch.nn.functional.silu"),
    Cause("residual",
          "a residual connection is missing (h = attention_out, out = ffn_out) or adds the normed input instead of "
          "the layer's input",
          "h = x + attention(norm(x)) and out = h + ffn(norm(h)), with x and h as they were before the norm"),
    Cause("final-norm",
          "the final RMSNorm is skipped: the logits are the last layer's output times output.weightᵀ",
          "apply rms_norm(out, norm.weight, eps) before the output projection"),
    Cause("weight-transposed",
          "a weight is used transposed, x·W instead of x·Wᵀ (the shapes only allow it for a square one: wq, wo)",
          "x @ W.T (torch.nn.functional.linear(x, W)): checkpoints store every weight as [out, in]"),
    Cause("axes",
          "the values are right but the axes are in another order (q as [T, H, d] instead of [H, T, d], or the heads "
          "flattened into [T, H·d] without moving T first)",
          "transpose to the order TRACE.md gives before recording the tensor, or before the next step uses it"),
    Cause("non-finite",
          "NaN or infinity appears where the reference is finite: an overflow in a low dtype, 0·(−inf) in building a "
          "mask, a division by zero",
          "look at the operations of the step named: it is where the first non-finite value appears; build masks "
          "with torch.full or masked_fill, keep softmax and norms in float32"),
    Cause("precision",
          "the differences are the rounding of a lower dtype (bfloat16, float16), not a mistake",
          "nothing to fix; pass --dtype to compare at that dtype's level, or compute in float32 to get closer"),
)}
