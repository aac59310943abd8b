// attnlens front end: head view, model view and attention-detail (neuron) view.
//
// One ES module shared by every host. A host hands createView() a *source*:
//   {
//     meta,                        // the payload's meta object (see views/payload.py)
//     load(name) -> Promise<Uint8Array|ArrayBuffer|DataView>   // one buffer, as stored
//     actions: {                   // optional hooks a host may provide
//       maskToken(index) -> Promise<{title?: string, items: [{label: string, value: number}]}>
//     }
//   }
// Shims below build a source from an anywidget model (Jupyter), from data inlined in the
// page (standalone HTML) or from HTTP (a server: GET <base>/meta, GET <base>/<buffer name>).
// All text reaches the DOM through textContent or canvas fillText, never as HTML.

const FORMAT = "attnlens.view/1";
const VIEW_NAMES = { head: "Head view", model: "Model view", neuron: "Neuron view" };
const FILTERS = [["all", "All"], ["AA", "A \u2192 A"], ["AB", "A \u2192 B"], ["BA", "B \u2192 A"], ["BB", "B \u2192 B"]];
const FONT = "12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";

// ---------------------------------------------------------------- data sources (host shims)

function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new Error("attnlens: a buffer must be bytes");
}

/** A source from an anywidget model: traits `meta` (JSON text) and `buffers` (name -> bytes). */
export function sourceFromModel(model) {
  const meta = JSON.parse(model.get("meta"));
  return { meta, load: async (name) => model.get("buffers")[name], actions: {} };
}

/** A source from data inlined in `root` (standalone HTML). */
export function sourceFromDocument(root) {
  const metaEl = root.querySelector('script[type="application/json"][data-attnlens="meta"]');
  const meta = JSON.parse(metaEl.textContent);
  const load = async (name) => {
    for (const el of root.querySelectorAll('script[type="application/octet-stream"][data-attnlens="buffer"]')) {
      if (el.dataset.name === name) return base64Bytes(el.textContent);
    }
    throw new Error(`attnlens: no buffer ${name}`);
  };
  return { meta, load, actions: {} };
}

/** A source fetching from a server: `${base}/meta` (JSON) and `${base}/${name}` (bytes). */
export async function sourceFromFetch(base, actions = {}) {
  const response = await fetch(`${base}/meta`);
  if (!response.ok) throw new Error(`attnlens: ${response.status} for ${base}/meta`);
  const meta = await response.json();
  const load = async (name) => {
    const r = await fetch(`${base}/${name}`);
    if (!r.ok) throw new Error(`attnlens: ${r.status} for ${base}/${name}`);
    return new Uint8Array(await r.arrayBuffer());
  };
  return { meta, load, actions };
}

function base64Bytes(text) {
  const bin = atob(text.replace(/\s+/g, ""));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

let F16 = null;
function float16Table() {  // every float16 bit pattern -> its float32 value
  if (F16) return F16;
  const bits = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp === 31) bits[h] = sign | 0x7f800000 | (man << 13);  // inf / NaN
    else if (exp !== 0) bits[h] = sign | ((exp + 112) << 23) | (man << 13);  // normal: rebias 15 -> 127
  }
  F16 = new Float32Array(bits.buffer);
  for (let man = 1; man < 1024; man++) { F16[man] = man * 2 ** -24; F16[0x8000 | man] = -man * 2 ** -24; }  // subnormal
  return F16;
}

/** Decoded arrays of one capture, per layer and cached. */
class CaptureData {
  constructor(source) {
    const meta = source.meta;
    if (!meta || meta.format !== FORMAT) throw new Error(`attnlens: expected data format ${FORMAT}`);
    this.source = source;
    this.meta = meta;
    this.L = meta.num_layers; this.H = meta.num_heads; this.T = meta.num_tokens; this.D = meta.d_head;
    this.cache = new Map();
  }

  async buffer(name) {
    const entry = this.meta.buffers[name];
    let bytes = asBytes(await this.source.load(name));
    bytes = entry.encoding === "gzip" ? await gunzip(bytes) : bytes.slice();
    if (entry.dtype === "uint8") return bytes;
    const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
    const table = float16Table(), out = new Float32Array(halves.length);
    for (let i = 0; i < halves.length; i++) out[i] = table[halves[i]];
    return out;
  }

  cached(key, make) {
    if (!this.cache.has(key)) {
      const p = make();
      this.cache.set(key, p);
      p.catch(() => this.cache.delete(key));
      if (key.startsWith("att/")) this.evict("att/", 3);
    }
    return this.cache.get(key);
  }

  evict(prefix, keep) {
    const keys = [...this.cache.keys()].filter((k) => k.startsWith(prefix));
    for (const k of keys.slice(0, Math.max(0, keys.length - keep))) this.cache.delete(k);
  }

  /** {q, k}: Float32Array [head, token, d_head] of one layer. */
  vectors(layer) {
    return this.cached(`qk/${layer}`, async () => {
      const [q, k] = await Promise.all([this.buffer(`queries/${layer}`), this.buffer(`keys/${layer}`)]);
      return { q, k };
    });
  }

  /** Float32Array [head, query, key] of one layer: stored codes, or softmax(q.k/sqrt(d)). */
  attention(layer) {
    return this.cached(`att/${layer}`, async () => {
      if (this.meta.attention_code === "qk") return this.attentionFromQK(await this.vectors(layer));
      const codes = await this.buffer(`attention/${layer}`);
      const out = new Float32Array(codes.length);
      for (let i = 0; i < codes.length; i++) { const v = codes[i] / 255; out[i] = v * v; }
      return out;
    });
  }

