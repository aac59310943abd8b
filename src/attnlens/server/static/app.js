// attnlens web app: the page served by `attnlens serve`. It draws with the views' own
// front-end module (/static/views/attnlens.js, served by server/app.py) and uses its DOM
// helpers, fed by fetch from the JSON/binary API.
// All text reaches the DOM through textContent, never as HTML.

import { createView, cssVar, h as el, sourceFromFetch } from "/static/views/attnlens.js";

const $ = (sel) => document.querySelector(sel);
const state = { models: [], tab: "explore", explore: null, masked: null, left: null, right: null, diff: null };

function status(text, isError = false) {
  const s = $("#status");
  s.textContent = text || "";
  s.classList.toggle("app-error", !!isError);
  document.body.dataset.status = isError ? "error" : text ? "busy" : "idle";
}

async function api(path, body) {
  const init = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (!response.ok) throw new Error((data && data.detail) || `${response.status} ${response.statusText}`);
  return data;
}

const blank = (v) => (v && v.trim() ? v : null);
const modelInfo = (name) => state.models.find((m) => m.name === name) || state.models[0];

// ---------------------------------------------------------------- URL <-> forms

function readURL() {
  const p = new URLSearchParams(location.search);
  return Object.fromEntries(p.entries());
}

function writeURL(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== "") p.set(k, v);
  const url = `${location.pathname}?${p.toString()}`;
  if (url !== `${location.pathname}${location.search}`) history.pushState(null, "", url);
}

function fillForm(form, values) {
  for (const [k, v] of Object.entries(values)) {
    const input = form.elements.namedItem(k);
    if (input && v != null) input.value = v;
  }
}

// ---------------------------------------------------------------- tabs

function showTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll(".app-tabs [data-tab]")) b.setAttribute("aria-selected", String(b.dataset.tab === tab));
  for (const s of document.querySelectorAll("section.app-tab")) s.hidden = s.dataset.tab !== tab;
  if (tab === "results") loadResults();
}

// ---------------------------------------------------------------- explore (+ mask a token)

async function mountCapture(target, captured, options = {}, actions = {}) {
  const source = await sourceFromFetch(`/api/captures/${encodeURIComponent(captured.id)}`, actions);
  target.replaceChildren();
  const mount = el("div");
  target.append(mount);
  return createView(mount, source, options);
}

async function explore(values, push = true) {
  const form = $("#explore-form");
  const model = values.model || form.elements.model.value;
  const body = { model, text_a: values.a, text_b: blank(values.b) };
  if (push) writeURL({ tab: "explore", model, a: values.a, b: body.text_b });
  status("Capturing\u2026");
  try {
    const captured = await api("/api/capture", body);
    const info = modelInfo(model);
    const actions = info && info.mlm ? { maskToken: (index) => maskToken(body, index) } : {};
    $("#masked-pane").hidden = true;
    state.explore = await mountCapture($("#explore-view"), captured, { views: ["head", "model", "neuron"] }, actions);
    state.explore.el.addEventListener("attnlens:drawn", syncMaskedLayer);
    document.body.dataset.captureId = captured.id;
    status("");
  } catch (err) {
    status(err.message, true);
  }
}

async function maskToken(input, index) {
  status(`Masking token #${index}\u2026`);
  try {
    const result = await api("/api/predict/fill-mask", { ...input, position: index, top_k: 5 });
    const pred = result.predictions[0];
    $("#masked-title").textContent = `With #${index} \u201c${result.masked_token}\u201d masked`;
    $("#masked-pane").hidden = false;
    const layer = state.explore ? state.explore.state.layer : 0;
    state.masked = await mountCapture($("#masked-view"), result.masked, { views: ["head", "model", "neuron"], layer, query: index });
    document.body.dataset.maskedId = result.masked.id;
    status("");
    return { title: `Predictions for #${index} \u201c${result.masked_token}\u201d: `,
             items: pred.candidates.map((c) => ({ label: c.token, value: c.probability })) };
  } catch (err) {
    status(err.message, true);
    throw err;
  }
}

