"""The glossary (docs/glossary.md and its Chinese twin): the terms as the Chinese readers of
naklecha's *Building LLaMA 3 from scratch* know them, each beside its English, and the article's
sections mapped to this site's pages. One table, printed by both editions' identical code.
"""

from __future__ import annotations

from _lang import language, tr

# (English, Chinese, where it is explained, what it is in a few words: English, Chinese)
TERMS = [
    ("token", "词元", "bpe.md", "a piece of text with an id", "带编号的一小段文本"),
    ("tokenizer / byte-pair encoding (BPE)", "分词器 / 字节对编码（BPE）", "bpe.md",
     "cuts text into tokens by merging frequent pairs", "通过合并高频字节对把文本切成词元"),
    ("embedding", "嵌入", "embeddings.md", "a token's row of numbers", "一个词元对应的一行数"),
    ("normalization (RMSNorm)", "归一化（RMSNorm）", "rmsnorm.md",
     "divide a vector by its root mean square", "把向量除以它的均方根"),
    ("query / key / value", "查询 / 键 / 值", "qkv.md", "the three projections of attention", "注意力的三种投影"),
    ("attention head", "注意力头", "qkv.md", "one of the parallel attentions of a layer", "一层中并行的多个注意力之一"),
    ("rotary position embedding (RoPE)", "旋转位置编码（RoPE）", "rope.md",
     "position as a rotation of q and k", "用 q 和 k 的旋转表示位置"),
    ("self-attention", "自注意力", "attention.md", "each token weighs the tokens before it", "每个词元为它之前的词元加权"),
    ("causal mask", "因果掩码", "attention.md", "no looking ahead", "不许看后面的词元"),
    ("multi-head attention", "多头注意力", "multi-head.md", "H heads side by side, mixed by wo", "H 个头并排，再由 wo 混合"),
    ("grouped-query attention (GQA), KV cache", "分组查询注意力（GQA）、KV 缓存", "multi-head.md",
     "query heads share key/value heads", "多个查询头共享键/值头"),
    ("feed-forward network (SwiGLU)", "前馈网络（SwiGLU）", "swiglu.md", "a gated MLP per token", "逐词元的门控 MLP"),
    ("residual stream", "残差流", "layers.md", "the running sum the layers add to", "各层不断累加的和"),
    ("logits", "逻辑值（logits）", "prediction.md", "one score per vocabulary entry", "词表中每个词元一个分数"),
    ("softmax", "softmax（归一化指数函数）", "attention.md", "scores to probabilities", "把分数变成概率"),
]

# The article's sections, by number, as its Chinese translation titles them, and the page of each.
SECTIONS = [
    ("06", "对输入数据进行分词", "bpe.md"),
    ("07", "为每个 token 创建嵌入", "embeddings.md"),
    ("08", "使用 RMSNorm 进行归一化", "rmsnorm.md"),
    ("09", "注意力头", "qkv.md"),
    ("10", "实现 RoPE", "rope.md"),
    ("11", "实现 Self Attention", "attention.md"),
    ("12", "实现 Multi-Head Attention", "multi-head.md"),
    ("13", "实现 SwiGLU 激活函数", "swiglu.md"),
    ("14", "整合上述模型组件", "layers.md"),
    ("15", "见证模型如何基于输入生成输出", "prediction.md"),
]

PAGE_TITLES = {  # the pages as the nav names them, in each language
    "bpe.md": ("1 · Tokens (BPE)", "1 · 词元（BPE）"),
    "embeddings.md": ("2 · Token embeddings", "2 · 词元嵌入"),
    "rmsnorm.md": ("3 · RMSNorm", "3 · RMSNorm 归一化"),
    "qkv.md": ("4 · Queries, keys, values", "4 · 查询、键、值"),
    "rope.md": ("5 · RoPE", "5 · 旋转位置编码（RoPE）"),
    "attention.md": ("6 · Self-attention", "6 · 自注意力"),
    "multi-head.md": ("7 · Multi-head and grouped KV", "7 · 多头与分组 KV"),
    "swiglu.md": ("8 · SwiGLU", "8 · SwiGLU 前馈网络"),
    "layers.md": ("9 · Stacking the layers", "9 · 层的堆叠"),
    "prediction.md": ("10 · The prediction", "10 · 预测"),
}


def _page(md: str) -> str:
    english, chinese = PAGE_TITLES[md]
    return f"[{chinese if language() == 'zh' else english}]({md})"


def glossary() -> str:
    """The terms, English and Chinese side by side, each with the page that explains it."""
    zh = language() == "zh"
    rows = [f"| {tr('English')} | {tr('Chinese')} | {tr('what it is')} | {tr('page')} |", "| --- | --- | --- | --- |"]
    rows += [f"| {en} | {cn} | {what_cn if zh else what_en} | {_page(md)} |" for en, cn, md, what_en, what_cn in TERMS]
    return "\n".join(rows) + "\n"


def sections() -> str:
    """The article's sections 06–15 and the page of this site that retells each."""
    rows = [f"| {tr('section')} | {tr('its title in the Chinese translation')} | {tr('this site')} |", "| --- | --- | --- |"]
    rows += [f"| {n} | {title} | {_page(md)} |" for n, title, md in SECTIONS]
    return "\n".join(rows) + "\n"
