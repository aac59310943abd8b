// attnlens web app: the page served by `attnlens serve`. It draws with the views' own
// front-end module (/static/views/attnlens.js, served by server/app.py) and uses its DOM
// helpers, fed by fetch from the JSON/binary API.
// All text reaches the DOM through textContent, never as HTML.
//
// Every state a user can reach is in the URL (so a reload or a shared link shows it again):
//   tab, theme; Explore: model, a, b, the view's view/layer/head/heads/query/pin/filter/threshold
//   mask (the masked token), search (layer:head:token of "Find similar contexts") and search_by;
//   Compare: model1, a1, b1, model2, a2, b2 and dh (the diff head).
// A new input or a tab switch is a history entry; changes inside a view replace the current one.

import { FONT, clipText, createView, cssVar, fitCanvas, h as el, sourceFromFetch } from "/static/views/attnlens.js";

const $ = (sel) => document.querySelector(sel);
const VIEWS = ["head", "model", "neuron"];
const COMPARE_KEYS = ["model1", "a1", "b1", "model2", "a2", "b2"];
const state = {
  models: [], tab: "explore", theme: "light", themeChosen: false,
  exploreInput: null, exploreLoaded: false, exploreGen: 0, explore: null, pendingView: null, pendingMask: null,
  mask: null, maskPending: null, maskGen: 0, masked: null,
  search: null, searchGen: 0, pendingSearch: null, searchBy: "query",  // search: {index, layer, head} asked / shown
  compareInput: null, compareLoaded: false, compareGen: 0, left: null, right: null, diff: null, diffHead: null,
  pendingDiffHead: null, pendingLeft: null, pendingRight: null,
};

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

// ---------------------------------------------------------------- URL <-> state

function readURL() {
  return Object.fromEntries(new URLSearchParams(location.search).entries());
}

const sameInput = (x, y, keys) => !!x && !!y && keys.every((k) => (x[k] || "") === (y[k] || ""));
const EXPLORE_KEYS = ["model", "a", "b"];

const VIEW_KEYS = ["view", "layer", "head", "query", "heads", "pin", "filter", "threshold"];

/** A view's state as URL values (text), one per VIEW_KEYS entry. */
function viewValues(v) {
  const s = v.state;
  return {
    view: s.view, layer: s.layer, head: s.head, query: s.query,
    heads: s.heads.size === v.data.H ? "" : s.heads.size ? [...s.heads].sort((x, y) => x - y).join(",") : "none",
    pin: s.pinned ? `${s.pinned.side === "query" ? "q" : "k"}${s.pinned.index}` : "",
    filter: s.filter, threshold: s.threshold,
  };
}

/** Into `set`: a view's state where it differs from how the view opened, with `over` applied (what a restore
 *  applies before it: Compare's chosen head) (`prefix`: "" Explore, "l_"/"r_" Compare), or, while it loads,
 *  what the URL asked of it. */
function setViewParams(set, v, pending, prefix, over = {}) {
  if (v) {
    const now = viewValues(v), base = { ...v.initialValues, ...over };
    for (const k of VIEW_KEYS) if (String(now[k]) !== String(base[k])) set(prefix + k, now[k]);
  } else if (pending) {
    for (const [k, val] of Object.entries(pending.raw)) set(prefix + k, val);
  }
}

/** The URL parameters of everything shown now. */
function urlParams() {
  const p = new URLSearchParams();
  const set = (k, v) => { if (v != null && v !== "") p.set(k, String(v)); };
  set("tab", state.tab);
  if (state.themeChosen) set("theme", state.theme);
  const e = state.exploreInput;
  if (e) for (const k of EXPLORE_KEYS) set(k, e[k]);
  setViewParams(set, state.explore, state.pendingView, "");
  set("mask", state.mask ? state.mask.index : state.pendingMask);
  const sr = state.search || state.pendingSearch;
  if (sr) set("search", `${sr.layer}:${sr.head}:${sr.index}`);
  if (state.searchBy !== "query") set("search_by", state.searchBy);
  const c = state.compareInput;
  if (c) for (const k of COMPARE_KEYS) set(k, c[k]);
  const dh = state.diffHead || state.pendingDiffHead;
  if (dh) set("dh", `${dh[0]}:${dh[1]}`);
  const chosen = state.diffHead ? { view: "head", layer: dh[0], head: dh[1], heads: String(dh[1]) } : {};
  setViewParams(set, state.left, state.pendingLeft, "l_", chosen);
  setViewParams(set, state.right, state.pendingRight, "r_", chosen);
  return p;
}

/** Put the current state in the URL: a new history entry ("push") or in place ("replace"). */
function writeURL(mode = "push") {
  clearTimeout(writeURL.timer);
  const url = `${location.pathname}?${urlParams().toString()}`;
  if (url === `${location.pathname}${location.search}`) return;
  if (mode === "push") history.pushState(null, "", url); else history.replaceState(null, "", url);
}