function syncMaskedLayer() {
  // the masked view follows the original's layer, so both show the same heads side by side
  const v = state.explore, m = state.masked;
  if (v && m && !$("#masked-pane").hidden && m.state.layer !== v.state.layer) m.setState({ layer: v.state.layer });
}

// ---------------------------------------------------------------- compare

async function compare(values, push = true) {
  const left = { model: values.model, text_a: values.a, text_b: blank(values.b) };
  const right = { model: values.model2, text_a: values.a2, text_b: blank(values.b2) };
  if (push) writeURL({ tab: "compare", model: left.model, a: left.text_a, b: left.text_b,
                       model2: right.model, a2: right.text_a, b2: right.text_b });
  status("Comparing\u2026");
  try {
    const result = await api("/api/compare", { left, right });
    state.diff = result;
    state.left = await mountCapture($("#compare-left"), result.left, { views: ["head", "model", "neuron"] });
    state.right = await mountCapture($("#compare-right"), result.right, { views: ["head", "model", "neuron"] });
    drawDiffMap(result);
    $("#diff").hidden = false;
    $("#diff-head").hidden = true;
    document.body.dataset.compared = `${result.left.id}:${result.right.id}`;
    status("");
  } catch (err) {
    status(err.message, true);
  }
}

function cssColor(name, fallback) {
  return cssVar(document.body, name) || fallback;
}

function drawDiffMap(result) {
  const canvas = $("#diff-map"), cell = 28, left = 34, top = 18;
  const { layers, heads, map } = result;
  const max = Math.max(1e-9, ...map.flat());
  canvas.width = left + heads * cell; canvas.height = top + layers * cell;
  const ctx = canvas.getContext("2d");
  ctx.font = "11px ui-monospace, monospace"; ctx.textBaseline = "middle"; ctx.textAlign = "center";
  ctx.fillStyle = cssColor("--app-fg", "#24292f");
  for (let h = 0; h < heads; h++) ctx.fillText(`H${h}`, left + h * cell + cell / 2, top / 2);
  ctx.textAlign = "right";
  for (let l = 0; l < layers; l++) ctx.fillText(`L${l}`, left - 4, top + l * cell + cell / 2);
  for (let l = 0; l < layers; l++) {
    for (let h = 0; h < heads; h++) {
      const a = map[l][h] / max;
      ctx.fillStyle = `rgba(207, 34, 46, ${0.08 + 0.92 * a})`;
      ctx.fillRect(left + h * cell + 1, top + l * cell + 1, cell - 2, cell - 2);
    }
  }
  $("#diff-measure").textContent = `Difference per head (${result.measure}); darkest = ${max.toFixed(3)}. ` +
    "Click a head to open it on both sides" + (result.aligned ? " and see its attention difference." : ".");
  canvas.onclick = (e) => {
    const r = canvas.getBoundingClientRect();
    const h = Math.floor((e.clientX - r.left - left) / cell), l = Math.floor((e.clientY - r.top - top) / cell);
    if (h >= 0 && h < heads && l >= 0 && l < layers) selectDiffHead(l, h);
  };
  canvas.onmousemove = (e) => {
    const r = canvas.getBoundingClientRect();
    const h = Math.floor((e.clientX - r.left - left) / cell), l = Math.floor((e.clientY - r.top - top) / cell);
    canvas.title = h >= 0 && h < heads && l >= 0 && l < layers ? `layer ${l} head ${h}: ${map[l][h].toFixed(4)}` : "";
  };
}