  attentionFromQK({ q, k }) {
    // scores for four query rows at a time (each key vector is read once per four rows)
    const { H, T, D } = this, out = new Float32Array(H * T * T), scale = 1 / Math.sqrt(D);
    for (let h = 0; h < H; h++) {
      const base = h * T * D;
      for (let i = 0; i < T; i += 4) {
        const n = Math.min(4, T - i), a = base + i * D;
        const b = n > 1 ? a + D : a, c = n > 2 ? a + 2 * D : a, e = n > 3 ? a + 3 * D : a;
        const o = (h * T + i) * T;
        for (let j = 0; j < T; j++) {
          const kj = base + j * D;
          let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          for (let d = 0; d < D; d++) {
            const kv = k[kj + d];
            s0 += q[a + d] * kv; s1 += q[b + d] * kv; s2 += q[c + d] * kv; s3 += q[e + d] * kv;
          }
          out[o + j] = s0 * scale;
          if (n > 1) out[o + T + j] = s1 * scale;
          if (n > 2) out[o + 2 * T + j] = s2 * scale;
          if (n > 3) out[o + 3 * T + j] = s3 * scale;
        }
      }
    }
    for (let r = 0; r < H * T; r++) {  // softmax of each row, in place
      const row = out.subarray(r * T, (r + 1) * T);
      let max = -Infinity;
      for (let j = 0; j < T; j++) if (row[j] > max) max = row[j];
      let sum = 0;
      for (let j = 0; j < T; j++) { const x = Math.exp(row[j] - max); row[j] = x; sum += x; }
      const inv = 1 / sum;
      for (let j = 0; j < T; j++) row[j] *= inv;
    }
    return out;
  }

  /** What the neuron view shows for one query: q, k per key, q x k, q.k, softmax (float64). */
  async detail(layer, head, query) {
    const { q, k } = await this.vectors(layer);
    const { T, D } = this, base = head * T * D;
    const qv = Array.from(q.subarray(base + query * D, base + (query + 1) * D));
    const keys = [], products = [], dots = [];
    for (let j = 0; j < T; j++) {
      const kv = Array.from(k.subarray(base + j * D, base + (j + 1) * D));
      const prod = kv.map((x, d) => x * qv[d]);
      keys.push(kv); products.push(prod); dots.push(prod.reduce((a, b) => a + b, 0));
    }
    const scaled = dots.map((s) => s / Math.sqrt(D)), max = Math.max(...scaled);
    const exps = scaled.map((s) => Math.exp(s - max)), sum = exps.reduce((a, b) => a + b, 0);
    return { q: qv, keys, products, dots, scaled, softmax: exps.map((e) => e / sum) };
  }
}

// ---------------------------------------------------------------- small DOM helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value);
  }
  for (const child of children) if (child != null) el.append(child);
  return el;
}

function select(options, value, onchange, label) {
  const el = h("select", { "aria-label": label, onchange: () => onchange(el.value) });
  for (const [v, text] of options) el.append(h("option", { value: String(v), text }));
  el.value = String(value);
  return el;
}

const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));

function headColor(head, count) {
  const hue = Math.round((head * 360) / Math.max(count, 1) + 210) % 360;
  return `hsl(${hue}, 70%, 50%)`;
}

function cssVar(el, name) {
  return getComputedStyle(el).getPropertyValue(name).trim();
}

function fitCanvas(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(width * ratio));
  canvas.height = Math.max(1, Math.round(height * ratio));
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return ctx;
}

function clipText(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let cut = text;
  while (cut.length > 1 && ctx.measureText(cut + "\u2026").width > width) cut = cut.slice(0, -1);
  return cut + "\u2026";
}

const fmt = (x, digits = 3) => (Object.is(x, -0) ? 0 : x).toFixed(digits);

// ---------------------------------------------------------------- the view

class AttnlensView {
  constructor(el, source, options = {}) {
    this.el = el;
    el.dataset.startMs = performance.now().toFixed(1);
    this.data = new CaptureData(source);
    this.actions = source.actions || {};
    const meta = this.data.meta, { L, H, T } = this.data;
    this.tokens = meta.tokens;
    this.segments = meta.segment_ids;
    this.views = (options.views || ["head", "model", "neuron"]).filter((v) => v in VIEW_NAMES);
    this.state = {
      view: this.views[0], layer: clampInt(options.layer, 0, L - 1, 0), head: clampInt(options.head, 0, H - 1, 0),
      query: clampInt(options.query, 0, T - 1, firstWordToken(meta)), heads: new Set([...Array(H).keys()]),
      filter: "all", threshold: T > 64 ? 0.02 : 0, hover: null, pinned: null,
      theme: options.theme || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"),
    };
    this.drawn = { head: 0, model: 0, neuron: 0 };
    this.generation = { head: 0, model: 0, neuron: 0 };
    this.build();
    this.show(this.state.view);
  }