/** writeURL("replace") soon (a view's state changes on every hover; the URL follows once it settles). */
function scheduleURL() {
  clearTimeout(writeURL.timer);
  writeURL.timer = setTimeout(() => writeURL("replace"), 120);
}

const int = (x) => (/^\d+$/.test(x || "") ? Number(x) : null);

/** The view state named in URL parameters `prefix` + key (checked against a view when it is applied). */
function viewParams(all, prefix = "") {
  const out = {}, raw = {}, p = {};
  for (const k of VIEW_KEYS) if (all[prefix + k] != null) { p[k] = all[prefix + k]; raw[k] = p[k]; }
  if (VIEWS.includes(p.view)) out.view = p.view;
  for (const k of ["layer", "head", "query"]) if (int(p[k]) != null) out[k] = int(p[k]);
  if (p.heads === "none") out.heads = [];
  else if (/^\d+(,\d+)*$/.test(p.heads || "")) out.heads = p.heads.split(",").map(Number);
  const pin = /^([qk])(\d+)$/.exec(p.pin || "");
  if (pin) out.pinned = { side: pin[1] === "q" ? "query" : "key", index: Number(pin[2]) };
  if (["all", "AA", "AB", "BA", "BB"].includes(p.filter)) out.filter = p.filter;
  if (p.threshold != null && p.threshold !== "" && Number.isFinite(+p.threshold)) out.threshold = Math.min(0.5, Math.max(0, +p.threshold));
  return { ...out, raw };
}

function applyViewParams(v, params) {
  if (!params) return;
  const { L, H, T } = v.data, patch = {};
  if (params.view && v.views.includes(params.view)) patch.view = params.view;
  if (params.layer != null && params.layer < L) patch.layer = params.layer;
  if (params.head != null && params.head < H) patch.head = params.head;
  if (params.query != null && params.query < T) patch.query = params.query;
  if (params.heads) patch.heads = new Set(params.heads.filter((x) => x < H));
  if (params.pinned && params.pinned.index < T) {
    patch.pinned = params.pinned;
    if (params.query == null && params.pinned.side === "query") patch.query = params.pinned.index;  // as a click does
  }
  if (params.filter && (params.filter === "all" || v.data.meta.is_pair)) patch.filter = params.filter;
  if (params.threshold != null) patch.threshold = params.threshold;
  if (Object.keys(patch).length) v.setState(patch);
}

function fillForm(form, values) {
  for (const [k, v] of Object.entries(values)) {
    const input = form.elements.namedItem(k);
    if (input) input.value = v == null ? "" : v;
  }
}

// ---------------------------------------------------------------- theme (the app and every view follow one)

function setTheme(theme, chosen = false) {
  state.theme = theme === "dark" ? "dark" : "light";
  state.themeChosen = state.themeChosen || chosen;
  document.documentElement.dataset.theme = state.theme;
  $("#theme").textContent = state.theme === "dark" ? "\u263e dark" : "\u2600 light";
  for (const v of [state.explore, state.masked, state.left, state.right]) {
    if (v && v.state.theme !== state.theme) v.setTheme(state.theme);
  }
  if (state.diff && !$("#diff").hidden) drawDiffMap(state.diff);
  if (state.diffHead && state.diff && state.diff.aligned && !$("#diff-head").hidden) drawDiffMatrix(...state.diffHead);
  if (chosen) scheduleURL();
}

/** A view of this page: it follows the app's theme, and its own theme button sets the app's. */
function followTheme(v) {
  v.subscribe((s) => { if (s.theme !== state.theme) setTheme(s.theme, true); });
}

// ---------------------------------------------------------------- tabs

function showTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll(".app-tabs [data-tab]")) b.setAttribute("aria-selected", String(b.dataset.tab === tab));
  for (const s of document.querySelectorAll("section.app-tab")) s.hidden = s.dataset.tab !== tab;
  if (tab === "results") loadResults();
  if (tab === "explore" && state.exploreInput && !state.exploreLoaded) explore(state.exploreInput, { push: false });
  if (tab === "compare" && state.compareInput && !state.compareLoaded) compare(state.compareInput, { push: false });
}

// ---------------------------------------------------------------- explore (+ mask a token)

async function mountCapture(target, captured, options = {}, actions = {}) {
  const source = await sourceFromFetch(`/api/captures/${encodeURIComponent(captured.id)}`, actions, captured.meta);
  target.replaceChildren();
  const mount = el("div");
  target.append(mount);
  const v = createView(mount, source, { theme: state.theme, ...options });
  v.initialValues = viewValues(v);  // the URL names only what differs from these
  followTheme(v);
  return v;
}

