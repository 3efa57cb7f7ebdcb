"""Chinese words for docs/_lang.py's tr(): the sentences the pages' code prints, `print(tr(f"..."))`,
whose numbers are computed. Each key is the English sentence with its computed parts as {fields};
tr() reads them back out of the English and says the sentence again in Chinese around them, so a
number is never typed here.
"""

ZH: dict[str, str] = {
    # embeddings.md
    "The real table has {rows} rows of {dim} numbers: {million} million parameters, {share} of the model. A second "
    "table of the same size, `output.weight`, turns vectors back into scores for every token at the very end "
    "(page 10); small models such as {name} use the embedding table for both (*tied* embeddings).":
        "真实的表有 {rows} 行，每行 {dim} 个数：{million} 百万个参数，占模型的 {share}。另一张同样大小的表"
        " `output.weight` 在最后把向量变回词表中每个词元的分数（第 10 页）；{name} 这样的小模型两处都用这张嵌入表"
        "（*共享*嵌入，tied embeddings）。",
    # goldens.md
    "A value passes when |obtained − golden| ≤ atol + rtol · |golden|.": "当 |得到的值 − 金标准| ≤ atol + rtol · |金标准| 时，该值通过。",
    # layers.md
    "after layer {layer}'s {part}": "第 {layer} 层的{part}之后",
    "feed-forward": "前馈网络", "attention": "注意力",
    "in the embeddings": "在嵌入中",
    "The highest line is token {token}, `{text}`, {where}: an RMS of {rms}, almost all of it one number, dimension "
    "{dim} = {value} ({share} of the vector's squared length).":
        "最高的那条线是词元 {token} `{text}`，{where}：RMS 为 {rms}，几乎全部来自一个数，维度 {dim} = {value}"
        "（占向量长度平方的 {share}）。",
    " It is one of the outlier dimensions of the next section.": "它正是下一节的离群维度之一。",
    "{name}'s outlier dimensions: {dims} of {dim}.": "{name} 的离群维度：{dim} 维中的 {dims}。",
    "{shown} is the lens's top token only after the last layer, {last}": "{shown} 只在最后一层（第 {last} 层）之后才成为透镜的首选词元",
    "{shown} becomes the lens's top token after layer {won} and stays there to the last, {last}":
        "{shown} 在第 {won} 层之后成为透镜的首选词元，并一直保持到最后一层（第 {last} 层）",
    "{when}. Its probability passes 1 % after layer {climb} ({p}) and reaches {q} after the last.":
        "{when}。它的概率在第 {climb} 层之后超过 1 %（{p}），在最后一层之后达到 {q}。",
    ", ": "、",
    "`{t}` ({n} layers)": "`{t}`（{n} 层）",
    " Before layer {won}, the lens's best guesses are other tokens (the table above), most often {guesses}.":
        "在第 {won} 层之前，透镜的最佳猜测是别的词元（见上表），最常见的是 {guesses}。",
    # prediction.md
    "**{name}'s next token: {token} = `{text}`**, with probability {p}. The ten most likely:":
        "**{name} 的下一个词元：{token} = `{text}`**，概率为 {p}。最可能的十个：",
    "The real 8B's answer is **{answer}**, as in the walk-through.": "真正的 8B 的答案是 **{answer}**，与原文的走读一致。",
    "A 135M-parameter model does not answer 42. It has learned that a **number** comes next — {in_top} of its ten "
    "most likely tokens are digits (its tokenizer writes every number digit by digit, so \"42\" would be `4` then "
    "`2`) — but not *which* number: `4` is its choice number {rank}, with probability {p}. Llama 3 8B, sixty times "
    "larger and trained on 15 trillion tokens, has read *The Hitchhiker's Guide to the Galaxy* quoted often enough "
    "to complete the sentence: it predicts **2983 = \"42\"** (one token in Llama 3's vocabulary). The arithmetic that "
    "produced both predictions is the same code; only the weights differ.":
        "一个 1.35 亿参数的模型不会回答 42。它学到了接下来是一个**数**——它最可能的十个词元中有 {in_top} 个是数字"
        "（它的分词器把每个数逐位写出，所以“42”会是 `4` 然后 `2`）——但不知道*是哪个*数：`4` 排在它的第 {rank} "
        "位，概率为 {p}。Llama 3 8B 大六十倍，在 15 万亿个词元上训练过，读到被引用的《银河系漫游指南》的次数多到"
        "足以补全这句话：它预测 **2983 = \"42\"**（在 Llama 3 的词表中是一个词元）。产生这两个预测的算术是同一份"
        "代码；不同的只是权重。",
    "**Does it know 42 at all?** Two tokens make \"42\" here, so its probability is a product: p(`4`) · p(`2` | `4`) "
    "= {p4} · {p2} = {p42}, the second factor from a second pass over the prompt with `4` appended. Computed the "
    "same way for every two-digit answer from 10 to 99, \"42\" ranks **{rank} of 90**; the model's favourite is "
    "\"{best}\" ({pbest}). (The product leaves out what comes after the second digit: a third digit would make it "
    "another number.)\n\nLlama 3's tokenizer cuts numbers into pieces of up to three digits, so its vocabulary has "
    "\"4\" (id {id4}), \"2\" (id {id2}) and also \"42\" as one token, id {id42}: the 8B's answer is a single "
    "prediction, one row of its logits, not a product of two.":
        "**它到底知不知道 42？** 在这里“42”由两个词元组成，所以它的概率是一个乘积：p(`4`) · p(`2` | `4`) = {p4} · "
        "{p2} = {p42}，第二个因子来自在提示词后面接上 `4` 再做的第二次前向计算。对从 10 到 99 的每个两位数答案都"
        "这样计算，“42”排在 **90 个中的第 {rank} 位**；模型最喜欢的是“{best}”（{pbest}）。（这个乘积没有考虑"
        "第二位数字之后的内容：再来一位数字就成了另一个数。）\n\nLlama 3 的分词器把数字切成最多三位一段，所以它的"
        "词表中既有“4”（id {id4}）、“2”（id {id2}），也有作为一个词元的“42”，id {id42}：8B 的答案是单独一次"
        "预测，即它逻辑值的一行，而不是两个概率的乘积。",
    "After *{prompt}* ({n} tokens) the next token is **{token} = `{text}`**, with probability {p}:":
        "在 *{prompt}*（{n} 个词元）之后，下一个词元是 **{token} = `{text}`**，概率为 {p}：",
    # rope.md
    "In {name}, θ = `rope_theta` = {theta}, with d = {d} ({pairs} pairs per head).":
        "在 {name} 中，θ = `rope_theta` = {theta}，d = {d}（每个头 {pairs} 对）。",
    "**Which θ.** Llama 3 8B uses θ = `rope_theta` = {theta8b}, with d = {d8b} ({pairs8b} pairs per head). The "
    "values and the pictures on this page come from {name}, whose `rope_theta` is {theta}, with d = {d} ({pairs} "
    "pairs): the same formula with its own two numbers, read from its file.":
        "**用哪个 θ。** Llama 3 8B 使用 θ = `rope_theta` = {theta8b}，d = {d8b}（每个头 {pairs8b} 对）。本页的"
        "数值和图来自 {name}，它的 `rope_theta` 是 {theta}，d = {d}（{pairs} 对）：同一个公式，用它自己的两个数，"
        "从它的文件中读出。",
    "The first pair turns a full radian per position; each next pair is slower by the same factor ({factor} in "
    "Llama 3 8B), down to the last of its {n} pairs, which needs {million} million positions for one turn. Fast "
    "pairs tell neighbours apart; slow pairs still change measurably across the whole {context}-token context.":
        "第一对每个位置转整整一弧度；后面每一对都按同一个倍数变慢（在 Llama 3 8B 中是 {factor}），直到它 {n} 对中"
        "的最后一对，转一圈需要 {million} 百万个位置。快的对区分相邻的词元；慢的对在整个 {context} 词元的上下文中"
        "仍有可测的变化。",
    "Llama 3 raised θ from LLaMA 2's 10,000 to {theta}, making the slow pairs slower still, for the longer "
    "context. (Llama 3.1 additionally stretches the slowest pairs, `scale_rope_frequencies`; Llama 3 8B does not: "
    "`use_scaled_rope` is {scaled}.)":
        "Llama 3 把 θ 从 LLaMA 2 的 10,000 提高到 {theta}，让慢的对更慢，以适应更长的上下文。（Llama 3.1 还会额外"
        "拉伸最慢的那些对，即 `scale_rope_frequencies`；Llama 3 8B 没有：`use_scaled_rope` 为 {scaled}。）",
    "The trace stores each complex number as a pair (cos m·θ_j, sin m·θ_j). Position 0 is no turn at all, (1, 0) for "
    "every pair; position 1 turns pair 0 by one radian, (cos 1, sin 1) = (0.5403, 0.8415), and pair 1 by θ^(−2/d) = "
    "{theta}^(−2/{d}) = {angle} radians: ({cos}, {sin}) ({name}'s θ and d):":
        "trace 把每个复数存为一对 (cos m·θ_j, sin m·θ_j)。位置 0 完全不转，每一对都是 (1, 0)；位置 1 把第 0 对转"
        "一弧度，(cos 1, sin 1) = (0.5403, 0.8415)，把第 1 对转 θ^(−2/d) = {theta}^(−2/{d}) = {angle} 弧度："
        "({cos}, {sin})（用 {name} 的 θ 和 d）：",
    "The last token's first three pairs, as complex numbers, before and after their turn (position {last}):":
        "最后一个词元的前三对，作为复数，旋转前后（位置 {last}）：",
    "Each keeps its length (|z| before: {before}; after: {after}); the last line gives back "
    "`layers.0.q_rotated[0]` exactly.":
        "每一对都保持长度（|z| 之前：{before}；之后：{after}）；最后一行恰好得回 `layers.0.q_rotated[0]`。",
    # check.md
    "<p>They first part at <code>{name}</code>; the logits differ by {error} of their scale.</p>":
        "<p>两者最先在 <code>{name}</code> 处分开；逻辑值相差其尺度的 {error}。</p>",
    # real-8b.md
    "The weights are never loaded as a whole: the checkpoint is *memory-mapped*, so each tensor's bytes are read "
    "from disk when the pass first touches them, and the operating system keeps them in its file cache while memory "
    "allows. The pass computes in float32 and converts one weight at a time; the largest, `output.weight` `{shape}`, "
    "takes {gib} GiB in float32 (`--path batched` converts every weight a cache-sized slice of {low} to {high} MiB at "
    "a time, so no whole matrix is ever converted). The embedding table of the same size is never converted: only "
    "the prompt's rows are. The activations for the {T}-token prompt are small (the logits, `{logits}`, are {mib} "
    "MiB). With about {ram} GiB of RAM free for the file cache plus a few GiB for the pass, it runs from memory; with "
    "less, it still runs, reading weights from disk again, more slowly. `--dtype bfloat16` computes in the weights' "
    "own format, so no weight is converted at all, at some cost in precision.":
        "权重从不整体加载：检查点是*内存映射*的，所以每个张量的字节在前向计算第一次触及它们时才从磁盘读出，操作系统"
        "在内存允许时把它们留在文件缓存里。前向计算用 float32，一次转换一个权重；最大的 `output.weight` `{shape}`"
        " 在 float32 下占 {gib} GiB（`--path batched` 每次只把每个权重的一个缓存大小的切片转换，{low} 到 {high} MiB，"
        "所以从不转换整个矩阵）。同样大小的嵌入表从不转换：只转换提示词用到的那几行。{T} 个词元的提示词的激活值"
        "很小（逻辑值 `{logits}` 为 {mib} MiB）。有大约 {ram} GiB 的空闲内存给文件缓存，再加几 GiB 给前向计算，它就"
        "完全在内存中运行；内存更少时它仍能运行，只是要从磁盘重新读取权重，更慢一些。`--dtype bfloat16` 用权重自己"
        "的格式计算，所以完全不转换权重，代价是一些精度。",
    "The names differ, the layout does not: llama.cpp's converter already stores `wq` and `wk` in Meta's "
    "adjacent-pair order. The whole name map, `{n}` entries:":
        "名字不同，布局相同：llama.cpp 的转换器已经按 Meta 的相邻配对顺序存放 `wq` 和 `wk`。完整的名字映射，"
        "共 `{n}` 项：",
    "And the type of Ollama's `llama3:8b`, Q4_0, as the literal expansion reads one block of 32 weights "
    "(the product's own path, `stored_rows.py`, computes the same values slice by slice):":
        "再看 Ollama 的 `llama3:8b` 所用的类型 Q4_0：逐字的展开这样读出一个 32 个权重的块（乘积自己的路径"
        " `stored_rows.py` 一个切片一个切片地算出同样的值）：",
    # trained-vs-random.md
    "<p><strong>{name}</strong>, the lens's top token after each layer: {tokens}</p>":
        "<p><strong>{name}</strong>，每一层之后透镜的首选词元：{tokens}</p>",
    "The trained model's answer, `{answer}`, forms in its last layers: its probability is {p} after layer {layer} "
    "and {q} after the last. The random model's final \"answer\", `{random}`, is whichever token its random output "
    "matrix happens to favour: no token gets more than {most} after any layer (1/V = {uniform}), and the lens's top "
    "token is {n} different tokens in {L} layers: nothing was learned, so nothing forms.":
        "训练过的模型的答案 `{answer}` 在它最后几层中形成：它的概率在第 {layer} 层之后是 {p}，在最后一层之后是 {q}。"
        "随机模型最后的“答案” `{random}`，只是它随机的输出矩阵碰巧偏爱的那个词元：在任何一层之后，没有哪个词元的"
        "概率超过 {most}（1/V = {uniform}），透镜的首选词元在 {L} 层中换了 {n} 个不同的词元：什么都没有学到，所以"
        "什么都没有形成。",
}