  // ---- layout ----
  build() {
    const meta = this.data.meta;
    this.el.classList.add("attnlens");
    this.el.replaceChildren();
    const themeButton = h("button", { class: "al-theme", type: "button", title: "Light / dark theme",
      onclick: () => this.setTheme(this.state.theme === "dark" ? "light" : "dark") });
    this.themeButton = themeButton;
    const tabs = h("div", { class: "al-tabs", role: "tablist" });
    this.tabButtons = {};
    for (const v of this.views) {
      this.tabButtons[v] = h("button", { type: "button", role: "tab", "data-view": v, text: VIEW_NAMES[v],
        onclick: () => this.show(v) });
      tabs.append(this.tabButtons[v]);
    }
    const sentences = h("div", { class: "al-sentences" },
      h("span", { class: "al-seg al-seg-a", text: "A" }), h("span", { text: meta.text_a }));
    if (meta.is_pair) sentences.append(h("span", { class: "al-seg al-seg-b", text: "B" }), h("span", { text: meta.text_b }));
    this.el.append(h("div", { class: "al-header" },
      h("div", { class: "al-title" }, h("strong", { text: "attnlens" }),
        h("span", { class: "al-model", text: ` ${meta.model_name} \u00b7 ${meta.num_layers} layers \u00d7 ${meta.num_heads} heads \u00b7 ${meta.num_tokens} tokens` }),
        themeButton),
      sentences, tabs));
    this.panels = {};
    if (this.views.includes("head")) this.buildHead();
    if (this.views.includes("model")) this.buildModel();
    if (this.views.includes("neuron")) this.buildNeuron();
    this.tooltip = h("div", { class: "al-tooltip", role: "status", hidden: "" });
    this.el.append(this.tooltip);
    this.setTheme(this.state.theme, false);
  }

  layerSelect(onchange) {
    return select([...Array(this.data.L).keys()].map((l) => [l, `Layer ${l}`]), this.state.layer, onchange, "Layer");
  }

  filterSelect() {
    if (!this.data.meta.is_pair) return null;
    return h("label", {}, "Pairs ", select(FILTERS, this.state.filter, (v) => this.setState({ filter: v }), "Sentence filter"));
  }

  buildHead() {
    const { H } = this.data;
    this.headLayer = this.layerSelect((v) => this.setState({ layer: +v }));
    this.headBlocks = h("div", { class: "al-heads", title: "Click: show / hide a head. Double-click: only this head." });
    for (let head = 0; head < H; head++) {
      const block = h("button", { type: "button", class: "al-head", "data-head": String(head), title: `head ${head}`,
        style: `background:${headColor(head, H)}`, text: String(head) });
      let timer = null;
      block.addEventListener("click", () => {
        clearTimeout(timer);
        timer = setTimeout(() => this.toggleHead(head), 220);
      });
      block.addEventListener("dblclick", () => { clearTimeout(timer); this.soloHead(head); });
      this.headBlocks.append(block);
    }
    const threshold = h("input", { type: "range", min: "0", max: "0.5", step: "0.01", value: String(this.state.threshold),
      "aria-label": "Hide lines below this weight" });
    const thresholdText = h("span", { class: "al-num", text: fmt(this.state.threshold, 2) });
    threshold.addEventListener("input", () => { thresholdText.textContent = fmt(+threshold.value, 2); this.setState({ threshold: +threshold.value }); });
    this.headInfo = h("div", { class: "al-info" });
    this.headCanvas = h("canvas", { class: "al-head-canvas" });
    this.headCanvas.addEventListener("mousemove", (e) => this.headPointer(e, false));
    this.headCanvas.addEventListener("click", (e) => this.headPointer(e, true));
    this.headCanvas.addEventListener("mouseleave", () => { if (this.state.hover) this.setState({ hover: null }); });
    const panel = h("section", { class: "al-panel", "data-view": "head" },
      h("div", { class: "al-controls" }, h("label", {}, this.headLayer), this.filterSelect(),
        h("label", {}, "Hide below ", threshold, thresholdText), this.headBlocks),
      this.headInfo, h("div", { class: "al-scroll" }, this.headCanvas));
    this.panels.head = panel;
    this.el.append(panel);
  }

  buildModel() {
    this.modelCanvas = h("canvas", { class: "al-model-canvas" });
    this.modelCanvas.addEventListener("click", (e) => {
      const hit = this.modelHit(e);
      if (!hit) return;
      this.state.heads = new Set([hit.head]);
      this.setState({ layer: hit.layer, head: hit.head });
      this.show(this.views.includes("head") ? "head" : "neuron");
    });
    this.modelCanvas.addEventListener("mousemove", (e) => {
      const hit = this.modelHit(e);
      this.showTooltip(e, hit ? `layer ${hit.layer} head ${hit.head} \u2014 click to open` : null, hit ? { layer: hit.layer, head: hit.head } : {});
    });
    this.modelCanvas.addEventListener("mouseleave", () => this.hideTooltip());
    const panel = h("section", { class: "al-panel", "data-view": "model" },
      h("div", { class: "al-controls" }, this.filterSelect(),
        h("span", { class: "al-legend-text", text: "Each cell: one head, queries down, keys across; stronger colour = more attention (\u221aweight of the block maximum)." })),
      h("div", { class: "al-scroll" }, this.modelCanvas));
    this.panels.model = panel;
    this.el.append(panel);
  }

