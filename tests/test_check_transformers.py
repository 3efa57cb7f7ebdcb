"""`check` on transformers' own trace: LlamaForCausalLM's tensors, taken through forward hooks in
Hugging Face's row order, match our pass, on a synthesized checkpoint and on SmolLM2; and
`assert_matches_reference` fails with the first lines of the report.
"""

import pytest
import torch

from learner import Bugs, learner_trace
from reference.check import assert_matches_reference

from test_check import PROMPT


@pytest.fixture(scope="module")
def tokens(tiny):
    return tiny.tokenizer.encode(PROMPT, bos=True, eos=False)


def hf_layout_trace(model, tokens, monkeypatch) -> dict[str, torch.Tensor]:
    """LlamaForCausalLM's tensors through forward hooks, queries and keys in its own row order."""
    from transformers.models.llama import modeling_llama

    c = model.config
    H, K, d = c.num_attention_heads, c.num_key_value_heads, c.head_dim
    out: dict = {}

    def keep(name, f=lambda t: t, before=False):
        def hook(module, args, result=None):
            t = args[0] if before else (result[0] if isinstance(result, tuple) else result)
            out[name] = f(t[0].detach())
        return hook

    per_head = lambda n: lambda t: t.unflatten(-1, (n, d)).transpose(0, 1)  # noqa: E731 [T, n·d] -> [n, T, d]
    hooks = [model.model.embed_tokens.register_forward_hook(keep("embeddings")),
             model.model.norm.register_forward_hook(keep("norm")), model.lm_head.register_forward_hook(keep("logits"))]
    for i, layer in enumerate(model.model.layers):
        p, attn = f"layers.{i}.", layer.self_attn
        hooks += [layer.input_layernorm.register_forward_hook(keep(p + "attention_norm")),
                  attn.q_proj.register_forward_hook(keep(p + "q", per_head(H))),
                  attn.k_proj.register_forward_hook(keep(p + "k", per_head(K))),
                  attn.v_proj.register_forward_hook(keep(p + "v", per_head(K))),
                  attn.o_proj.register_forward_pre_hook(keep(p + "attention", before=True)),
                  attn.o_proj.register_forward_hook(keep(p + "attention_out")),
                  layer.post_attention_layernorm.register_forward_pre_hook(keep(p + "h", before=True)),
                  layer.post_attention_layernorm.register_forward_hook(keep(p + "ffn_norm")),
                  layer.mlp.register_forward_hook(keep(p + "ffn_out")), layer.register_forward_hook(keep(p + "out"))]
    rotated = []
    original = modeling_llama.apply_rotary_pos_emb

    def recording(*args, **kwargs):
        q, k = original(*args, **kwargs)
        rotated.append((q[0].detach(), k[0].detach()))
        return q, k

    monkeypatch.setattr(modeling_llama, "apply_rotary_pos_emb", recording)
    try:
        with torch.no_grad():
            result = model(torch.tensor([tokens]), output_attentions=True)
    finally:
        for h in hooks:
            h.remove()
    for i, ((q, k), probs) in enumerate(zip(rotated, result.attentions)):
        out.update({f"layers.{i}.q_rotated": q, f"layers.{i}.k_rotated": k,
                    f"layers.{i}.attention_weights": probs[0].detach()})
    return {"tokens": torch.tensor(tokens), **out}


def test_transformers_trace_in_its_own_layout_matches_on_a_synthesized_checkpoint(tiny, tokens, monkeypatch):
    from reference.verify.parity import hf_model

    trace = hf_layout_trace(hf_model(tiny.weights, tiny.args, tied=False), tokens, monkeypatch)
    report = assert_matches_reference(trace, tiny, PROMPT)
    assert report.layout == "hf" and len(report.checked) == len(trace)


def test_transformers_trace_of_smollm2_in_its_own_layout_matches(smollm2, smollm2_hf, monkeypatch):
    tokens = smollm2.tokenizer.encode(PROMPT, bos=True, eos=False)
    report = assert_matches_reference(hf_layout_trace(smollm2_hf, tokens, monkeypatch), smollm2)
    assert report.layout == "hf" and report.dtype == "float32"


def test_assert_matches_reference_fails_with_the_reports_first_lines(tiny, tokens):
    with pytest.raises(AssertionError, match="first difference: layers.2.scores") as excinfo:
        assert_matches_reference(learner_trace(tiny, tokens, Bugs(scale=1.0, layer=2)), tiny, PROMPT)
    assert "cause attention-scale" in str(excinfo.value)
