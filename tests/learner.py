"""A learner's Llama 3 forward pass, written in NumPy from TRACE.md alone, with the classic
mistakes as switches: the tests plant a bug with it and check that `check` names it.

Nothing here comes from reference/ (no model.py, replay.py or mistakes.py): a bug planted with
the diagnosis's own code would prove only that the code agrees with itself. RoPE is real
cos/sin arithmetic, not complex numbers; the mask is np.triu; the softmax subtracts its max.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Bugs:
    layer: int = 0  # the layer bugs apply from this layer on (or in it alone, with `only`)
    only: bool = False
    no_bos: bool = False  # drop the first token (BOS)
    theta: float | None = None  # RoPE base (None: the model's)
    start: int = 0  # the first RoPE position
    freqs_in_layer: bool = False  # theta/start only in the bugged layers' rotation, freqs_cis recorded correct
    hf_rows: bool = False  # wq/wk rows in Hugging Face's order, rotated by rotate_half: a correct HF-layout pass
    wrong_pairs: bool = False  # the other pairing than the rows need: rotate_half on Meta's rows, or adjacent on HF's
    scale: float | None = None  # the scores' factor (None: 1/√d)
    mask: str = "causal"  # "none", "diagonal" (hides itself), "next" (sees one ahead), "nan" (triu(ones)·−inf)
    softmax_axis: int = -1
    tiled_kv: bool = False  # kv head h % K instead of h // (H/K)
    norm: str = "rms"  # "no-weight", "layernorm", "eps-outside"; for `norms`
    norms: tuple[str, ...] = ("attention_norm", "ffn_norm")
    swap_gate: bool = False  # silu(w3·x) ⊙ w1·x
    activation: str = "silu"  # "gelu", "relu"
    attention_residual: bool = True
    ffn_residual: bool = True
    final_norm: bool = True
    transposed_wq: bool = False  # x·wq instead of x·wqᵀ
    q_as_thd: bool = False  # record q as [T, H, d]
    heads_flattened_wrong: bool = False  # [H, T, d] reshaped to [T, H·d] without moving T first
    bf16: bool = False  # round every step's result to bfloat16 (computing in bf16, stored as float32)

    def at(self, i: int) -> bool:
        return i == self.layer if self.only else i >= self.layer


def bf16_round(x: np.ndarray) -> np.ndarray:
    """Round float32 to the nearest bfloat16 (ties to even), kept as float32."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def rows_hf(w: np.ndarray, n: int) -> np.ndarray:
    """A head's rows 0 1 2 3 … -> 0 2 4 … 1 3 5 …: Hugging Face's order for rotate_half."""
    d = w.shape[0] // n
    return np.concatenate([np.concatenate([w[h * d:(h + 1) * d:2], w[h * d + 1:(h + 1) * d:2]]) for h in range(n)])


_WEIGHTS: dict = {}  # id(checkpoint) -> (checkpoint, its weights as float64 arrays): converted once


def float64_weights(ckpt) -> dict[str, np.ndarray]:
    if id(ckpt) not in _WEIGHTS:
        _WEIGHTS[id(ckpt)] = ckpt, {name: t.float().numpy().astype(np.float64) for name, t in ckpt.weights.items()}
    return _WEIGHTS[id(ckpt)][1]