  buildNeuron() {
    const { H, T } = this.data;
    this.neuronLayer = this.layerSelect((v) => this.setState({ layer: +v }));
    this.neuronHead = select([...Array(H).keys()].map((x) => [x, `Head ${x}`]), this.state.head, (v) => this.setState({ head: +v }), "Head");
    this.neuronQuery = select([...Array(T).keys()].map((i) => [i, `${i}: ${this.tokens[i]}`]), this.state.query,
      (v) => this.setState({ query: +v }), "Query token");
    this.neuronLegend = h("div", { class: "al-legend" });
    this.neuronCanvas = h("canvas", { class: "al-neuron-canvas" });
    this.neuronCanvas.addEventListener("mousemove", (e) => this.neuronPointer(e));
    this.neuronCanvas.addEventListener("mouseleave", () => this.hideTooltip());
    this.neuronCanvas.addEventListener("click", (e) => {  // click a key's label: make it the query
      const lay = this.nlay, rect = this.neuronCanvas.getBoundingClientRect();
      if (!lay || e.clientX - rect.left > lay.label) return;
      const j = Math.floor((e.clientY - rect.top - this.neuronTop) / lay.row);
      if (j >= 0 && j < this.data.T && j !== this.state.query) this.setState({ query: j });
    });
    const panel = h("section", { class: "al-panel", "data-view": "neuron" },
      h("div", { class: "al-controls" }, h("label", {}, this.neuronLayer), h("label", {}, this.neuronHead),
        h("label", {}, "Query ", this.neuronQuery)),
      this.neuronLegend, h("div", { class: "al-scroll" }, this.neuronCanvas));
    this.panels.neuron = panel;
    this.el.append(panel);
  }

  // ---- state ----
  setState(patch) {
    Object.assign(this.state, patch);
    this.syncControls();
    this.redraw();
  }

  syncControls() {
    const s = this.state;
    if (this.headLayer) this.headLayer.value = String(s.layer);
    if (this.neuronLayer) { this.neuronLayer.value = String(s.layer); this.neuronHead.value = String(s.head); this.neuronQuery.value = String(s.query); }
    for (const sel of this.el.querySelectorAll('select[aria-label="Sentence filter"]')) sel.value = s.filter;
    if (this.headBlocks) for (const b of this.headBlocks.children) b.classList.toggle("al-off", !s.heads.has(+b.dataset.head));
    for (const [v, b] of Object.entries(this.tabButtons)) b.setAttribute("aria-selected", String(v === s.view));
    for (const [v, p] of Object.entries(this.panels)) p.hidden = v !== s.view;
    const d = this.el.dataset;
    d.view = s.view; d.layer = s.layer; d.head = s.head; d.query = s.query; d.filter = s.filter;
    d.heads = [...s.heads].sort((a, b) => a - b).join(",");
    d.selected = this.selection() ? `${this.selection().side}:${this.selection().index}` : "";
    d.theme = s.theme;
  }

  show(view) {
    this.state.view = view;
    this.syncControls();
    this.redraw();
  }

  setTheme(theme, redraw = true) {
    this.state.theme = theme;
    this.el.dataset.theme = theme;
    this.themeButton.textContent = theme === "dark" ? "\u263e dark" : "\u2600 light";
    if (redraw) { this.modelKey = null; this.setState({}); }
    else this.syncControls();
  }

  toggleHead(head) {
    const heads = new Set(this.state.heads);
    if (heads.has(head)) heads.delete(head); else heads.add(head);
    this.setState({ heads });
  }

  soloHead(head) {
    const heads = this.state.heads.size === 1 && this.state.heads.has(head) ? new Set([...Array(this.data.H).keys()]) : new Set([head]);
    this.setState({ heads, head });
  }

  selection() { return this.state.pinned || this.state.hover; }

  redraw() {
    const v = this.state.view;
    const task = v === "head" ? this.drawHead() : v === "model" ? this.drawModel() : this.drawNeuron();
    task.catch((err) => this.fail(err));
  }

  fail(err) {
    const box = h("div", { class: "al-error", role: "alert", text: `attnlens: ${err && err.message ? err.message : err}` });
    this.el.append(box);
    throw err;
  }

  markDrawn(view) {
    this.drawn[view] += 1;
    this.el.dataset[`${view}Drawn`] = String(this.drawn[view]);
    if (this.drawn[view] === 1) this.el.dataset[`${view}DrawnMs`] = performance.now().toFixed(1);  // since navigation start
    this.el.dispatchEvent(new CustomEvent("attnlens:drawn", { detail: { view } }));
  }

  // ---- which pairs a filter keeps ----
  allowed(which) {
    const f = this.state.filter, seg = this.segments;
    if (f === "all") return seg.map(() => true);
    const want = which === "query" ? f[0] : f[1];
    return seg.map((s) => (s === 0 ? "A" : "B") === want);
  }

  // ---- head view ----
  headLayout() {
    const { T } = this.data;
    const ctx = this.headCanvas.getContext("2d");
    ctx.font = FONT;
    const widest = Math.max(...this.tokens.map((t) => ctx.measureText(t).width));
    const col = Math.min(Math.ceil(widest) + 10, 170);
    const row = T > 200 ? 13 : T > 64 ? 15 : 20;
    const gap = T > 200 ? 220 : 160;
    return { col, row, gap, top: 8, left: 4, xl: 4 + col, xr: 4 + col + gap, width: 8 + 2 * col + gap, height: 16 + T * row };
  }

  headPointer(event, isClick) {
    const lay = this.layout;
    if (!lay) return;
    const rect = this.headCanvas.getBoundingClientRect();
    const x = event.clientX - rect.left, y = event.clientY - rect.top;
    const index = Math.floor((y - lay.top) / lay.row);
    let hit = null;
    if (index >= 0 && index < this.data.T) {
      if (x < lay.xl + 4) hit = { side: "query", index };
      else if (x > lay.xr - 4) hit = { side: "key", index };
    }
    if (isClick) {
      const same = hit && this.state.pinned && this.state.pinned.side === hit.side && this.state.pinned.index === hit.index;
      this.setState({ pinned: same ? null : hit, query: hit && hit.side === "query" ? hit.index : this.state.query });
    } else {
      const cur = this.state.hover;
      if ((cur && hit && cur.side === hit.side && cur.index === hit.index) || (!cur && !hit)) return;
      this.setState({ hover: hit });
    }
  }