async function selectDiffHead(layer, head) {
  for (const v of [state.left, state.right]) {
    v.state.heads = new Set([head]);
    v.setState({ layer, head });
    v.show("head");
  }
  document.body.dataset.diffHead = `${layer}:${head}`;
  const box = $("#diff-head");
  if (!state.diff.aligned) { box.hidden = true; return; }
  // signed difference left - right of this head's attention, [query, key], drawn as a heatmap
  const [a, b] = await Promise.all([state.left.data.attention(layer), state.right.data.attention(layer)]);
  const T = state.left.data.T, off = head * T * T;
  const cell = Math.max(3, Math.min(16, Math.floor(480 / T)));
  const canvas = $("#diff-matrix");
  canvas.width = T * cell; canvas.height = T * cell;
  const ctx = canvas.getContext("2d");
  let max = 1e-9;
  for (let i = 0; i < T * T; i++) max = Math.max(max, Math.abs(a[off + i] - b[off + i]));
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      const d = (a[off + i * T + j] - b[off + i * T + j]) / max;
      ctx.fillStyle = d >= 0 ? `rgba(9, 105, 218, ${Math.abs(d)})` : `rgba(219, 109, 40, ${Math.abs(d)})`;
      ctx.fillRect(j * cell, i * cell, cell, cell);
    }
  }
  $("#diff-head-title").textContent = `Layer ${layer} head ${head}: left minus right attention (queries down, keys across); ` +
    `blue = more on the left, orange = more on the right, largest |difference| ${max.toFixed(3)}.`;
  box.hidden = false;
}

// ---------------------------------------------------------------- results folder

async function loadResults() {
  try {
    const found = await api("/api/results");
    const atlas = $("#atlas-list"), runs = $("#runs-list");
    atlas.replaceChildren(); runs.replaceChildren();
    const link = (path) => el("a", { href: `/results/${path.split("/").map(encodeURIComponent).join("/")}`, target: "_blank", rel: "noopener", text: path });
    if (!found.root) atlas.append(el("li", { class: "app-muted", text: "No results folder: start the server with --results DIR." }));
    for (const a of found.atlas) {
      atlas.append(el("li", {}, el("strong", { text: a.path || "(results folder)" }), " ",
        ...a.files.flatMap((f) => [link(f), " "])));
    }
    if (found.root && !found.atlas.length) atlas.append(el("li", { class: "app-muted", text: "none found" }));
    for (const r of found.runs) {
      const metrics = Object.entries(r.last_metrics || {}).slice(0, 6).map(([k, v]) => `${k}=${typeof v === "number" ? +v.toFixed(4) : v}`).join(", ");
      runs.append(el("li", {}, el("strong", { text: r.path || "(results folder)" }),
        el("span", { text: ` ${r.checkpoints.length} checkpoints${r.checkpoints.length ? ` (${r.checkpoints.at(-1)} newest)` : ""}${metrics ? `; last: ${metrics}` : ""} ` }),
        ...r.files.flatMap((f) => [link(f), " "])));
    }
    if (found.root && !found.runs.length) runs.append(el("li", { class: "app-muted", text: "none found" }));
  } catch (err) {
    status(err.message, true);
  }
}

// ---------------------------------------------------------------- start

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function fromURL() {
  const p = readURL();
  const tab = p.tab === "compare" || p.tab === "results" ? p.tab : "explore";
  showTab(tab);
  if (tab === "explore" && p.a) {
    fillForm($("#explore-form"), p);
    explore(formValues($("#explore-form")), false);
  } else if (tab === "compare" && p.a && p.a2) {
    fillForm($("#compare-form"), p);
    compare(formValues($("#compare-form")), false);
  }
}

async function start() {
  try {
    state.models = await api("/api/models");
  } catch (err) {
    status(err.message, true);
    return;
  }
  for (const select of document.querySelectorAll(".model-select")) {
    for (const m of state.models) {
      select.append(el("option", { value: m.name, text: `${m.name} (${m.layers}\u00d7${m.heads}${m.mlm ? ", MLM" : ""})` }));
    }
  }
  for (const b of document.querySelectorAll(".app-tabs [data-tab]")) {
    b.addEventListener("click", () => { showTab(b.dataset.tab); writeURL({ tab: b.dataset.tab }); });
  }
  $("#explore-form").addEventListener("submit", (e) => { e.preventDefault(); explore(formValues(e.target)); });
  $("#compare-form").addEventListener("submit", (e) => { e.preventDefault(); compare(formValues(e.target)); });
  window.addEventListener("popstate", fromURL);
  fromURL();
  document.body.dataset.ready = "1";
}

start();
