"""A learner's Llama forward pass, written from scratch the way the walk-through teaches it — not
the reference's code — with three classic mistakes that can be switched on. The page "Check your
own implementation" runs it and hands its tensors to `check_trace`."""

import torch


def learner_forward(tokens, w, cfg, mistake=None):
    """tokens: list of ids; w: weights by Meta's names; cfg: ModelArgs. Returns {trace name: tensor}."""
    out = {}
    T, H, K, d = len(tokens), cfg.n_heads, cfg.n_kv_heads, cfg.dim // cfg.n_heads

    def norm(x, weight):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg.norm_eps) * weight.float()

    freqs = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2).float() / d))
    angles = torch.outer(torch.arange(T).float(), freqs)  # [T, d/2]
    cos, sin = angles.cos(), angles.sin()

    def rope(x):  # x: [heads, T, d]
        if mistake == "rope-pairs":  # Hugging Face's rotate_half on Meta-layout weights
            x1, x2 = x[..., : d // 2], x[..., d // 2:]
            return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
        x1, x2 = x[..., 0::2], x[..., 1::2]  # Meta's adjacent pairs (2j, 2j+1)
        return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)

    x = w["tok_embeddings.weight"][tokens].float()
    out["embeddings"] = x
    for i in range(cfg.n_layers):
        p = f"layers.{i}."
        xn = norm(x, w[p + "attention_norm.weight"])
        q = (xn @ w[p + "attention.wq.weight"].float().T).view(T, H, d).transpose(0, 1)
        k = (xn @ w[p + "attention.wk.weight"].float().T).view(T, K, d).transpose(0, 1)
        v = (xn @ w[p + "attention.wv.weight"].float().T).view(T, K, d).transpose(0, 1)
        out.update({p + "attention_norm": xn, p + "q": q, p + "k": k, p + "v": v})  # what module hooks see
        q, k = rope(q), rope(k)
        if mistake == "gqa-grouping":  # kv heads tiled (0, 1, 2, 0, 1, 2, …) instead of each repeated
            k, v = k.repeat(H // K, 1, 1), v.repeat(H // K, 1, 1)
        else:
            k, v = k.repeat_interleave(H // K, dim=0), v.repeat_interleave(H // K, dim=0)
        scale = 1.0 if mistake == "attention-scale" else d ** -0.5  # forgot to divide by √d
        scores = q @ k.transpose(1, 2) * scale + torch.triu(torch.full((T, T), float("-inf")), 1)
        weights = scores.softmax(-1)
        attn = (weights @ v).transpose(0, 1).reshape(T, H * d)
        attn_out = attn @ w[p + "attention.wo.weight"].float().T
        h = x + attn_out
        hn = norm(h, w[p + "ffn_norm.weight"])
        ffn = (torch.nn.functional.silu(hn @ w[p + "feed_forward.w1.weight"].float().T)
               * (hn @ w[p + "feed_forward.w3.weight"].float().T)) @ w[p + "feed_forward.w2.weight"].float().T
        x = h + ffn
        out.update({p + "q_rotated": q, p + "scores": scores, p + "attention_weights": weights, p + "h": h,
                    p + "attention_out": attn_out, p + "ffn_norm": hn, p + "ffn_out": ffn, p + "out": x})
    x = norm(x, w["norm.weight"])
    out["norm"] = x
    out["logits"] = x @ w["output.weight" if "output.weight" in w else "tok_embeddings.weight"].float().T
    return out