/** Show input `values` ({model, a, b}) in Explore; push: a new input (a history entry, fresh view state). */
async function explore(values, { push = true } = {}) {
  const form = $("#explore-form");
  const input = { model: values.model || form.elements.model.value, a: values.a, b: values.b || "" };
  const gen = ++state.exploreGen;
  if (state.explore) state.explore.dispose();
  state.explore = null;
  state.exploreInput = input;
  state.exploreLoaded = true;
  clearMask();
  clearSearch();
  if (push) {
    state.pendingView = null;
    state.pendingMask = null;
    state.pendingSearch = null;
    writeURL("push");
  }
  const body = { model: input.model, text_a: input.a, text_b: blank(input.b) };
  showPrediction(null);
  status("Capturing\u2026");
  try {
    const captured = await api("/api/capture", body);
    if (gen !== state.exploreGen) return;
    const info = modelInfo(input.model);
    const actions = { findSimilar: (index, target) => findSimilar(body, index, target) };
    if (info && info.mlm) actions.maskToken = (index) => maskToken(body, index);
    const v = await mountCapture($("#explore-view"), captured, { views: VIEWS }, actions);
    if (gen !== state.exploreGen) { v.dispose(); return; }
    state.explore = v;
    showPrediction(captured.meta.prediction, info);
    applyViewParams(v, state.pendingView);
    state.pendingView = null;
    v.el.addEventListener("attnlens:drawn", syncMaskedLayer);
    v.subscribe((s) => {
      const sel = s.pinned || s.hover;  // another token chosen: the old prediction goes (the head view drops its own too)
      const current = state.mask ? state.mask.index : state.maskPending;
      if (current != null && sel && sel.index !== current) clearMask();
      if (state.search && s.pinned && s.pinned.index !== state.search.index) clearSearch();  // another token pinned
      scheduleURL();
    });
    document.body.dataset.captureId = captured.id;
    status("");
    const mask = state.pendingMask;
    state.pendingMask = null;
    if (mask != null && mask < v.data.T && !v.data.meta.special[mask] && actions.maskToken) {
      const sel = v.selection();
      if (!sel || sel.index !== mask) v.setState({ pinned: { side: "query", index: mask }, query: mask });
      v.maskToken(mask);
    }
    restoreSearch(v);
    writeURL("replace");
  } catch (err) {
    if (gen === state.exploreGen) status(err.message, true);
  }
}

/** Hide the masked input's view and forget it (another token or input was chosen). */
function clearMask() {
  state.maskGen += 1;
  state.maskPending = null;
  if (state.masked) state.masked.dispose();
  state.masked = null;
  state.mask = null;
  $("#masked-pane").hidden = true;
  $("#masked-view").replaceChildren();
  delete document.body.dataset.maskedId;
  scheduleURL();
}

const quoted = (text) => `\u201c${text}\u201d`;

/** The head view's "Mask this token": mask token `index` (a split word: all its pieces, as whole-word
 *  masking does), then show the predictions of each masked position, labelled, and the masked input's views.
 *  An error is shown once, by the head view, where the user asked. */