  async drawHead() {
    const gen = ++this.generation.head;
    const { T, H } = this.data, s = this.state;
    const t0 = performance.now();
    const att = await this.data.attention(s.layer);
    this.el.dataset.headComputeMs = (performance.now() - t0).toFixed(1);
    if (gen !== this.generation.head) return;
    const lay = (this.layout = this.headLayout());
    const ctx = fitCanvas(this.headCanvas, lay.width, lay.height);
    const fg = cssVar(this.el, "--al-fg"), muted = cssVar(this.el, "--al-muted"), hl = cssVar(this.el, "--al-highlight");
    ctx.font = FONT;
    ctx.textBaseline = "middle";
    const rowsOk = this.allowed("query"), colsOk = this.allowed("key");
    const sel = this.selection();
    const heads = [...s.heads].sort((a, b) => a - b);
    const yOf = (i) => lay.top + i * lay.row + lay.row / 2;

    // lines, batched per head and opacity step (opacity = weight)
    const steps = 40;  // opacity in steps of 1/40; weights below half a step are not drawn
    ctx.lineWidth = T > 200 ? 1 : 2;
    let lines = 0;
    for (const head of heads) {
      const paths = Array.from({ length: steps + 1 }, () => new Path2D());
      const used = new Uint8Array(steps + 1);
      for (let i = 0; i < T; i++) {
        if (!rowsOk[i] || (sel && sel.side === "query" && sel.index !== i)) continue;
        const off = (head * T + i) * T;
        for (let j = 0; j < T; j++) {
          if (!colsOk[j] || (sel && sel.side === "key" && sel.index !== j)) continue;
          const w = att[off + j];
          if (w < s.threshold) continue;
          const bucket = Math.round(w * steps);
          if (bucket === 0) continue;
          paths[bucket].moveTo(lay.xl, yOf(i));
          paths[bucket].lineTo(lay.xr, yOf(j));
          used[bucket] = 1;
          lines++;
        }
      }
      ctx.strokeStyle = headColor(head, H);
      for (let b = 1; b <= steps; b++) if (used[b]) { ctx.globalAlpha = b / steps; ctx.stroke(paths[b]); }
    }
    ctx.globalAlpha = 1;

    // with a selected query: the weight each visible head gives each key, as stripes
    if (sel && sel.side === "query" && heads.length) {
      const stripe = lay.col / heads.length;
      heads.forEach((head, n) => {
        ctx.fillStyle = headColor(head, H);
        const off = (head * T + sel.index) * T;
        for (let j = 0; j < T; j++) {
          if (!colsOk[j]) continue;
          ctx.globalAlpha = Math.min(1, att[off + j]);
          ctx.fillRect(lay.xr + 2 + n * stripe, lay.top + j * lay.row + 1, stripe, lay.row - 2);
        }
      });
      ctx.globalAlpha = 1;
    }

    // tokens
    for (let i = 0; i < T; i++) {
      const text = clipText(ctx, this.tokens[i], lay.col - 8);
      const selectedLeft = sel && sel.side === "query" && sel.index === i;
      const selectedRight = sel && sel.side === "key" && sel.index === i;
      if (selectedLeft) { ctx.fillStyle = hl; ctx.fillRect(lay.left, lay.top + i * lay.row, lay.col, lay.row); }
      if (selectedRight) { ctx.fillStyle = hl; ctx.fillRect(lay.xr, lay.top + i * lay.row, lay.col, lay.row); }
      ctx.fillStyle = rowsOk[i] ? fg : muted;
      ctx.textAlign = "right";
      ctx.fillText(text, lay.xl - 4, yOf(i));
      ctx.fillStyle = colsOk[i] ? fg : muted;
      ctx.textAlign = "left";
      ctx.fillText(text, lay.xr + 4, yOf(i));
    }
    this.headCanvas.dataset.lines = String(lines);
    this.renderHeadInfo(sel);
    this.markDrawn("head");
  }

  renderHeadInfo(sel) {
    const info = [];
    if (sel) {
      const token = this.tokens[sel.index];
      info.push(h("span", { text: `${sel.side === "query" ? "Attention from" : "Attention to"} #${sel.index} \u201c${token}\u201d${this.state.pinned ? " (pinned; click again to release)" : ""}` }));
      if (typeof this.actions.maskToken === "function") {
        info.push(h("button", { type: "button", class: "al-mask", text: "Mask this token",
          onclick: () => this.maskToken(sel.index) }));
      }
    } else {
      info.push(h("span", { class: "al-muted", text: "Hover a token to see only its attention; click to pin it. Left: queries, right: keys." }));
    }
    if (this.maskResult) info.push(this.maskResult);
    this.headInfo.replaceChildren(...info);
  }

  async maskToken(index) {
    const box = h("div", { class: "al-mask-result", text: `Predicting #${index}\u2026` });
    this.maskResult = box;
    this.renderHeadInfo(this.selection());
    try {
      const result = await this.actions.maskToken(index);
      box.replaceChildren(h("strong", { text: result.title || `Predictions for #${index} \u201c${this.tokens[index]}\u201d: ` }));
      for (const item of result.items || []) box.append(h("span", { class: "al-pred", text: `${item.label} ${fmt(+item.value, 3)}` }));
    } catch (err) {
      box.textContent = `Could not predict: ${err && err.message ? err.message : err}`;
    }
  }

