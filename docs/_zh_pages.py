"""Chinese words for docs/_lang.py's tr(): the rest of the figures (docs/_figures_layers.py,
docs/_figures_rope.py), and the tables the pages print (docs/_pages.table: headers, and the cells
that are words rather than values). Keyed by the English; a {field} keeps its value.
"""

ZH: dict[str, str] = {
    # --- _figures_layers.py ---
    "the last token ({token})": "最后一个词元（{token}）",
    "the other tokens": "其他词元",
    "token {token} ({text}): dimension {dim}\nalone is {share} of its size": "词元 {token}（{text}）：维度 {dim}\n独占其大小的 {share}",
    "layers passed (0: the embeddings)": "经过的层数（0：嵌入）",
    "RMS of the stream": "残差流的 RMS",
    "its size, token by token": "它的大小，逐个词元",
    "an attention sub-block": "一个注意力子模块",
    "a feed-forward sub-block": "一个前馈子模块",
    "layer": "层",
    "‖update‖ / ‖stream before‖": "‖更新‖ / ‖更新前的流‖",
    "each sub-block's update, relative": "每个子模块的更新，相对大小",
    "The residual stream's size after every sub-block, one line per token": "每个子模块之后残差流的大小，每个词元一条线",
    "The size of each sub-block's update relative to the stream it adds to, one bar per sub-block":
        "每个子模块的更新相对于它所加到的残差流的大小，每个子模块一根柱",
    "First panel: the size (root mean square) of each token's vector in the residual stream after every attention "
    "(at ½ past a layer number) and feed-forward sub-block; the last token in orange. Second: the size of what each "
    "sub-block adds, relative to the stream it adds to, averaged over the tokens: green for attention, magenta for "
    "feed-forward.":
        "第一幅：每个注意力子模块（在层号后 ½ 处）和前馈子模块之后，残差流中每个词元向量的大小（均方根）；最后一个"
        "词元为橙色。第二幅：每个子模块所加的量相对于它所加到的残差流的大小，对各词元取平均：绿色为注意力，品红为"
        "前馈网络。",
    "probability": "概率",
    "Top ten next-token probabilities": "下一个词元概率最高的十个",
    "The softmax of the last row of the logits: the model's probability for each next token. The walk-through takes "
    "the most likely one (greedy decoding).":
        "逻辑值最后一行的 softmax：模型对每个下一个词元给出的概率。走读取最可能的那个（贪心解码）。",
    "after “{prompt}”": "在“{prompt}”之后",
    "the lens's top token, whichever it is": "透镜的首选词元，不论是哪个",
    "the final answer, “{answer}”": "最终答案“{answer}”",
    "1/V = 1/{V:,}: every token alike": "1/V = 1/{V:,}：所有词元一样",
    "only after the last layer, {won}": "只在最后一层 {won} 之后",
    "from layer {won} to the end": "从第 {won} 层到最后",
    "“{answer}” on top\n{where}": "“{answer}”居首\n{where}",
    "after layer": "第几层之后",
    "The probability of {answer} layer by layer": "{answer} 逐层的概率",
    "The logit lens: after each layer, the final norm and the output projection applied to the last token's vector "
    "in the residual stream. The orange curve is the probability it gives the model's final answer, “{answer}”":
        "logit lens（逻辑值透镜）：在每一层之后，把最后的归一化和输出投影用在残差流中最后一个词元的向量上。橙色曲线"
        "是它给模型最终答案“{answer}”的概率",
    "; the blue one, the probability of the lens's own top token, and the dotted line 1/V, what every token would "
    "get if the model knew nothing (log scale)":
        "；蓝色曲线是透镜自己的首选词元的概率，点线 1/V 是模型一无所知时每个词元会得到的概率（对数坐标）",
    "; {top_listed}.": "；{top_listed}。",
    "the table above lists the top token at every layer": "上面的表格列出了每一层的首选词元",
    "the line above the picture lists the top token at every layer": "图上方的一行列出了每一层的首选词元",
    "layer boundary (0: embeddings)": "层的边界（0：嵌入）",
    "RMS, mean over tokens": "RMS，对各词元取平均",
    "the stream's size": "残差流的大小",
    "dimension {d}": "维度 {d}",
    "the median dimension": "中位维度",
    "layer boundary": "层的边界",
    "mean |value|": "平均 |值|",
    "its outlier dimensions": "它的离群维度",
    "The residual stream's root mean square after each layer": "每一层之后残差流的均方根",
    "The mean size of the stream's outlier dimensions after each layer, beside the median dimension's":
        "每一层之后残差流离群维度的平均大小，与中位维度并列",
    "First panel: the root mean square of the stream after each layer. Second: the few dimensions whose values are "
    "far larger than the rest, beside the median dimension's.":
        "第一幅：每一层之后残差流的均方根。第二幅：数值远大于其余维度的少数几个维度，与中位维度并列。",
    "float32's tolerance {tolerance:g}": "float32 的容差 {tolerance:g}",
    "{name}: bfloat16 against float32, {n} tokens": "{name}：bfloat16 对比 float32，{n} 个词元",
    "Error of a bfloat16 pass against float32, by layer and step": "bfloat16 前向计算相对 float32 的误差，按层和步骤",
    "Every step's error, layer by layer: the same model on the same tokens computed in bfloat16 (B) against float32 "
    "(A). bfloat16 keeps 8 bits of mantissa, so the traces part at the first tensor and the error stays at that level "
    "through the layers: no single step is to blame.":
        "每一步的误差，逐层：同一个模型在同样的词元上用 bfloat16（B）与 float32（A）计算。bfloat16 只保留 8 位尾数，"
        "所以两份 trace 从第一个张量就分开了，而误差在各层中一直保持在这个水平：不能怪罪任何单独的一步。",
    # --- _figures_rope.py ---
    "{name}:\nθ = {theta:,.0f}, d = {d}": "{name}：\nθ = {theta:,.0f}，d = {d}",
    "pair j": "第 j 对",
    "θ_j  (radians per position)": "θ_j（每个位置转过的弧度）",
    "rotation speed of each pair": "每一对的旋转速度",
    "context: {n:,} positions": "上下文：{n:,} 个位置",
    "positions per full turn": "转一整圈的位置数",
    "wavelength 2π / θ_j": "波长 2π / θ_j",
    " and ": "；",
    "blue": "蓝色",
    "orange": "橙色",
    "θ = {theta:,.0f} for {name} ({colour}, d = {d})": "{name} 的 θ = {theta:,.0f}（{colour}，d = {d}）",
    "RoPE: the rotation speed θ_j of each pair, log scale": "RoPE：每一对的旋转速度 θ_j，对数坐标",
    "RoPE: the wavelength of each pair, in positions per full turn, log scale": "RoPE：每一对的波长，即转一整圈的位置数，对数坐标",
    "RoPE's frequencies θ_j = θ^(−2j/d), with {which}. The first pair turns one radian per position; the last ones "
    "turn so slowly that they never finish a turn within the {n:,}-position context.":
        "RoPE 的频率 θ_j = θ^(−2j/d)，其中 {which}。第一对每个位置转一弧度；最后几对转得极慢，在 {n:,} 个位置的"
        "上下文中连一圈都转不完。",
    "real part  q[2j]\ndashed: before RoPE · solid: after": "实部 q[2j]\n虚线：RoPE 之前 · 实线：之后",
    "imaginary part  q[2j+1]": "虚部 q[2j+1]",
    "pairs j = 0…{last} of one query\nat position {position}": "一个查询的第 j = 0…{last} 对\n位于位置 {position}",
    "pair": "对",
    "pair {j}": "第 {j} 对",
    "e^(i·m·θ_j) for positions\nm = 0…{last}": "位置 m = 0…{last}\n的 e^(i·m·θ_j)",
    "The first {n} pairs of one query as arrows in the complex plane, before and after RoPE":
        "一个查询的前 {n} 对，画成复平面上的箭头，RoPE 前后",
    "The unit rotations e^(i·m·θ_j) of four pairs, one point per position": "四个对的单位旋转 e^(i·m·θ_j)，每个位置一个点",
    "First panel: RoPE treats each adjacent pair of a query as a complex number and turns it by m·θ_j; lengths do not "
    "change. Second: the unit rotations themselves, one point per position: the first pair races round the circle, "
    "later pairs barely move.":
        "第一幅：RoPE 把查询的每一对相邻的数当作一个复数，把它转过 m·θ_j；长度不变。第二幅：单位旋转本身，每个位置"
        "一个点：第一对绕着圆飞转，后面的对几乎不动。",
    "with RoPE": "带 RoPE",
    "the same q, k unrotated": "同样的 q、k，不旋转",
    "distance between query and key, in tokens": "查询与键之间的距离（词元数）",
    "mean score q·k/√d": "平均分数 q·k/√d",
    "{name}, {T} tokens:\nmean score by distance, all {L} layers": "{name}，{T} 个词元：\n按距离的平均分数，全部 {L} 层",
    "Attention score by relative distance": "按相对距离的注意力分数",
    "The mean score over every query–key pair the same distance apart. With RoPE (orange) the score falls with "
    "distance: the rotations make near keys match better. The same queries and keys without their rotations (blue) "
    "have no notion of distance. The rise at the far right is the first token, which only the longest distances "
    "reach: the heads' attention sink.":
        "对相距相同的每一对查询–键取平均分数。带 RoPE 时（橙色）分数随距离下降：旋转让近处的键匹配得更好。同样的"
        "查询和键去掉旋转后（蓝色）没有距离的概念。最右端的上扬是第一个词元，只有最长的距离才够得着它：那是各个头的"
        "注意力汇聚点。",
    # --- tables: headers and the cells that are words ---
    "model": "模型", "size": "规模", "weights, as stored": "权重（存储格式）", "tokenizer": "分词器",
    "the prompt": "提示词", "{n} tokens": "{n} 个词元", "SmolLM2-135M-Instruct": "SmolLM2-135M-Instruct",
    "Llama 3 8B": "Llama 3 8B", "the values on these pages": "本站各页的数值",
    "Llama 3 8B (the shapes beside them)": "Llama 3 8B（旁边的形状）",
    "{name} (trained, built in)": "{name}（训练过的，内置）", "{name} (real weights)": "{name}（真实权重）",
    "its own byte-level BPE, no BOS token": "它自己的字节级 BPE，没有 BOS 词元",
    "tiktoken BPE (tokenizer.model), `<|begin_of_text|>` first": "tiktoken BPE（tokenizer.model），最前面是 `<|begin_of_text|>`",
    "derived size": "推导出的尺寸", "formula": "公式",
    "n_heads / n_kv_heads: query heads per kv head": "n_heads / n_kv_heads：每个键值头对应的查询头数",
    "SwiGLU width: 2/3 · 4 · dim · 1.3, rounded up to a multiple of 1024": "SwiGLU 宽度：2/3 · 4 · dim · 1.3，向上取整到 1024 的倍数",
    "parameters": "参数", "embeddings + 32 layers + final norm + output": "嵌入 + 32 层 + 最后的归一化 + output",
    "LLaMA 2 (7B)": "LLaMA 2（7B）", "Llama 3 (8B, computed from its params.json)": "Llama 3（8B，由它的 params.json 算出）",
    "vocabulary": "词表", "32,000 tokens, SentencePiece BPE": "32,000 个词元，SentencePiece BPE",
    "{n} tokens: 128,000 byte-level BPE tokens run by tiktoken, plus 256 special tokens":
        "{n} 个词元：128,000 个由 tiktoken 运行的字节级 BPE 词元，加上 256 个特殊词元",
    "key/value heads": "键/值头",
    "32, one per query head (only the 34B and 70B used grouped-query attention)": "32，每个查询头一个（只有 34B 和 70B 用了分组查询注意力）",
    "{k} shared by {h} query heads (grouped-query attention) at every size": "{k} 个，由 {h} 个查询头共享（分组查询注意力），各种规模都是",
    "context length": "上下文长度", "4,096 tokens": "4,096 个词元", "RoPE base θ": "RoPE 底数 θ",
    "meaning": "含义",
    "tokens in the prompt (Llama 3 puts `<|begin_of_text|>` first)": "提示词中的词元数（Llama 3 把 `<|begin_of_text|>` 放在最前）",
    "`dim`: width of the residual stream": "`dim`：残差流的宽度", "`n_heads`: query heads per layer": "`n_heads`：每层的查询头数",
    "`n_kv_heads`: key/value heads per layer": "`n_kv_heads`：每层的键/值头数", "SwiGLU hidden size": "SwiGLU 隐藏层大小",
    "step": "步", "pair counts": "各对的计数", "merged": "合并的", "the corpus afterwards": "合并后的语料",
    "name": "名称", "habit": "习惯", "measured as": "度量方式", "strongest head": "最强的头", "score": "得分",
    "layer {layer}, head {head}": "第 {layer} 层，头 {head}",
    "mean attention weight from each token to the one just before it (query positions t ≥ 2)":
        "每个词元对紧挨在它前面的词元的平均注意力权重（查询位置 t ≥ 2）",
    "mean attention weight from each token to the first token (the 'attention sink') (query positions t ≥ 2)":
        "每个词元对第一个词元（“注意力汇聚点”）的平均注意力权重（查询位置 t ≥ 2）",
    "previous-token": "前一个词元", "first-token": "第一个词元",
    "Llama 3 8B, bfloat16": "Llama 3 8B，bfloat16", "K = {k} kv heads (GQA)": "K = {k} 个键值头（GQA）",
    "K = H = {h} (no grouping)": "K = H = {h}（不分组）",
    "KV cache per token: 2 · layers · K · d · 2 bytes": "每个词元的 KV 缓存：2 · 层数 · K · d · 2 字节",
    "KV cache for the full {n}-token context": "完整 {n} 词元上下文的 KV 缓存",
    "most likely next token": "最可能的下一个词元", "second": "第二", "third": "第三",
    "trained": "训练过的", "random": "随机的", "habit: the strongest head's score": "习惯：最强的头的得分",
    "even attention": "均匀关注", "{score} (layer {layer}, head {head})": "{score}（第 {layer} 层，头 {head}）",
    "RMS of the embeddings": "嵌入的 RMS", "RMS after the last layer": "最后一层之后的 RMS",
    "outlier dimensions": "离群维度", "none": "无",
    "tensors": "张量", "atol": "atol", "rtol": "rtol", "why": "理由",
    "cause": "原因", "what went wrong": "哪里错了", "the fix": "修正",
    "file": "文件", "what": "内容",
    "the hyper-parameters (the [overview](index.md#the-architecture) shows them)": "超参数（[概览](index.md#the-architecture)中列出了它们）",
    "{n} parameters in bfloat16: {gb} GB": "{n} 个 bfloat16 参数：{gb} GB", "the 128,000 BPE ranks": "128,000 个 BPE 排名",
    "ranks": "rank 数", "query heads a rank": "每个 rank 的查询头", "kv heads a rank": "每个 rank 的键值头",
    "SwiGLU units a rank": "每个 rank 的 SwiGLU 单元", "weights (bf16)": "权重（bf16）",
    "weights a rank": "每个 rank 的权重", "KV cache a token, a rank": "每个 rank 每个词元的 KV 缓存",
    "{a:d} of {b:d}": "{b} 个中的 {a} 个",
    # the rows of the shape tables (_pages.shapes, .products): what a row is, beside its code name
    "wq, viewed per head": "wq，按头查看", "wk, viewed per head": "wk，按头查看", "wv, viewed per head": "wv，按头查看",
    "q of head 0": "头 0 的 q", "layers.0.q (all heads)": "layers.0.q（所有头）",
    "q of head 0, rotated": "头 0 的 q，旋转后", "q (head 0)": "q（头 0）",
    "z · freqs_cis, turned": "z · freqs_cis，旋转后",
    "scores of head 0": "头 0 的 scores", "layers.0.scores (all heads)": "layers.0.scores（所有头）",
    "output of head 0 (probs @ v)": "头 0 的输出（probs @ v）",
    "q_rot @ k_rot.T (scores before the mask)": "q_rot @ k_rot.T（加掩码前的分数）",
    "probs @ v (the head's output)": "probs @ v（这个头的输出）",
    "layers.(L−1).out, the last layer's": "layers.(L−1).out，最后一层的", "all layers' outputs, stacked": "所有层的输出，叠在一起",
    "gate: silu(w1 · x)": "门：silu(w1 · x)", "output.weight (or the tied tok_embeddings)": "output.weight（或共享的 tok_embeddings）",
    "the last row of logits": "logits 的最后一行",
    # --- the glossary (docs/_glossary.py) ---
    "English": "英文", "Chinese": "中文", "what it is": "是什么", "page": "页面",
    "section": "节", "its title in the Chinese translation": "中文译本中的标题", "this site": "本站",
}