async function maskToken(input, index) {
  const v = state.explore;
  const gen = ++state.maskGen;
  state.maskPending = index;
  const tokens = v ? v.tokens : [];
  status(`Masking #${index}\u2026`);
  try {
    const result = await api("/api/predict/fill-mask", { ...input, position: index, whole_word: true, top_k: 5 });
    if (gen !== state.maskGen) return { items: [] };  // another token was chosen meanwhile
    const asked = result.masked_positions.length ? result.masked_positions : [index];
    const others = result.predictions.map((p) => p.position).filter((p) => !asked.includes(p));
    const label = (p) => (asked.includes(p) ? `#${p} ${quoted(tokens[p])}` : `#${p} [MASK] (already in the text)`);
    const ordered = [...result.predictions].sort((x, y) => asked.includes(y.position) - asked.includes(x.position) || x.position - y.position);
    const groups = ordered.map((p) => ({
      title: `Predictions for ${label(p.position)}: `,
      items: p.candidates.map((c) => ({ label: c.token, value: c.probability })),
    }));
    const what = asked.length > 1 ? `the word ${quoted(result.masked_token)} (#${asked[0]}\u2013#${asked.at(-1)}, one [MASK] per piece)`
      : `#${index} ${quoted(result.masked_token)}`;
    $("#masked-title").textContent = `With ${what} masked` +
      (others.length ? `; the text already had [MASK] at ${others.map((p) => `#${p}`).join(", ")}` : "");
    $("#masked-pane").hidden = false;
    const layer = v ? v.state.layer : 0;
    const masked = await mountCapture($("#masked-view"), result.masked, { views: VIEWS, layer, query: index });
    if (gen !== state.maskGen) { masked.dispose(); return { groups }; }
    state.masked = masked;
    state.mask = { index, positions: asked };
    state.maskPending = null;
    document.body.dataset.maskedId = result.masked.id;
    status("");
    scheduleURL();
    return groups.length > 1 ? { groups } : groups[0];
  } catch (err) {
    if (gen === state.maskGen) { state.maskPending = null; status(""); $("#masked-pane").hidden = true; }
    throw err;  // the head view shows it (once)
  }
}

function syncMaskedLayer() {
  // the masked view follows the original's layer, so both show the same heads side by side
  const v = state.explore, m = state.masked;
  if (v && m && !$("#masked-pane").hidden && m.state.layer !== v.state.layer) m.setState({ layer: v.state.layer });
}

// ---------------------------------------------------------------- find similar contexts (corpus search)

/** The search the URL asked for ({index, layer, head} from "layer:head:token"), once the view shows. */
function restoreSearch(v) {
  const sr = state.pendingSearch;
  state.pendingSearch = null;
  if (!sr || sr.index >= v.data.T || v.data.meta.special[sr.index] || sr.layer >= v.data.L || sr.head >= v.data.H) return;
  const sel = v.selection();
  if (!sel || sel.index !== sr.index) v.setState({ pinned: { side: "query", index: sr.index }, query: sr.index });
  v.findSimilar(sr.index, { layer: sr.layer, head: sr.head });
}

/** Hide the contexts panel and forget its search (another token or input was chosen). */
function clearSearch() {
  state.searchGen += 1;
  state.search = null;
  $("#search-pane").hidden = true;
  $("#search-hits").replaceChildren();
  delete document.body.dataset.searched;
  scheduleURL();
}

/** The head view's "Find similar contexts": the corpus contexts where head {layer, head} behaves most like it
 *  does on token `index`, in the panel below the views; the head view shows the returned {text} (or the error). */
async function findSimilar(input, index, { layer, head }) {
  const gen = ++state.searchGen;
  const by = state.searchBy;
  state.search = { index, layer, head };
  scheduleURL();
  const token = state.explore ? state.explore.tokens[index] : "";
  $("#search-pane").hidden = false;
  $("#search-title").textContent = `Contexts like #${index} ${quoted(token)}, layer ${layer} head ${head}`;
  $("#search-note").textContent = "Searching… (the first search of a layer indexes the corpus sample: seconds)";
  $("#search-hits").replaceChildren();
  $("#search-by").value = by;
  status(`Searching for contexts like #${index}…`);
  try {
    const r = await api("/api/search", { ...input, index, layer, head, by, k: 10 });
    if (gen !== state.searchGen) return { text: "" };  // another search or token meanwhile
    showHits(r);
    status("");
    return { text: `${r.hits.length} contexts like #${index} ${quoted(r.token)} for layer ${layer} head ${head}: below.` };
  } catch (err) {
    if (gen === state.searchGen) {
      state.search = null;
      $("#search-pane").hidden = true;
      status("");
      scheduleURL();
    }
    throw err;  // the head view shows it (once)
  }
}

/** The search's hits: each sentence's tokens with the matching one highlighted and the head's targets
 *  from it underlined (all as text), its similarity and where the head looked. */
function showHits(r) {
  const source = { memory: "index in memory", disk: "index read from the cache", built: "index built now" }[r.indexed.source];
  $("#search-note").textContent = `Ranked by cosine similarity of the head's ${r.by === "query" ? "query vectors" : "attention rows"} ` +
    `over ${r.indexed.sentences} sentences (${r.indexed.tokens} tokens) of the corpus ${quoted(r.corpus)} ` +
    `(${source}${r.indexed.source === "built" ? ` in ${r.indexed.seconds.toFixed(1)} s` : ""}). ` +
    "Highlighted: the matching token; underlined: where the head looked from it.";
  const items = r.hits.map((hit) => {
    const weights = new Map(hit.looked_at.map((x) => [x.position, x.weight]));
    const tokens = [];
    hit.tokens.forEach((t, i) => {
      const cls = ["app-hit-tok"];
      if (i === hit.position) cls.push("app-hit-match");
      if (weights.has(i)) cls.push("app-hit-target");
      if (/^\[(CLS|SEP)\]$|^<\/?s>$/.test(t)) cls.push("app-hit-special");
      const attrs = { class: cls.join(" "), text: t, "data-index": String(i) };
      if (weights.has(i)) attrs.title = `the head's weight from the match: ${weights.get(i).toFixed(3)}`;
      if (i) tokens.push(" ");
      tokens.push(el(i === hit.position ? "mark" : "span", attrs));
    });
    const looked = hit.looked_at.map((x) => `#${x.position} ${x.token} ${x.weight.toFixed(2)}`).join(", ");
    return el("li", { class: "app-hit", title: hit.sentence, "data-sentence": String(hit.sentence_index),
                      "data-position": String(hit.position) },
      el("span", { class: "app-hit-sim", text: hit.similarity.toFixed(3) }),
      el("span", { class: "app-hit-text" }, ...tokens),
      el("div", { class: "app-hit-looked", text: `looked at: ${looked}` }));
  });
  $("#search-hits").replaceChildren(...items);
  document.body.dataset.searched = `${r.layer}:${r.head}:${r.index}:${r.by}`;
}

/** "Rank by" changed: the same search again. */
function researchBy(by) {
  state.searchBy = by === "attention" ? "attention" : "query";
  const sr = state.search, v = state.explore;
  if (sr && v) v.findSimilar(sr.index, { layer: sr.layer, head: sr.head });
  else scheduleURL();
}

// ---------------------------------------------------------------- compare

/** Compare two inputs ({model1, a1, b1, model2, a2, b2}); push: a new comparison (a history entry). */
async function compare(values, { push = true } = {}) {
  const input = Object.fromEntries(COMPARE_KEYS.map((k) => [k, values[k] || ""]));
  const gen = ++state.compareGen;
  for (const v of [state.left, state.right]) if (v) v.dispose();
  state.left = state.right = state.diff = state.diffHead = null;
  state.compareInput = input;
  state.compareLoaded = true;
  $("#diff").hidden = true;
  if (push) {
    state.pendingDiffHead = state.pendingLeft = state.pendingRight = null;
    writeURL("push");
  }
  const left = { model: input.model1, text_a: input.a1, text_b: blank(input.b1) };
  const right = { model: input.model2, text_a: input.a2, text_b: blank(input.b2) };
  status("Comparing\u2026");
  try {
    const result = await api("/api/compare", { left, right });
    if (gen !== state.compareGen) return;
    const l = await mountCapture($("#compare-left"), result.left, { views: VIEWS });
    const r = await mountCapture($("#compare-right"), result.right, { views: VIEWS });
    if (gen !== state.compareGen) { l.dispose(); r.dispose(); return; }
    state.diff = result; state.left = l; state.right = r;
    $("#diff").hidden = false;
    $("#diff-head").hidden = true;
    drawDiffMap(result);
    document.body.dataset.compared = `${result.left.id}:${result.right.id}`;
    status("");
    const dh = state.pendingDiffHead;
    state.pendingDiffHead = null;
    if (dh && dh[0] < result.layers && dh[1] < result.heads) await selectDiffHead(dh[0], dh[1]);
    if (gen !== state.compareGen) return;
    applyViewParams(l, state.pendingLeft);  // after the chosen head: a side's own state is the more specific
    applyViewParams(r, state.pendingRight);
    state.pendingLeft = state.pendingRight = null;
    for (const v of [l, r]) v.subscribe(scheduleURL);
    writeURL("replace");
  } catch (err) {
    if (gen === state.compareGen) status(err.message, true);
  }
}

function cssColor(name, fallback) {
  return cssVar(document.documentElement, name) || fallback;
}

const DIFF_GEO = { cell: 28, left: 34, top: 18, gap: 18, bar: 12 };  // the map's layout, CSS pixels

/** The layers x heads difference map, its colour scale (0 .. largest) and a box around the chosen head. */
function drawDiffMap(result) {
  const canvas = $("#diff-map"), { cell, left, top, gap, bar } = DIFF_GEO;
  const { layers, heads, map } = result;
  const max = Math.max(1e-9, ...map.flat());
  const gridW = left + heads * cell, gridH = top + layers * cell, scaleH = Math.max(60, layers * cell);
  const ctx = fitCanvas(canvas, gridW + gap + bar + 90, Math.max(gridH, top + scaleH) + 4);
  const fg = cssColor("--app-fg", "#24292f");
  const shade = (a) => `rgba(207, 34, 46, ${0.08 + 0.92 * a})`;
  ctx.font = "11px ui-monospace, monospace"; ctx.textBaseline = "middle"; ctx.textAlign = "center";
  ctx.fillStyle = fg;
  for (let h = 0; h < heads; h++) ctx.fillText(`H${h}`, left + h * cell + cell / 2, top / 2);
  ctx.textAlign = "right";
  for (let l = 0; l < layers; l++) ctx.fillText(`L${l}`, left - 4, top + l * cell + cell / 2);
  for (let l = 0; l < layers; l++) {
    for (let h = 0; h < heads; h++) {
      ctx.fillStyle = shade(map[l][h] / max);
      ctx.fillRect(left + h * cell + 1, top + l * cell + 1, cell - 2, cell - 2);
    }
  }
  // the colour scale: 0 (same) at the bottom, the largest difference at the top
  const x0 = gridW + gap;
  const gradient = ctx.createLinearGradient(0, top + scaleH, 0, top);
  gradient.addColorStop(0, shade(0)); gradient.addColorStop(1, shade(1));
  ctx.fillStyle = gradient;
  ctx.fillRect(x0, top, bar, scaleH);
  ctx.strokeStyle = cssColor("--app-border", "#d0d7de"); ctx.lineWidth = 1;
  ctx.strokeRect(x0 + 0.5, top + 0.5, bar - 1, scaleH - 1);
  ctx.fillStyle = fg; ctx.textAlign = "left";
  ctx.fillText(max.toFixed(3), x0 + bar + 4, top + 5);
  ctx.fillText("0 (same)", x0 + bar + 4, top + scaleH - 5);
  if (state.diffHead) {  // the chosen head
    const [l, h] = state.diffHead;
    ctx.strokeStyle = cssColor("--app-accent", "#0969da"); ctx.lineWidth = 3;
    ctx.strokeRect(left + h * cell + 1.5, top + l * cell + 1.5, cell - 3, cell - 3);
  }
  Object.assign(canvas.dataset, { cell, left, top, scaleX: x0, scaleTop: top, scaleHeight: scaleH,
                                  selected: state.diffHead ? state.diffHead.join(":") : "" });
  $("#diff-measure").textContent = `Difference per head (${result.measure}); scale 0 (same) to ${max.toFixed(3)} (the largest here). ` +
    "Click a head to open it on both sides" + (result.aligned ? " and see its attention difference." : ".");
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    const h = Math.floor((e.clientX - r.left - left) / cell), l = Math.floor((e.clientY - r.top - top) / cell);
    return h >= 0 && h < heads && l >= 0 && l < layers ? [l, h] : null;
  };
  canvas.onclick = (e) => { const hit = at(e); if (hit) selectDiffHead(...hit); };
  canvas.onmousemove = (e) => { const hit = at(e); canvas.title = hit ? `layer ${hit[0]} head ${hit[1]}: ${map[hit[0]][hit[1]].toFixed(4)}` : ""; };
}