  // ---- model view ----
  modelGeometry() {
    const { L, H } = this.data;
    const avail = Math.max(400, (this.el.clientWidth || 900) - 60);
    const cell = Math.max(40, Math.min(96, Math.floor(avail / H) - 6));
    return { cell, pad: 6, left: 34, top: 18, width: 34 + H * (cell + 6), height: 18 + L * (cell + 6) };
  }

  modelHit(event) {
    const g = this.modelGeo;
    if (!g) return null;
    const rect = this.modelCanvas.getBoundingClientRect();
    const x = event.clientX - rect.left - g.left, y = event.clientY - rect.top - g.top;
    const head = Math.floor(x / (g.cell + g.pad)), layer = Math.floor(y / (g.cell + g.pad));
    if (x < 0 || y < 0 || head >= this.data.H || layer >= this.data.L) return null;
    if (x - head * (g.cell + g.pad) > g.cell || y - layer * (g.cell + g.pad) > g.cell) return null;
    return { layer, head };
  }

  /** Uint8Array [head, n, n] of sqrt-coded block maxima for one layer under the current filter. */
  async thumbs(layer) {
    const filter = this.state.filter;
    if (filter === "all") return this.data.buffer(`thumbs/${layer}`);
    const { H, T } = this.data, n = this.data.meta.thumb_size;
    const att = await this.data.attention(layer);
    const rowsOk = this.allowed("query"), colsOk = this.allowed("key"), out = new Uint8Array(H * n * n);
    const edges = Array.from({ length: n + 1 }, (_, k) => Math.floor((k * T) / n));
    for (let head = 0; head < H; head++) {
      for (let by = 0; by < n; by++) {
        for (let bx = 0; bx < n; bx++) {
          let m = -1;
          for (let i = edges[by]; i < edges[by + 1]; i++) {
            if (!rowsOk[i]) continue;
            const off = (head * T + i) * T;
            for (let j = edges[bx]; j < edges[bx + 1]; j++) if (colsOk[j] && att[off + j] > m) m = att[off + j];
          }
          out[(head * n + by) * n + bx] = m < 0 ? 0 : Math.round(Math.sqrt(m) * 255);
        }
      }
    }
    return out;
  }

  async drawModel() {
    const key = `${this.state.filter}/${this.state.theme}/${this.el.clientWidth}`;
    if (this.modelKey === key) { this.drawModelMarks(); return; }
    const gen = ++this.generation.model;
    const { L, H } = this.data, n = this.data.meta.thumb_size;
    const g = (this.modelGeo = this.modelGeometry());
    const ctx = fitCanvas(this.modelCanvas, g.width, g.height);
    const fg = cssVar(this.el, "--al-fg"), bg = parseColor(cssVar(this.el, "--al-cell-bg"));
    const ink = cssVar(this.el, "--al-ink-rgb").split(",").map(Number);
    ctx.font = FONT; ctx.fillStyle = fg; ctx.textBaseline = "middle"; ctx.textAlign = "center";
    for (let head = 0; head < H; head++) ctx.fillText(`H${head}`, g.left + head * (g.cell + g.pad) + g.cell / 2, g.top / 2);
    ctx.textAlign = "right";
    for (let layer = 0; layer < L; layer++) ctx.fillText(`L${layer}`, g.left - 6, g.top + layer * (g.cell + g.pad) + g.cell / 2);
    const tile = document.createElement("canvas");
    tile.width = n; tile.height = n;
    const tctx = tile.getContext("2d"), image = tctx.createImageData(n, n), pix = image.data;
    const palette = new Uint8ClampedArray(256 * 3);
    for (let v = 0; v < 256; v++) for (let c = 0; c < 3; c++) palette[v * 3 + c] = bg[c] + ((ink[c] - bg[c]) * v) / 255;
    ctx.imageSmoothingEnabled = false;
    for (let layer = 0; layer < L; layer++) {
      const codes = await this.thumbs(layer);
      if (gen !== this.generation.model) return;
      for (let head = 0; head < H; head++) {
        const off = head * n * n;
        for (let p = 0; p < n * n; p++) {
          const v = codes[off + p];
          pix[p * 4] = palette[v * 3]; pix[p * 4 + 1] = palette[v * 3 + 1]; pix[p * 4 + 2] = palette[v * 3 + 2]; pix[p * 4 + 3] = 255;
        }
        tctx.putImageData(image, 0, 0);
        ctx.drawImage(tile, g.left + head * (g.cell + g.pad), g.top + layer * (g.cell + g.pad), g.cell, g.cell);
      }
      if (this.state.filter !== "all") { await nextFrame(); if (gen !== this.generation.model) return; }
    }
    this.modelKey = key;
    this.modelBase = ctx.getImageData(0, 0, this.modelCanvas.width, this.modelCanvas.height);
    this.drawModelMarks();
  }

  drawModelMarks() {
    const g = this.modelGeo, ctx = this.modelCanvas.getContext("2d");
    ctx.putImageData(this.modelBase, 0, 0);
    ctx.strokeStyle = cssVar(this.el, "--al-accent");
    ctx.lineWidth = 2;
    ctx.strokeRect(g.left + this.state.head * (g.cell + g.pad) - 2, g.top + this.state.layer * (g.cell + g.pad) - 2, g.cell + 4, g.cell + 4);
    this.markDrawn("model");
  }

