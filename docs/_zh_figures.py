"""Chinese words for docs/_lang.py's tr(): what the figures draw (docs/_figures*.py) and the page
helpers say (docs/_pages.py's banner and shape tables, docs/_model_card.py). Keyed by the English;
a {field} is filled with the same value in both languages. Terms as in the glossary (术语表):
词元 token, 嵌入 embedding, 归一化, 注意力头, 旋转位置编码 RoPE, 前馈网络, 逻辑值 logits.
"""

ZH: dict[str, str] = {
    # --- _pages.py: the banner, the shape tables ---
    "Values on this page: {what}. Shapes beside them: Llama 3 8B's, computed by the same code.":
        "本页数值来自：{what}。旁边的形状是 Llama 3 8B 的，由同一份代码算出。",
    '<strong>{name}</strong>{stored}, a trained Llama-architecture model built in '
    '(<a href="index.md#which-model-computes-these-values">which model, and why</a>)':
        '<strong>{name}</strong>{stored}，一个内置的、训练过的 Llama 架构模型'
        '（<a href="index.md#which-model-computes-these-values">为什么用这个模型</a>）',
    " ({bits}-bit {kind} weights, RoPE θ {theta:,.0f})": "（{bits} 比特 {kind} 权重，RoPE θ {theta:,.0f}）",
    "the real Llama 3 8B from <code>{path}</code> (${env})": "真正的 Llama 3 8B，来自 <code>{path}</code>（${env}）",
    "this page ({label})": "本页（{label}）",
    "this site ({label})": "本站（{label}）",
    "product": "乘积",
    "shape": "形状",
    # --- _model_card.py ---
    "dim {dim}, {n_layers} layers, {n_heads} query heads, {n_kv_heads} kv heads, head_dim {head_dim}, "
    "SwiGLU hidden size {hidden_dim}, vocabulary {vocab_size:,}, RoPE θ (`rope_theta`) {rope_theta:,.0f}":
        "dim {dim}，{n_layers} 层，{n_heads} 个查询头，{n_kv_heads} 个键值头，head_dim {head_dim}，"
        "SwiGLU 隐藏层大小 {hidden_dim}，词表 {vocab_size:,}，RoPE θ（`rope_theta`）{rope_theta:,.0f}",
    "{kind} ({bits}-bit)": "{kind}（{bits} 比特）",
    "the {n} norm weights": "{n} 个归一化权重",
    "every weight": "所有权重",
    "{n} matrices": "{n} 个矩阵",
    "; ": "；",
    "The weights are stored as {kind}; the pass computes in float32, so the values are the model's own.":
        "权重以 {kind} 存储；前向计算用 float32，所以这些数值就是模型自己的。",
    " `{name}` is {kind}: {levels} levels per block.": "`{name}` 是 {kind}：每块 {levels} 个等级。",
    " {n} matrices are {kind}: {levels} levels per block.": "{n} 个矩阵是 {kind}：每块 {levels} 个等级。",
    "**What {bits}-bit quantization changes.** The file stores each matrix in blocks of 32 neighbouring weights: "
    "{kind} keeps, per block, a scale and a minimum, and for each weight a {bits}-bit index into the {levels} evenly "
    "spaced levels between them. The pass expands them to float32 and computes in float32, so every weight the pages "
    "use is one of its block's {levels} levels (in layer 0's `wq`, at most {distinct} distinct values per block, "
    "levels {step:.4f} apart for a typical weight of {typical:.4f}): the trained weight rounded by up to half a step. "
    "The values shown, from the embeddings to the logits, are this quantized model's, not those of the bfloat16 "
    "original; [Parity](parity.md) runs `transformers` on the same file, so both sides share the rounding.":
        "**{bits} 比特量化改变了什么。** 文件把每个矩阵按 32 个相邻权重一块来存：{kind} 为每块保存一个缩放因子"
        "和一个最小值，并为每个权重保存一个 {bits} 比特的索引，指向两者之间 {levels} 个等距等级中的一个。前向计算"
        "把它们展开成 float32 并用 float32 计算，所以各页用到的每个权重都是它所在块的 {levels} 个等级之一（在第 0 层"
        "的 `wq` 中，每块最多 {distinct} 个不同的值，对一个典型大小为 {typical:.4f} 的权重，等级间隔 {step:.4f}）："
        "即训练得到的权重被舍入，误差最多半个间隔。从嵌入到逻辑值，页面上显示的数值都是这个量化模型的，而不是"
        " bfloat16 原版的；[与 transformers 对齐](parity.md)一页让 `transformers` 运行同一个文件，所以两边的舍入"
        "相同。",
    # --- _figures_architecture.py ---
    "prompt text": "提示词文本",
    "tokenizer: byte-pair encoding (tiktoken)": "分词器：字节对编码（tiktoken）",
    "{T} token ids": "{T} 个词元 id",
    "tok_embeddings: one row per token": "tok_embeddings：每个词元一行",
    "attention: {H} query heads, {K} kv heads\nq k v per head → RoPE →\ncausal softmax → wo":
        "注意力：{H} 个查询头，{K} 个键值头\n每个头的 q k v → RoPE →\n因果 softmax → wo",
    "x + attention": "x + 注意力",
    "SwiGLU feed-forward:\nw2(silu(w1·x) ⊙ w3·x)": "SwiGLU 前馈网络：\nw2(silu(w1·x) ⊙ w3·x)",
    "h + feed-forward": "h + 前馈网络",
    "output: a score for every token": "output：每个词元一个分数",
    "softmax of the last row → next token": "最后一行的 softmax → 下一个词元",
    "× {L} layers (page 9)": "× {L} 层（第 9 页）",
    "The Llama 3 architecture as a column of boxes": "Llama 3 的架构，画成一列方框",
    "Llama 3 8B from prompt to prediction, with the shape of each step's tensor for the {T}-token prompt under its "
    "name. The numbers on the left are the pages of this site; the lines on the left carry the residual stream round "
    "each sub-block to the sum (+) after it.":
        "Llama 3 8B 从提示词到预测，每一步名称下面是这个 {T} 个词元的提示词在该步张量的形状。左边的数字是本站的"
        "页码；左边的连线把残差流绕过每个子模块，送到它后面的求和（+）处。",
    # --- _figures_blocks.py ---
    "into {name}": "进入{name}",
    "layer 0's attention_norm": "第 0 层的 attention_norm",
    "layer {n}'s ffn_norm": "第 {n} 层的 ffn_norm",
    "the final norm": "最后的归一化",
    "after: divided by it": "之后：除以它",
    "every token's size, before and after": "每个词元的大小，归一化前后",
    "before": "之前",
    "after (with the gain)": "之后（乘上增益）",
    "dimension (first {n} of {d})": "维度（{d} 维中的前 {n} 维）",
    "the last token ({token}), final norm": "最后一个词元（{token}），最后的归一化",
    "RMSNorm: each token's root mean square going into three norms, and after them, log scale":
        "RMSNorm：每个词元进入三处归一化时的均方根，以及归一化之后的，对数坐标",
    "RMSNorm: one vector's first dimensions before and after the final norm": "RMSNorm：一个向量的前几维在最后的归一化前后",
    "First panel: the root mean square of each token's vector as it goes into three of the model's RMSNorms; whatever "
    "it was, afterwards it is 1 (before the learned gain). Second: one vector before and after: the whole vector is "
    "rescaled, then the gain rescales each dimension; signs do not change.":
        "第一幅：每个词元的向量进入模型三处 RMSNorm 时的均方根；不管原来是多少，之后都是 1（乘上学到的增益之前）。"
        "第二幅：一个向量在归一化前后：整个向量先被缩放，然后增益再逐维缩放；符号不变。",
    "the gate's activation": "门的激活函数",
    "layer 0: w1·x over all tokens\nand hidden units": "第 0 层：所有词元和\n隐藏单元上的 w1·x",
    "gate input": "门的输入",
    "count": "计数",
    "silu(x) beside relu(x)": "silu(x) 与 relu(x) 并列",
    "A histogram of layer 0's gate inputs w1·x": "第 0 层门的输入 w1·x 的直方图",
    "silu is smooth, lets small negative values through, and is close to the identity for large inputs; it is applied "
    "to w1·x, and the result multiplies w3·x unit by unit.":
        "silu 是光滑的，让较小的负值通过，对较大的输入接近恒等函数；它作用于 w1·x，结果再与 w3·x 逐个单元相乘。",
    # --- _figures_heatmaps.py ---
    "embeddings: first {n} of {d} dimensions": "嵌入：{d} 维中的前 {n} 维",
    "dimension": "维度",
    "Heatmap of the token embeddings": "词元嵌入的热图",
    "One row per token of the prompt, one column per dimension; orange is positive, blue negative.":
        "提示词的每个词元一行，每个维度一列；橙色为正，蓝色为负。",
    "q, head {head}": "q，头 {head}",
    "k, kv head {kv}": "k，键值头 {kv}",
    "v, kv head {kv}": "v，键值头 {kv}",
    "dimension of the head": "头内的维度",
    "Layer 0, {title}: each token's query, one row per token": "第 0 层，{title}：每个词元的查询，每个词元一行",
    "Layer 0, {title}: each token's key, one row per token": "第 0 层，{title}：每个词元的键，每个词元一行",
    "Layer 0, {title}: each token's value, one row per token": "第 0 层，{title}：每个词元的值，每个词元一行",
    "Layer 0: each token's query (head {head}), key and value (kv head {kv}), one row per token, orange positive, blue "
    "negative, each on its own scale, clipped at its 99th percentile so that a few outlier dimensions do not wash out "
    "the rest.":
        "第 0 层：每个词元的查询（头 {head}）、键和值（键值头 {kv}），每个词元一行，橙色为正，蓝色为负，各用自己的"
        "色标，并截断在第 99 百分位，免得少数离群维度把其余的颜色冲淡。",
    "scores: q·kᵀ/√d + mask (head {head})": "分数 q·kᵀ/√d + 掩码（头 {head}）",
    "Layer {layer} head {head}: the masked scores, query tokens by key tokens": "第 {layer} 层头 {head}：掩码后的分数，行是查询词元，列是键词元",
    "softmax: attention weights (head {head})": "softmax：注意力权重（头{head}）",
    "Layer {layer} head {head}: the attention weights, the softmax of each row of scores":
        "第 {layer} 层头 {head}：注意力权重，即每一行分数的 softmax",
    "key (attended to)": "键（被关注）",
    "query (attending)": "查询（关注方）",
    "Layer {layer}, head {head}. Scores: the scaled dot products q·kᵀ/√d, blue negative, orange positive, clear only "
    "at 0; grey cells above the diagonal are the causal mask (−∞: a token may not look ahead). Softmax: each row of "
    "scores turned into weights that sum to 1; the first row can only attend to the first token.":
        "第 {layer} 层，头 {head}。分数：缩放后的点积 q·kᵀ/√d，蓝色为负，橙色为正，只有 0 是透明的；对角线以上的"
        "灰格是因果掩码（−∞：词元不能往后看）。Softmax：每一行分数变成总和为 1 的权重；第一行只能关注第一个词元。",
    " {why}": " {why}",
    "Chosen because its mean weight on the previous token, {score}, is the highest of all heads.":
        "选它是因为它在前一个词元上的平均权重 {score} 是所有头中最高的。",
    "Chosen because its mean weight on the first token, {score}, is the highest of all heads.":
        "选它是因为它在第一个词元上的平均权重 {score} 是所有头中最高的。",
    "{name}: its strongest previous-token head (score {score}).": "{name}：它最强的前一个词元头（得分 {score}）。",
    "head {h}": "头 {h}",
    "attention weight": "注意力权重",
    "kv head {g}": "键值头 {g}",
    "Attention weights of all {H} heads of layer {layer}": "第 {layer} 层全部 {H} 个头的注意力权重",
    "All {H} query heads of layer {layer} (rows: queries, columns: keys, the {T} tokens in order; grey: the causal "
    "mask). A bracket joins the {n_rep} query heads that share one key/value head: they compare against the same "
    "keys, each with its own query.":
        "第 {layer} 层的全部 {H} 个查询头（行：查询，列：键，{T} 个词元按顺序排列；灰色：因果掩码）。一个括号连起"
        "共享同一个键/值头的 {n_rep} 个查询头：它们与同样的键比较，但各用自己的查询。",
}