async function selectDiffHead(layer, head) {
  for (const v of [state.left, state.right]) v.setState({ heads: new Set([head]), layer, head, view: "head" });
  state.diffHead = [layer, head];
  document.body.dataset.diffHead = `${layer}:${head}`;
  drawDiffMap(state.diff);
  scheduleURL();
  if (!state.diff.aligned) { $("#diff-head").hidden = true; return; }
  await drawDiffMatrix(layer, head);
}

/** The signed difference left - right of one head's attention [query, key] as a heatmap, with the
 *  tokens along both sides and a colour scale below. */
async function drawDiffMatrix(layer, head) {
  const [a, b] = await Promise.all([state.left.data.attention(layer), state.right.data.attention(layer)]);
  if (!state.diffHead || state.diffHead[0] !== layer || state.diffHead[1] !== head) return;
  const tokens = state.left.tokens, T = state.left.data.T, off = head * T * T;
  const cell = Math.max(8, Math.min(16, Math.floor(560 / T)));
  const canvas = $("#diff-matrix");
  const measure = canvas.getContext("2d");
  const font = cell >= 12 ? FONT : FONT.replace("12px", `${Math.max(7, cell - 2)}px`);
  measure.font = font;
  const label = Math.min(120, Math.ceil(Math.max(...tokens.map((t) => measure.measureText(t).width))) + 8);
  const size = T * cell, legendH = 34;
  const ctx = fitCanvas(canvas, label + size + 4, label + size + legendH);
  const fg = cssColor("--app-fg", "#24292f");
  const pos = [9, 105, 218], neg = [219, 109, 40];
  let max = 1e-9;
  for (let i = 0; i < T * T; i++) max = Math.max(max, Math.abs(a[off + i] - b[off + i]));
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      const d = (a[off + i * T + j] - b[off + i * T + j]) / max;
      ctx.fillStyle = `rgba(${(d >= 0 ? pos : neg).join(",")}, ${Math.abs(d)})`;
      ctx.fillRect(label + j * cell, label + i * cell, cell, cell);
    }
  }
  ctx.font = font; ctx.fillStyle = fg; ctx.textBaseline = "middle";
  ctx.textAlign = "right";  // queries down the left
  for (let i = 0; i < T; i++) ctx.fillText(clipText(ctx, tokens[i], label - 6), label - 4, label + i * cell + cell / 2);
  ctx.save();  // keys across the top, written upwards
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "left";
  for (let j = 0; j < T; j++) ctx.fillText(clipText(ctx, tokens[j], label - 6), -label + 4, label + j * cell + cell / 2);
  ctx.restore();
  // the colour scale: orange (more on the right) .. nothing .. blue (more on the left)
  const y = label + size + 8, w = Math.min(size, 240);
  const gradient = ctx.createLinearGradient(label, 0, label + w, 0);
  gradient.addColorStop(0, `rgb(${neg.join(",")})`); gradient.addColorStop(0.5, "rgba(0,0,0,0)"); gradient.addColorStop(1, `rgb(${pos.join(",")})`);
  ctx.fillStyle = gradient;
  ctx.fillRect(label, y, w, 10);
  ctx.strokeStyle = cssColor("--app-border", "#d0d7de"); ctx.strokeRect(label + 0.5, y + 0.5, w - 1, 9);
  ctx.fillStyle = fg; ctx.font = "11px ui-monospace, monospace"; ctx.textBaseline = "top";
  ctx.textAlign = "left"; ctx.fillText(`-${max.toFixed(3)}`, label, y + 13);
  ctx.textAlign = "center"; ctx.fillText("0", label + w / 2, y + 13);
  ctx.textAlign = "right"; ctx.fillText(`+${max.toFixed(3)}`, label + w, y + 13);
  Object.assign(canvas.dataset, { label, cell, tokens: T, legendY: y });
  $("#diff-head-title").textContent = `Layer ${layer} head ${head}: left minus right attention (queries down, keys across); ` +
    `blue = more on the left, orange = more on the right, largest |difference| ${max.toFixed(3)}.`;
  $("#diff-head").hidden = false;
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
    const finetunes = $("#finetunes-list");
    finetunes.replaceChildren();
    for (const r of found.runs.filter((r) => r.finetune)) finetunes.append(finetuneItem(r, link));
    if (found.root && !found.runs.some((r) => r.finetune)) finetunes.append(el("li", { class: "app-muted", text: "none found" }));
    for (const r of found.runs.filter((r) => !r.finetune)) {
      const metrics = Object.entries(r.last_metrics || {}).slice(0, 6).map(([k, v]) => `${k}=${typeof v === "number" ? +v.toFixed(4) : v}`).join(", ");
      runs.append(el("li", {}, el("strong", { text: r.path || "(results folder)" }),
        el("span", { text: ` ${r.checkpoints.length} checkpoints${r.checkpoints.length ? ` (${r.checkpoints.at(-1)} newest)` : ""}${metrics ? `; last: ${metrics}` : ""} ` }),
        ...r.files.flatMap((f) => [link(f), " "])));
    }
    if (found.root && !found.runs.some((r) => !r.finetune)) runs.append(el("li", { class: "app-muted", text: "none found" }));
  } catch (err) {
    status(err.message, true);
  }
}