  // ---- neuron view ----
  neuronLayout() {
    const { D } = this.data;
    const cell = D <= 32 ? 9 : D <= 64 ? 6 : 3;
    const ctx = this.neuronCanvas.getContext("2d");
    ctx.font = FONT;
    const label = Math.min(Math.ceil(Math.max(...this.tokens.map((t) => ctx.measureText(t).width))) + 40, 200);
    const row = this.data.T > 200 ? 13 : 16;
    const kx = label + 8, px = kx + D * cell + 24, dotx = px + D * cell + 24, softx = dotx + 80;
    return { cell, row, label, kx, px, dotx, softx, top: 40, width: softx + 130, height: 40 + 8 + (this.data.T + 1) * row };
  }

  async drawNeuron() {
    const gen = ++this.generation.neuron;
    const s = this.state, { T, D } = this.data;
    const detail = await this.data.detail(s.layer, s.head, s.query);
    if (gen !== this.generation.neuron) return;
    this.detail = detail;
    const lay = (this.nlay = this.neuronLayout());
    const ctx = fitCanvas(this.neuronCanvas, lay.width, lay.height);
    const fg = cssVar(this.el, "--al-fg"), muted = cssVar(this.el, "--al-muted"), hl = cssVar(this.el, "--al-highlight");
    const pos = cssVar(this.el, "--al-pos-rgb").split(",").map(Number), neg = cssVar(this.el, "--al-neg-rgb").split(",").map(Number);
    const bg = parseColor(cssVar(this.el, "--al-bg"));
    const maxAbs = (rows) => Math.max(1e-12, ...rows.map((r) => Math.max(...r.map(Math.abs))));
    const vecMax = Math.max(maxAbs([detail.q]), maxAbs(detail.keys)), prodMax = maxAbs(detail.products);
    this.neuronScale = { vecMax, prodMax };
    const color = (v, max) => {
      const a = Math.min(1, Math.abs(v) / max), c = v >= 0 ? pos : neg;
      return `rgb(${Math.round(bg[0] + (c[0] - bg[0]) * a)},${Math.round(bg[1] + (c[1] - bg[1]) * a)},${Math.round(bg[2] + (c[2] - bg[2]) * a)})`;
    };
    ctx.font = FONT; ctx.textBaseline = "middle";
    ctx.fillStyle = muted; ctx.textAlign = "left";
    ctx.fillText("k (key)", lay.kx, 12); ctx.fillText("q \u00d7 k", lay.px, 12);
    ctx.fillText("q \u00b7 k", lay.dotx, 12); ctx.fillText("softmax(q\u00b7k/\u221ad)", lay.softx, 12);
    // the query vector, above the key columns
    const qy = lay.top - 14;
    ctx.fillStyle = fg; ctx.textAlign = "right";
    ctx.fillText(clipText(ctx, `q: ${this.tokens[s.query]}`, lay.label), lay.label, qy + lay.row / 2);
    detail.q.forEach((v, d) => { ctx.fillStyle = color(v, vecMax); ctx.fillRect(lay.kx + d * lay.cell, qy, lay.cell - 1, lay.row - 2); });
    const rowsOk = this.allowed("key");
    const qAllowed = this.allowed("query")[s.query];
    const top = lay.top + 8;
    for (let j = 0; j < T; j++) {
      const y = top + j * lay.row;
      if (j === s.query) { ctx.fillStyle = hl; ctx.fillRect(0, y, lay.label + 2, lay.row); }
      ctx.fillStyle = rowsOk[j] && qAllowed ? fg : muted; ctx.textAlign = "right";
      ctx.fillText(clipText(ctx, `${j} ${this.tokens[j]}`, lay.label - 2), lay.label, y + lay.row / 2);
      const kv = detail.keys[j], pv = detail.products[j];
      for (let d = 0; d < D; d++) {
        ctx.fillStyle = color(kv[d], vecMax); ctx.fillRect(lay.kx + d * lay.cell, y + 1, lay.cell - 1, lay.row - 2);
        ctx.fillStyle = color(pv[d], prodMax); ctx.fillRect(lay.px + d * lay.cell, y + 1, lay.cell - 1, lay.row - 2);
      }
      ctx.fillStyle = color(detail.dots[j], Math.max(...detail.dots.map(Math.abs)) || 1);
      ctx.fillRect(lay.dotx, y + 1, 60, lay.row - 2);
      ctx.fillStyle = fg; ctx.textAlign = "right";
      ctx.fillText(fmt(detail.dots[j], 2), lay.dotx + 58, y + lay.row / 2);
      ctx.fillStyle = `rgba(${pos.join(",")},0.85)`;
      ctx.fillRect(lay.softx, y + 2, 60 * detail.softmax[j], lay.row - 4);
      ctx.fillStyle = fg; ctx.textAlign = "left";
      ctx.fillText(fmt(detail.softmax[j], 3), lay.softx + 64, y + lay.row / 2);
    }
    this.neuronTop = top;
    this.renderLegend(vecMax, prodMax);
    this.markDrawn("neuron");
  }

  renderLegend(vecMax, prodMax) {
    const item = (label, max) => h("span", { class: "al-legend-item" },
      h("span", { class: "al-num", text: fmt(-max, 2) }), h("span", { class: "al-gradient" }),
      h("span", { class: "al-num", text: fmt(max, 2) }), h("span", { text: ` ${label}` }));
    this.neuronLegend.replaceChildren(
      h("span", { text: "Orange negative, blue positive; intensity = magnitude. Hover a cell for its value; click a token to make it the query." }),
      item("q, k", vecMax), item("q \u00d7 k", prodMax));
  }

