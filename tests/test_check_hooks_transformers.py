"""`check` on transformers' LlamaForCausalLM with a mistake planted where real code makes it, its
tensors taken with forward hooks alone (tests/test_check_hooks.py says which): the cause is named
at the first tensor a hook sees, layers.0.attention_out, as a learner's pass gets there.

Each mistake is planted in transformers' own code, in every layer: its q_proj and k_proj given
Meta's rows unpermuted (a conversion without permute(), then rotate_half), its repeat_kv
tiling, its scaling, its causal mask dropped, its softmax over the queries.
"""

import contextlib

import pytest
import torch

from reference.check import check_trace

from test_check import PROMPT
from test_check_hooks import HOOKED

FIRST = "layers.0.attention_out"


@pytest.fixture(scope="module")
def tokens(tiny):
    return tiny.tokenizer.encode(PROMPT, bos=True, eos=False)


@pytest.fixture(scope="module")
def model(tiny):
    from reference.verify.parity import hf_model

    return hf_model(tiny.weights, tiny.args, tied=False)


def hooked_trace(model, tokens) -> dict[str, torch.Tensor]:
    """What forward hooks on LlamaForCausalLM's modules see, named as TRACE.md, q/k in its own rows."""
    c = model.config
    out: dict = {"tokens": torch.tensor(tokens)}

    def keep(name, n=None):  # n heads: [T, n·d] -> [n, T, d]
        def hook(module, args, result):
            t = (result[0] if isinstance(result, tuple) else result)[0].detach()
            out[name] = t if n is None else t.unflatten(-1, (n, c.head_dim)).transpose(0, 1)
        return hook

    modules = {"embeddings": model.model.embed_tokens, "norm": model.model.norm, "logits": model.lm_head}
    for i, layer in enumerate(model.model.layers):
        attn = layer.self_attn
        modules.update({f"layers.{i}.{name}": m for name, m in (
            ("attention_norm", layer.input_layernorm), ("q", attn.q_proj), ("k", attn.k_proj), ("v", attn.v_proj),
            ("attention_out", attn.o_proj), ("ffn_norm", layer.post_attention_layernorm), ("ffn_out", layer.mlp),
            ("out", layer))})
    heads = {"q": c.num_attention_heads, "k": c.num_key_value_heads, "v": c.num_key_value_heads}
    hooks = [m.register_forward_hook(keep(name, heads.get(name.rsplit(".", 1)[-1]))) for name, m in modules.items()]
    try:
        with torch.no_grad():
            model(torch.tensor([tokens]))
    finally:
        for h in hooks:
            h.remove()
    assert {n.rsplit(".", 1)[-1] for n in out} == set(HOOKED)
    return out


def attention(mask: bool = True, axis: int = -1):
    """transformers' eager_attention_forward, with the causal mask dropped or the softmax over `axis`."""
    from transformers.models.llama import modeling_llama

    def eager(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        key = modeling_llama.repeat_kv(key, module.num_key_value_groups)
        value = modeling_llama.repeat_kv(value, module.num_key_value_groups)
        scores = query @ key.transpose(2, 3) * scaling  # [B, H, T, T]
        if mask and attention_mask is not None:
            scores = scores + attention_mask
        weights = torch.softmax(scores, dim=axis)
        return (weights @ value).transpose(1, 2).contiguous(), weights
    return eager


@contextlib.contextmanager
def metas_rows_unpermuted(model, tiny):
    """q_proj and k_proj hold Meta's wq and wk as they are: a conversion that skipped permute()."""
    saved = []
    for i, layer in enumerate(model.model.layers):
        for proj, name in ((layer.self_attn.q_proj, "wq"), (layer.self_attn.k_proj, "wk")):
            saved.append((proj, proj.weight.data))
            proj.weight.data = tiny.weights[f"layers.{i}.attention.{name}.weight"].float()
    try:
        yield
    finally:
        for proj, weight in saved:
            proj.weight.data = weight


def test_transformers_hooked_trace_matches(model, tokens, tiny):
    report = check_trace(hooked_trace(model, tokens), tiny, PROMPT)
    assert report.match and report.layout == "hf", str(report)


def test_metas_weights_loaded_without_permute_are_rope_pairs(model, tokens, tiny):
    with metas_rows_unpermuted(model, tiny):
        report = check_trace(hooked_trace(model, tokens), tiny, PROMPT)
    assert (report.first_divergent, report.cause, report.inferred) == (FIRST, "rope-pairs", True), str(report)
    assert report.layout == "meta" and "rotate_half on Meta-layout weights" in report.evidence


@pytest.mark.parametrize("plant, cause", [
    ("repeat_kv", "gqa-grouping"), ("scaling", "attention-scale"), ("mask", "causal-mask"),
    ("softmax", "softmax-axis")])
def test_a_mistake_planted_in_transformers_attention_is_named_at_attention_out(model, tokens, tiny, monkeypatch,
                                                                               plant, cause):
    from transformers.models.llama import modeling_llama

    if plant == "repeat_kv":  # k and v tiled: h.repeat, not each kv head repeated n_rep times
        monkeypatch.setattr(modeling_llama, "repeat_kv", lambda h, n_rep: h.repeat(1, n_rep, 1, 1))
    elif plant == "scaling":
        for layer in model.model.layers:
            monkeypatch.setattr(layer.self_attn, "scaling", 1.0)
    else:
        eager = attention(mask=False) if plant == "mask" else attention(axis=-2)
        monkeypatch.setattr(modeling_llama, "eager_attention_forward", eager)
    report = check_trace(hooked_trace(model, tokens), tiny, PROMPT)
    assert (report.first_divergent, report.cause, report.inferred) == (FIRST, cause, True), str(report)
    assert report.layout == "hf" and "inferred from a block replay" in str(report)