// ---------------------------------------------------------------- fine-tuned classifiers

/** The model picker's note on a fine-tuned classifier: its task kind and classes. */
function classifierNote(m) {
  if (!m.classifier) return "";
  const labels = m.classifier.labels;
  return `, ${m.classifier.kind} classifier: ${labels.slice(0, 6).join(" / ")}${labels.length > 6 ? ` +${labels.length - 6}` : ""}`;
}

/** A classifier's prediction for the shown input (meta.prediction) beside the views; null hides the panel. */
function showPrediction(prediction, info) {
  const pane = $("#prediction");
  pane.replaceChildren();
  pane.hidden = !prediction;
  if (!prediction) return;
  const kind = info && info.classifier ? info.classifier.kind : prediction.kind;
  pane.append(el("h3", { text: `Prediction (${kind} classifier)` }));
  if (prediction.error) {
    pane.append(el("p", { class: "app-muted", text: prediction.error }));
  } else if (prediction.kind === "token") {
    pane.append(el("p", { class: "app-tags" }, ...prediction.words.map((word, i) => el("span", { class: "app-tag" },
      el("span", { text: word }), el("span", { class: "app-tag-label", text: prediction.tags[i] })))));
  } else {
    pane.append(el("p", {}, "Label: ", el("strong", { class: "app-prediction-label", text: prediction.label })));
    const rows = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1]);
    pane.append(el("table", { class: "app-probs" }, ...rows.map(([label, p]) => el("tr", {},
      el("td", { text: label }), el("td", {}, el("meter", { min: "0", max: "1", value: String(p) })),
      el("td", { text: p.toFixed(3) })))));
  }
}

