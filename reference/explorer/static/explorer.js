// The explorer's page: calls the JSON API of reference/explorer/server.py and draws its answers.
// Plain browser JavaScript, no library: nothing is fetched from the internet.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { answer: null, position: null, model: null };

async function api(path, body) {
  const options = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  let data;
  try { data = await response.json(); } catch (e) { data = { error: `the server answered ${response.status} without JSON` }; }
  if (!response.ok) throw new Error(data.error || `error ${response.status}`);
  return data;
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

function shown(text) { return text.replace(/ /g, "␣").replace(/\n/g, "\\n"); }

async function busy(fn) {
  for (const b of [$("run"), $("append")]) b.disabled = true;
  const start = performance.now();
  try {
    showError("");
    await fn();
    $("timing").textContent = `${Math.round(performance.now() - start)} ms`;
  } catch (e) {
    showError(e.message);
  } finally {
    $("run").disabled = false;
    $("append").disabled = !state.answer;
  }
}

async function runPrompt() {
  await busy(async () => {
    state.position = null;
    draw(await api("/api/run", { prompt: $("prompt").value }));
  });
}

async function appendToken(token) {
  await busy(async () => {
    const body = token === undefined ? {} : { token };
    state.position = null;
    draw(await api("/api/append", body));
  });
}

function draw(answer) {
  state.answer = answer;
  const T = answer.tokens.length;
  $("prompt").dataset.tokens = T;
  // tokens as chips
  const chips = $("tokens");
  chips.replaceChildren(...answer.tokens.map((t, i) => {
    const chip = document.createElement("span");
    chip.className = "chip" + (t.bos ? " bos" : "") + (i === answer.position ? " chosen" : "");
    chip.title = t.bos ? "the BOS token" : `position ${i}`;
    chip.innerHTML = `<span class="text"></span><span class="id">${t.id}${t.bos ? " BOS" : ""}</span>`;
    chip.querySelector(".text").textContent = shown(t.text) || " ";
    chip.addEventListener("click", () => showPosition(i));
    return chip;
  }));
  // top-10
  $("top-tokens").replaceChildren(...answer.top.map((t) => {
    const li = document.createElement("li");
    li.dataset.id = t.id;
    li.innerHTML = `<span class="bar" style="width:${Math.max(2, t.p * 200)}px"></span><span class="text"></span> <small>${t.p.toFixed(3)}</small>`;
    li.querySelector(".text").textContent = shown(t.text);
    li.title = "append this token";
    li.addEventListener("click", () => appendToken(t.id));
    return li;
  }));
  // steps
  $("position-note").textContent = `(values at position ${answer.position}: ${shown(answer.tokens[answer.position].text)})`;
  $("steps").tBodies[0].replaceChildren(...answer.steps.map((s) => {
    const tr = document.createElement("tr");
    const values = s.values.map((v) => v === null ? "-inf" : String(v)).join(", ");
    tr.innerHTML = `<td><a data-page="${s.page}"></a></td>` +
      `<td><code>[${s.shape.join(", ")}]</code></td><td><code>[${s.shape_8b.join(", ")}]</code></td><td><code></code></td>`;
    const link = tr.querySelector("a");
    link.textContent = s.name;
    link.href = `/docs/${s.page}/`;
    link.title = `the docs page on this step (docs/${s.page}.md)`;
    tr.cells[3].querySelector("code").textContent = `[${values}${s.values.length >= 8 ? ", …" : ""}]`;
    return tr;
  }));
  // logit lens
  $("logit-lens").tBodies[0].replaceChildren(...answer.logit_lens.map((row) => {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${row.layer}</td><td><code></code></td><td>${row.p.toFixed(3)}</td>`;
    tr.querySelector("code").textContent = shown(row.text);
    return tr;
  }));
  drawResidual(answer.residual_rms);
  fillHeadChoices(answer);
  drawAttention();
}

function showPosition(i) {
  // values at another position need the server's trace: ask for it without recomputing the prompt
  busy(async () => {
    state.position = i;
    draw(await api("/api/position", { position: i }));
  });
}

function fillHeadChoices(answer) {
  const layer = $("layer"), head = $("head");
  const marks = {};
  for (const [habit, h] of Object.entries(answer.heads || {})) marks[`${h.layer}.${h.head}`] = habit;
  const keep = [layer.value, head.value];
  if (layer.options.length !== answer.n_layers) {
    layer.replaceChildren(...Array.from({ length: answer.n_layers }, (_, i) => new Option(String(i), String(i))));
    const first = Object.values(answer.heads || {})[0];
    if (first) { keep[0] = String(first.layer); keep[1] = String(first.head); }
  }
  layer.value = keep[0] || "0";
  const L = Number(layer.value);
  head.replaceChildren(...Array.from({ length: answer.n_heads }, (_, h) => {
    const habit = marks[`${L}.${h}`];
    return new Option(habit ? `${h} ★ ${habit} head` : String(h), String(h));
  }));
  head.value = keep[1] || "0";
  const notes = Object.entries(answer.heads || {}).map(([habit, h]) => `${habit}: layer ${h.layer}, head ${h.head} (${h.score.toFixed(2)})`);
  $("head-note").textContent = notes.length ? `★ measured: ${notes.join(" · ")}` : "";
}

async function drawAttention() {
  if (!state.answer) return;
  try {
    const m = await api(`/api/attention?layer=${$("layer").value}&head=${$("head").value}`);
    heatmap($("scores-canvas"), m.scores, true);
    heatmap($("weights-canvas"), m.attention_weights, false);
    $("attention").dataset.drawn = `${m.layer}.${m.head}`;
  } catch (e) { showError(e.message); }
}

function heatmap(canvas, rows, signed) {
  const T = rows.length, size = canvas.width, cell = size / T, ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, size, size);
  let bound = 0;
  for (const row of rows) for (const v of row) if (v !== null) bound = Math.max(bound, Math.abs(v));
  bound = bound || 1;
  for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) {
    const v = rows[i][j];
    if (signed && v === null || !signed && j > i) { ctx.fillStyle = "rgba(128,128,128,0.25)"; }
    else if (signed) {
      const a = Math.min(1, Math.abs(v) / bound);
      ctx.fillStyle = v < 0 ? `rgba(79,127,217,${a})` : `rgba(224,123,57,${a})`;
    } else { ctx.fillStyle = `rgba(224,123,57,${Math.min(1, v)})`; }
    ctx.fillRect(j * cell, i * cell, Math.ceil(cell), Math.ceil(cell));
  }
}

function drawResidual(values) {
  const svg = $("residual"), W = 600, H = 160, pad = 30, max = Math.max(...values) || 1;
  const x = (i) => pad + (W - 2 * pad) * i / Math.max(1, values.length - 1);
  const y = (v) => H - pad + (2 * pad - H) * v / max;
  const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  svg.innerHTML = `<polyline fill="none" stroke="#4f7fd9" stroke-width="2" points="${points}"/>` +
    `<line x1="${pad}" y1="${H - pad}" x2="${W - pad}" y2="${H - pad}" stroke="#999"/>` +
    `<text x="${pad}" y="${H - 8}" font-size="11">embeddings</text>` +
    `<text x="${W - pad}" y="${H - 8}" font-size="11" text-anchor="end">after layer ${values.length - 2}</text>` +
    `<text x="${pad}" y="${pad - 10}" font-size="11">RMS up to ${max.toFixed(1)}</text>`;
}

async function start() {
  $("run").addEventListener("click", runPrompt);
  $("append").addEventListener("click", () => appendToken());
  $("layer").addEventListener("change", () => { fillHeadChoices(state.answer); drawAttention(); });
  $("head").addEventListener("change", drawAttention);
  try {
    const m = await api("/api/model");
    state.model = m;
    $("model").textContent = `Model: ${m.name} — ${m.trained ? "trained weights" : "synthesized (random) weights: its predictions are noise"}; ` +
      `${m.n_layers} layers, ${m.n_heads} query heads, ${m.n_kv_heads} kv heads, dim ${m.dim}, vocabulary ${m.vocab_size.toLocaleString()}; ` +
      `prompts up to ${m.limit} tokens.`;
    $("model").className = m.trained ? "trained" : "synthesized";
  } catch (e) { showError(e.message); }
}

start();