  neuronPointer(event) {
    const lay = this.nlay, d = this.detail;
    if (!lay || !d) return;
    const rect = this.neuronCanvas.getBoundingClientRect();
    const x = event.clientX - rect.left, y = event.clientY - rect.top;
    const qy = lay.top - 14, { D, T } = this.data, s = this.state;
    const dimAt = (x0) => Math.floor((x - x0) / lay.cell);
    let text = null, info = {};
    if (y >= qy && y < qy + lay.row && x >= lay.kx && x < lay.kx + D * lay.cell) {
      const dim = dimAt(lay.kx);
      text = `q #${s.query} \u201c${this.tokens[s.query]}\u201d dim ${dim} = ${fmt(d.q[dim])}`;
      info = { kind: "q", row: s.query, dim, value: fmt(d.q[dim]) };
    } else {
      const j = Math.floor((y - this.neuronTop) / lay.row);
      if (j >= 0 && j < T) {
        const who = `#${j} \u201c${this.tokens[j]}\u201d`;
        if (x >= lay.kx && x < lay.kx + D * lay.cell) {
          const dim = dimAt(lay.kx);
          text = `k ${who} dim ${dim} = ${fmt(d.keys[j][dim])}`; info = { kind: "k", row: j, dim, value: fmt(d.keys[j][dim]) };
        } else if (x >= lay.px && x < lay.px + D * lay.cell) {
          const dim = dimAt(lay.px);
          text = `q \u00d7 k ${who} dim ${dim} = ${fmt(d.q[dim])} \u00d7 ${fmt(d.keys[j][dim])} = ${fmt(d.products[j][dim])}`;
          info = { kind: "qk", row: j, dim, value: fmt(d.products[j][dim]) };
        } else if (x >= lay.dotx && x < lay.dotx + 60) {
          text = `q \u00b7 k ${who} = ${fmt(d.dots[j])}; / \u221a${D} = ${fmt(d.scaled[j])}`; info = { kind: "dot", row: j, value: fmt(d.dots[j]) };
        } else if (x >= lay.softx && x < lay.softx + 120) {
          text = `softmax ${who} = ${fmt(d.softmax[j])}`; info = { kind: "softmax", row: j, value: fmt(d.softmax[j]) };
        }
      }
    }
    this.showTooltip(event, text, info);
  }

  /** Where a neuron-view cell is, in canvas pixels (for tests and hosts). */
  neuronCellCenter(kind, row, dim = 0) {
    const lay = this.nlay;
    const y = kind === "q" ? lay.top - 14 + lay.row / 2 : this.neuronTop + row * lay.row + lay.row / 2;
    const x = { q: lay.kx, k: lay.kx, qk: lay.px }[kind];
    if (x !== undefined) return { x: x + dim * lay.cell + lay.cell / 2, y };
    return { x: kind === "dot" ? lay.dotx + 30 : lay.softx + 30, y };
  }

  showTooltip(event, text, info) {
    if (!text) { this.hideTooltip(); return; }
    const t = this.tooltip;
    t.textContent = text;
    for (const key of ["kind", "row", "dim", "value", "layer", "head"]) {
      if (info[key] === undefined) delete t.dataset[key]; else t.dataset[key] = String(info[key]);
    }
    const box = this.el.getBoundingClientRect();
    t.style.left = `${event.clientX - box.left + 14}px`;
    t.style.top = `${event.clientY - box.top + 14}px`;
    t.hidden = false;
  }

  hideTooltip() { this.tooltip.hidden = true; }
}

function clampInt(value, lo, hi, fallback) {
  const v = Number.isInteger(value) ? value : fallback;
  return Math.min(hi, Math.max(lo, v));
}

function firstWordToken(meta) {
  const i = meta.special.findIndex((s) => !s);
  return i < 0 ? 0 : i;
}

function parseColor(text) {
  const m = text.match(/\d+(\.\d+)?/g);
  if (m && text.startsWith("rgb")) return m.slice(0, 3).map(Number);
  if (text.startsWith("#") && text.length === 7) return [1, 3, 5].map((i) => parseInt(text.slice(i, i + 2), 16));
  return [255, 255, 255];
}

// ---------------------------------------------------------------- entry points

/** Draw the views of `source` into `el`; returns the view (state, drawn counters). */
export function createView(el, source, options = {}) {
  const view = new AttnlensView(el, source, options);
  el.attnlens = view;
  return view;
}

/** Standalone pages: every `[data-attnlens-root]` element with inline data. */
export function bootInline(doc = document) {
  for (const root of doc.querySelectorAll("[data-attnlens-root]:not([data-attnlens-booted])")) {
    root.setAttribute("data-attnlens-booted", "");
    const mount = root.querySelector(".attnlens-mount");
    const options = JSON.parse(root.querySelector('script[type="application/json"][data-attnlens="options"]')?.textContent || "{}");
    const wanted = doc.location ? doc.location.hash.slice(1) : "";  // page.html#model opens the model view first
    const views = options.views || Object.keys(VIEW_NAMES);
    if (views.includes(wanted)) options.views = [wanted, ...views.filter((v) => v !== wanted)];
    try {
      createView(mount, sourceFromDocument(root), options);
    } catch (err) {
      mount.textContent = `attnlens: ${err.message}`;
      throw err;
    }
  }
}

/** anywidget entry point (Jupyter); the same module the standalone page inlines. */
export default {
  render({ model, el }) {
    const mount = document.createElement("div");
    el.append(mount);
    const view = createView(mount, sourceFromModel(model), JSON.parse(model.get("options") || "{}"));
    return () => { view.generation = { head: -1, model: -1, neuron: -1 }; mount.remove(); };
  },
};

if (typeof document !== "undefined" && document.querySelector("[data-attnlens-root]:not([data-attnlens-booted])")) bootInline();