/** One fine-tuning run of the results folder: task, steps, last held-out accuracy / macro-F1 against the majority baseline. */
function finetuneItem(r, link) {
  const f = r.finetune, num = (x) => (typeof x === "number" ? x.toFixed(3) : "?");
  const steps = f.planned_steps ? `${f.steps ?? 0}/${f.planned_steps}` : `${f.steps ?? 0}`;
  const heldout = f.heldout ? `held-out accuracy ${num(f.heldout.accuracy)}, macro-F1 ${num(f.heldout.macro_f1)} (step ${f.heldout.step})` : "no held-out evaluation yet";
  const baseline = f.baseline ? `; majority baseline ${num(f.baseline.accuracy)} / ${num(f.baseline.macro_f1)}` : "";
  return el("li", {}, el("strong", { text: r.path || "(results folder)" }),
    el("span", { class: "app-run-info", text: ` task ${f.task} (${f.kind}, ${f.labels.length} classes), steps ${steps}: ${heldout}${baseline} ` }),
    ...r.files.flatMap((file) => [link(file), " "]));
}

// ---------------------------------------------------------------- start

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

/** The compare form's values as the URL names them (its left fields are model, a, b). */
function compareValues(form) {
  const v = formValues(form);
  return { model1: v.model, a1: v.a, b1: v.b, model2: v.model2, a2: v.a2, b2: v.b2 };
}