def learner_trace(ckpt, tokens: list[int], bugs: Bugs = Bugs()) -> dict[str, np.ndarray]:
    """The whole trace of TRACE.md, float32 arrays (int64 ids), with `bugs` planted."""
    a = ckpt.args
    H, K, D = a.n_heads, a.n_kv_heads, a.dim
    d = D // H
    W = float64_weights(ckpt)
    r = bf16_round if bugs.bf16 else (lambda x: x)
    tr = {}
    tokens = tokens[1:] if bugs.no_bos else tokens
    T = len(tokens)
    tr["tokens"] = np.array(tokens, dtype=np.int64)
    x = W["tok_embeddings.weight"][tokens]
    tr["embeddings"] = x

    def angles(theta, start):
        inv = theta ** (-np.arange(0, d, 2) / d)  # [d/2]
        return np.outer(np.arange(start, start + T), inv)  # [T, d/2]

    good = angles(a.rope_theta, 0)
    bad = angles(bugs.theta or a.rope_theta, bugs.start)
    recorded = good if bugs.freqs_in_layer else bad
    tr["freqs_cis"] = np.stack([np.cos(recorded), np.sin(recorded)], -1)

    def rope(v, ang, halves):  # v [n, T, d]
        c, s = np.cos(ang), np.sin(ang)  # [T, d/2]
        if halves:
            x1, x2 = v[..., : d // 2], v[..., d // 2:]
            return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], -1)
        x1, x2 = v[..., 0::2], v[..., 1::2]
        out = np.empty_like(v)
        out[..., 0::2], out[..., 1::2] = x1 * c - x2 * s, x1 * s + x2 * c
        return out

    def norm(v, w, kind, i):
        how = bugs.norm if kind in bugs.norms and (i < 0 or bugs.at(i)) else "rms"
        if how == "layernorm":
            v = v - v.mean(-1, keepdims=True)
        if how == "eps-outside":
            return v / (np.sqrt((v * v).mean(-1, keepdims=True)) + a.norm_eps) * w
        out = v / np.sqrt((v * v).mean(-1, keepdims=True) + a.norm_eps)
        return out if how == "no-weight" else out * w

    for i in range(a.n_layers):
        p, bug = f"layers.{i}.", bugs.at(i)
        n = r(norm(x, W[p + "attention_norm.weight"], "attention_norm", i))
        wq, wk, wv = W[p + "attention.wq.weight"], W[p + "attention.wk.weight"], W[p + "attention.wv.weight"]
        if bugs.hf_rows:
            wq, wk = rows_hf(wq, H), rows_hf(wk, K)
        q = r(n @ wq if bugs.transposed_wq and bug else n @ wq.T).reshape(T, H, d).transpose(1, 0, 2)
        k = r(n @ wk.T).reshape(T, K, d).transpose(1, 0, 2)
        v = r(n @ wv.T).reshape(T, K, d).transpose(1, 0, 2)
        ang = bad if (bug or not bugs.freqs_in_layer) else good
        halves = bugs.hf_rows != (bugs.wrong_pairs and bug)  # rotate_half's pairs (j, j + d/2)
        qr, kr = r(rope(q, ang, halves)), r(rope(k, ang, halves))
        group = [h % K if bugs.tiled_kv and bug else h // (H // K) for h in range(H)]
        scale = bugs.scale if bugs.scale is not None and bug else 1 / np.sqrt(d)
        s = np.einsum("htd,hsd->hts", qr, kr[group]) * scale
        mask = {"causal": np.triu(np.full((T, T), -np.inf), 1), "none": np.zeros((T, T)),
                "diagonal": np.triu(np.full((T, T), -np.inf), 0), "next": np.triu(np.full((T, T), -np.inf), 2)}
        with np.errstate(invalid="ignore"):
            m = np.triu(np.ones((T, T)), 1) * -np.inf if bugs.mask == "nan" and bug else mask[
                bugs.mask if bug else "causal"]
            s = r(s + m)
            axis = bugs.softmax_axis if bug else -1
            e = np.exp(s - s.max(axis, keepdims=True))
            probs = r(e / e.sum(axis, keepdims=True))
        heads_out = probs @ v[group]  # [H, T, d]
        att = r(heads_out.reshape(T, H * d) if bugs.heads_flattened_wrong and bug else
                heads_out.transpose(1, 0, 2).reshape(T, H * d))
        att_out = r(att @ W[p + "attention.wo.weight"].T)
        h = r(x + att_out if bugs.attention_residual or not bug else att_out)
        fn = r(norm(h, W[p + "ffn_norm.weight"], "ffn_norm", i))
        w1, w3 = W[p + "feed_forward.w1.weight"], W[p + "feed_forward.w3.weight"]
        if bugs.swap_gate and bug:
            w1, w3 = w3, w1
        g = fn @ w1.T
        act = bugs.activation if bug else "silu"
        gate = {"silu": g / (1 + np.exp(-g)), "relu": np.maximum(g, 0),
                "gelu": 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g ** 3)))}[act]
        ffn = r((gate * (fn @ w3.T)) @ W[p + "feed_forward.w2.weight"].T)
        out = r(h + ffn if bugs.ffn_residual or not bug else ffn)
        tr.update({p + "attention_norm": n, p + "q": q.transpose(1, 0, 2) if bugs.q_as_thd and bug else q,
                   p + "k": k, p + "v": v, p + "q_rotated": qr, p + "k_rotated": kr, p + "scores": s,
                   p + "attention_weights": probs, p + "attention": att, p + "attention_out": att_out, p + "h": h,
                   p + "ffn_norm": fn, p + "ffn_out": ffn, p + "out": out})
        x = out
    final = r(norm(x, W["norm.weight"], "norm", -1)) if bugs.final_norm else x
    tr["norm"] = final
    tr["logits"] = r(final @ W.get("output.weight", W["tok_embeddings.weight"]).T)
    tr["next_token"] = np.array(tr["logits"][-1].argmax(), dtype=np.int64)
    return {name: t if t.dtype == np.int64 else t.astype(np.float32) for name, t in tr.items()}