/** The comparison a URL names, or null (links from before model1/a1/b1 named the left side model/a/b). */
function compareFromParams(p) {
  const left = p.a1 != null ? { model1: p.model1, a1: p.a1, b1: p.b1 } : { model1: p.model, a1: p.a, b1: p.b };
  if (!left.a1 || !p.a2) return null;
  const selects = $("#compare-form").elements;
  return { model1: left.model1 || selects.model.value, a1: left.a1, b1: left.b1 || "",
           model2: p.model2 || selects.model2.value, a2: p.a2, b2: p.b2 || "" };
}

/** Show what the URL names (on load and on back / forward). */
function fromURL() {
  const p = readURL();
  if (p.theme === "dark" || p.theme === "light") setTheme(p.theme, true);
  const exploreForm = $("#explore-form");
  const e = p.a ? { model: p.model || exploreForm.elements.model.value, a: p.a, b: p.b || "" } : null;
  fillForm(exploreForm, e || { a: "", b: "" });
  const viewState = viewParams(p), mask = int(p.mask);
  const searchMatch = /^(\d+):(\d+):(\d+)$/.exec(p.search || "");
  const search = searchMatch ? { layer: +searchMatch[1], head: +searchMatch[2], index: +searchMatch[3] } : null;
  state.searchBy = p.search_by === "attention" ? "attention" : "query";
  if (!sameInput(e, state.exploreInput, EXPLORE_KEYS)) {
    state.exploreGen += 1;
    if (state.explore) state.explore.dispose();
    state.explore = null;
    clearMask();
    $("#explore-view").replaceChildren();
    showPrediction(null);
    state.exploreInput = e;
    state.exploreLoaded = false;
    state.pendingView = viewState;
    state.pendingMask = mask;
    state.pendingSearch = search;
  } else if (state.explore) {
    applyViewParams(state.explore, viewState);
    const now = state.search;
    if (!search && now) clearSearch();
    else if (search && (!now || String([now.layer, now.head, now.index]) !== String([search.layer, search.head, search.index]))) {
      state.pendingSearch = search;
      restoreSearch(state.explore);
    }
  }
  const c = compareFromParams(p);
  const dhMatch = /^(\d+):(\d+)$/.exec(p.dh || "");
  const dh = dhMatch ? [Number(dhMatch[1]), Number(dhMatch[2])] : null;
  if (c) fillForm($("#compare-form"), { model: c.model1, a: c.a1, b: c.b1, model2: c.model2, a2: c.a2, b2: c.b2 });
  if (!sameInput(c, state.compareInput, COMPARE_KEYS)) {
    state.compareGen += 1;
    for (const v of [state.left, state.right]) if (v) v.dispose();
    state.left = state.right = state.diff = state.diffHead = null;
    $("#diff").hidden = true;
    $("#compare-left").replaceChildren(); $("#compare-right").replaceChildren();
    state.compareInput = c;
    state.compareLoaded = false;
    state.pendingDiffHead = dh;
    state.pendingLeft = viewParams(p, "l_");
    state.pendingRight = viewParams(p, "r_");
  } else if (state.diff) {
    if (dh && String(state.diffHead) !== String(dh)) selectDiffHead(...dh);
    applyViewParams(state.left, viewParams(p, "l_"));
    applyViewParams(state.right, viewParams(p, "r_"));
  }
  showTab(p.tab === "compare" || p.tab === "results" ? p.tab : "explore");  // loads what the tab shows
}

async function start() {
  setTheme(matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  $("#theme").addEventListener("click", () => setTheme(state.theme === "dark" ? "light" : "dark", true));
  try {
    state.models = await api("/api/models");
  } catch (err) {
    status(err.message, true);
    return;
  }
  for (const select of document.querySelectorAll(".model-select")) {
    for (const m of state.models) {
      select.append(el("option", { value: m.name, text: `${m.name} (${m.layers}\u00d7${m.heads}${m.mlm ? ", MLM" : ""}${classifierNote(m)})` }));
    }
  }
  for (const b of document.querySelectorAll(".app-tabs [data-tab]")) {
    b.addEventListener("click", () => { showTab(b.dataset.tab); writeURL("push"); });
  }
  $("#explore-form").addEventListener("submit", (e) => { e.preventDefault(); explore(formValues(e.target)); });
  $("#compare-form").addEventListener("submit", (e) => { e.preventDefault(); compare(compareValues(e.target)); });
  $("#search-by").addEventListener("change", (e) => researchBy(e.target.value));
  $("#search-close").addEventListener("click", () => clearSearch());
  window.addEventListener("popstate", fromURL);
  fromURL();
  document.body.dataset.ready = "1";
}

start();
