// attnlens front end, part 5 of 6: the attention-detail (neuron) view of one layer, head and
// query token: q, then per key k, q x k (per dimension), q . k and softmax(q . k / sqrt(d)). Families whose
// scores add terms to q . k (DeBERTa: content->position, position->content; MPNet: relative bias) get one
// column per term, side by side with the scaled q . k, and their total (the score the softmax takes).
// A capture without q/k (a model without an attnlens family entry) shows a message instead.

import { FONT, clipText, cssVar, fitCanvas, fmt, h, parseColor } from "./dom.js";

const TERM_LABELS = { content_to_position: "c\u2192p", position_to_content: "p\u2192c", position_bias: "bias" };
const TERM_WIDTH = 64;

/** The score columns of a detail: [] for plain q . k, else q.k scaled, each term, and the total. */
function scoreColumns(detail) {
  if (!detail.terms.length) return [];
  return [{ label: "q\u00b7k\u00b7s", name: "content", values: detail.scaled },
    ...detail.terms.map((t) => ({ label: TERM_LABELS[t.name] || t.name.slice(0, 8), name: t.name, values: t.values })),
    { label: "score", name: "score", values: detail.total }];
}

export class NeuronView {
  static title = "Neuron view";

  /** Builds the panel (this.panel) and follows `shell`'s state (see shell.js for what a view may use). */
  constructor(shell) {
    this.shell = shell;
    this.generation = 0;  // bumped per draw; a draw that finds it changed after an await gives up
    this.layout = null;  // column x positions, cell and row size of the last drawing, CSS pixels
    this.detail = null;  // the numbers drawn (CaptureData.detail)
    this.build();
    shell.subscribe((s) => {
      if (s.view === "neuron") this.draw().catch((err) => shell.fail(err));
    });
  }

  build() {
    const shell = this.shell, { H, T } = shell.data;
    if (!shell.data.hasQK) {
      this.panel = h("section", { class: "al-panel", "data-view": "neuron" },
        h("p", { class: "al-legend", "data-role": "no-qk", text: "The neuron view needs per-head queries and keys. "
          + "This model's family has no entry in attnlens's architecture table, so its capture holds the model's own "
          + "attention only (exact): the head and model views show it; explanations and value lenses are not available." }));
      return;
    }
    const layer = shell.layerSelect();
    const head = shell.stateSelect("head", [...Array(H).keys()].map((x) => [x, `Head ${x}`]), "Head");
    const query = shell.stateSelect("query", [...Array(T).keys()].map((i) => [i, `${i}: ${shell.tokens[i]}`]), "Query token");
    this.legend = h("div", { class: "al-legend" });
    this.canvas = h("canvas", { class: "al-neuron-canvas" });
    this.canvas.addEventListener("mousemove", (e) => this.pointer(e));
    this.canvas.addEventListener("mouseleave", () => shell.tooltip.hide());
    this.canvas.addEventListener("click", (e) => {  // click a key's label: make it the query
      const lay = this.layout, rect = this.canvas.getBoundingClientRect();
      if (!lay || e.clientX - rect.left > lay.label) return;
      const j = Math.floor((e.clientY - rect.top - lay.rows) / lay.row);
      if (j >= 0 && j < shell.data.T && j !== shell.state.query) shell.setState({ query: j });
    });
    this.panel = h("section", { class: "al-panel", "data-view": "neuron" },
      h("div", { class: "al-controls" }, h("label", {}, layer), h("label", {}, head),
        h("label", {}, "Query ", query)),
      this.legend, h("div", { class: "al-scroll" }, this.canvas));
  }

  measure() {
    const { D, T } = this.shell.data;
    const cell = D <= 32 ? 9 : D <= 64 ? 6 : 3;
    const ctx = this.canvas.getContext("2d");
    ctx.font = FONT;
    const label = Math.min(Math.ceil(Math.max(...this.shell.tokens.map((t) => ctx.measureText(t).width))) + 40, 200);
    const row = T > 200 ? 13 : 16;
    const terms = (this.shell.data.meta.score_terms || []).length, cols = terms ? terms + 2 : 0;
    const kx = label + 8, px = kx + D * cell + 24, dotx = px + D * cell + 24, termx = dotx + 80;
    const softx = termx + cols * TERM_WIDTH + (cols ? 10 : 0);
    // top: the key rows' header; rows: y of the first key row (q sits at top - 14)
    const norms = (this.shell.data.meta.lenses || []).includes("value_norm") ? 130 : 0;  // the ||f_h(x_j)|| column
    return { cell, row, label, kx, px, dotx, termx, softx, normx: softx + 120, top: 40, rows: 48,
      width: softx + 130 + norms, height: 40 + 8 + (T + 1) * row };
  }

  async draw() {
    const gen = ++this.generation;
    if (!this.shell.data.hasQK) { this.shell.markDrawn("neuron"); return; }
    const shell = this.shell, s = shell.state, { T, D } = shell.data, tokens = shell.tokens, el = shell.el;
    const [detail, norms] = await Promise.all([shell.data.detail(s.layer, s.head, s.query),
      shell.data.valueNorms(s.layer)]);
    if (gen !== this.generation) return;
    const norm = norms ? Array.from(norms.subarray(s.head * T, (s.head + 1) * T)) : null;  // ||f_h(x_j)|| per key
    const normMax = norm ? Math.max(1e-12, ...norm) : 1;
    this.detail = detail;
    const lay = (this.layout = this.measure());
    const ctx = fitCanvas(this.canvas, lay.width, lay.height);
    const fg = cssVar(el, "--al-fg"), muted = cssVar(el, "--al-muted"), hl = cssVar(el, "--al-highlight");
    const pos = cssVar(el, "--al-pos-rgb").split(",").map(Number), neg = cssVar(el, "--al-neg-rgb").split(",").map(Number);
    const bg = parseColor(cssVar(el, "--al-bg"));
    const maxAbs = (rows) => Math.max(1e-12, ...rows.map((r) => Math.max(...r.map(Math.abs))));
    const vecMax = Math.max(maxAbs([detail.q]), maxAbs(detail.keys)), prodMax = maxAbs(detail.products);
    const color = (v, max) => {  // blue (positive) or orange (negative) over the background, by |v| / max
      const a = Math.min(1, Math.abs(v) / max), c = v >= 0 ? pos : neg;
      return `rgb(${Math.round(bg[0] + (c[0] - bg[0]) * a)},${Math.round(bg[1] + (c[1] - bg[1]) * a)},${Math.round(bg[2] + (c[2] - bg[2]) * a)})`;
    };
    ctx.font = FONT; ctx.textBaseline = "middle";
    ctx.fillStyle = muted; ctx.textAlign = "left";
    ctx.fillText("k (key)", lay.kx, 12); ctx.fillText("q \u00d7 k", lay.px, 12);
    const columns = scoreColumns(detail);
    ctx.fillText("q \u00b7 k", lay.dotx, 12);
    columns.forEach((c, i) => ctx.fillText(c.label, lay.termx + i * TERM_WIDTH, 12));
    ctx.fillText(columns.length ? "softmax(score)" : "softmax(q\u00b7k/\u221ad)", lay.softx, 12);
    const termMax = Math.max(1e-12, ...columns.flatMap((c) => c.values.map(Math.abs)));
    if (norm) ctx.fillText("\u2016f(x)\u2016 (value norm)", lay.normx, 12);
    // the query vector, above the key columns
    const qy = lay.top - 14;
    ctx.fillStyle = fg; ctx.textAlign = "right";
    ctx.fillText(clipText(ctx, `q: ${tokens[s.query]}`, lay.label), lay.label, qy + lay.row / 2);
    detail.q.forEach((v, d) => { ctx.fillStyle = color(v, vecMax); ctx.fillRect(lay.kx + d * lay.cell, qy, lay.cell - 1, lay.row - 2); });
    const rowsOk = shell.allowed("key");
    const qAllowed = shell.allowed("query")[s.query];
    for (let j = 0; j < T; j++) {
      const y = lay.rows + j * lay.row;
      if (j === s.query) { ctx.fillStyle = hl; ctx.fillRect(0, y, lay.label + 2, lay.row); }
      ctx.fillStyle = rowsOk[j] && qAllowed ? fg : muted; ctx.textAlign = "right";
      ctx.fillText(clipText(ctx, `${j} ${tokens[j]}`, lay.label - 2), lay.label, y + lay.row / 2);
      const kv = detail.keys[j], pv = detail.products[j];
      for (let d = 0; d < D; d++) {
        ctx.fillStyle = color(kv[d], vecMax); ctx.fillRect(lay.kx + d * lay.cell, y + 1, lay.cell - 1, lay.row - 2);
        ctx.fillStyle = color(pv[d], prodMax); ctx.fillRect(lay.px + d * lay.cell, y + 1, lay.cell - 1, lay.row - 2);
      }
      ctx.fillStyle = color(detail.dots[j], Math.max(...detail.dots.map(Math.abs)) || 1);
      ctx.fillRect(lay.dotx, y + 1, 60, lay.row - 2);
      ctx.fillStyle = fg; ctx.textAlign = "right";
      ctx.fillText(fmt(detail.dots[j], 2), lay.dotx + 58, y + lay.row / 2);
      columns.forEach((c, i) => {
        const x = lay.termx + i * TERM_WIDTH;
        ctx.fillStyle = color(c.values[j], termMax); ctx.fillRect(x, y + 1, TERM_WIDTH - 4, lay.row - 2);
        ctx.fillStyle = fg; ctx.textAlign = "right"; ctx.fillText(fmt(c.values[j], 2), x + TERM_WIDTH - 6, y + lay.row / 2);
      });
      ctx.fillStyle = `rgba(${pos.join(",")},0.85)`;
      ctx.fillRect(lay.softx, y + 2, 60 * detail.softmax[j], lay.row - 4);
      ctx.fillStyle = fg; ctx.textAlign = "left";
      ctx.fillText(fmt(detail.softmax[j], 3), lay.softx + 64, y + lay.row / 2);
      if (norm) {  // what this key would pass on at full weight: a heavy weight on a small norm moves little
        ctx.fillStyle = `rgba(${neg.join(",")},0.75)`;
        ctx.fillRect(lay.normx, y + 2, 60 * norm[j] / normMax, lay.row - 4);
        ctx.fillStyle = fg; ctx.fillText(fmt(norm[j], 2), lay.normx + 64, y + lay.row / 2);
      }
    }
    this.renderLegend(vecMax, prodMax);
    shell.markDrawn("neuron");
  }

  renderLegend(vecMax, prodMax) {
    const item = (label, max) => h("span", { class: "al-legend-item" },
      h("span", { class: "al-num", text: fmt(-max, 2) }), h("span", { class: "al-gradient" }),
      h("span", { class: "al-num", text: fmt(max, 2) }), h("span", { text: ` ${label}` }));
    this.legend.replaceChildren(
      h("span", { text: "Orange negative, blue positive; intensity = magnitude. Hover a cell for its value; click a token to make it the query." }),
      item("q, k", vecMax), item("q \u00d7 k", prodMax));
  }

  /** Hover: the value under the pointer in the tooltip (text, and data-kind/row/dim/value). */
  pointer(event) {
    const lay = this.layout, d = this.detail, shell = this.shell, tokens = shell.tokens;
    if (!lay || !d) return;
    const rect = this.canvas.getBoundingClientRect();
    const x = event.clientX - rect.left, y = event.clientY - rect.top;
    const qy = lay.top - 14, { D, T } = shell.data, s = shell.state;
    const dimAt = (x0) => Math.floor((x - x0) / lay.cell);
    let text = null, info = {};
    if (y >= qy && y < qy + lay.row && x >= lay.kx && x < lay.kx + D * lay.cell) {
      const dim = dimAt(lay.kx);
      text = `q #${s.query} \u201c${tokens[s.query]}\u201d dim ${dim} = ${fmt(d.q[dim])}`;
      info = { kind: "q", row: s.query, dim, value: fmt(d.q[dim]) };
    } else {
      const j = Math.floor((y - lay.rows) / lay.row);
      if (j >= 0 && j < T) {
        const who = `#${j} \u201c${tokens[j]}\u201d`;
        if (x >= lay.kx && x < lay.kx + D * lay.cell) {
          const dim = dimAt(lay.kx);
          text = `k ${who} dim ${dim} = ${fmt(d.keys[j][dim])}`; info = { kind: "k", row: j, dim, value: fmt(d.keys[j][dim]) };
        } else if (x >= lay.px && x < lay.px + D * lay.cell) {
          const dim = dimAt(lay.px);
          text = `q \u00d7 k ${who} dim ${dim} = ${fmt(d.q[dim])} \u00d7 ${fmt(d.keys[j][dim])} = ${fmt(d.products[j][dim])}`;
          info = { kind: "qk", row: j, dim, value: fmt(d.products[j][dim]) };
        } else if (x >= lay.dotx && x < lay.dotx + 60) {
          text = `q \u00b7 k ${who} = ${fmt(d.dots[j])}; ${d.terms.length ? `\u00d7 ${fmt(d.scale)}` : `/ \u221a${D}`} = ${fmt(d.scaled[j])}`; info = { kind: "dot", row: j, value: fmt(d.dots[j]) };
        } else if (x >= lay.termx && x < lay.termx + scoreColumns(d).length * TERM_WIDTH) {
          const column = Math.floor((x - lay.termx) / TERM_WIDTH), c = scoreColumns(d)[column];
          text = `${c.name} ${who} = ${fmt(c.values[j])}` + (c.name === "content" ? ` (q \u00b7 k \u00d7 ${fmt(d.scale)})` : "");
          info = { kind: "term", row: j, dim: column, value: fmt(c.values[j]) };
        } else if (x >= lay.softx && x < lay.softx + 120) {
          text = `softmax ${who} = ${fmt(d.softmax[j])}`; info = { kind: "softmax", row: j, value: fmt(d.softmax[j]) };
        }
      }
    }
    shell.tooltip.show(event, text, info);
  }

  /** Where a cell is, in canvas CSS pixels: kind "q", "k", "qk" (with dim), "dot", "term" (dim = score column:
   *  0 the scaled q . k, then each term, then the total) or "softmax" of key row `row`. */
  cellCenter(kind, row, dim = 0) {
    const lay = this.layout;
    const y = kind === "q" ? lay.top - 14 + lay.row / 2 : lay.rows + row * lay.row + lay.row / 2;
    if (kind === "term") return { x: lay.termx + dim * TERM_WIDTH + TERM_WIDTH / 2, y };
    const x = { q: lay.kx, k: lay.kx, qk: lay.px }[kind];
    if (x !== undefined) return { x: x + dim * lay.cell + lay.cell / 2, y };
    return { x: kind === "dot" ? lay.dotx + 30 : lay.softx + 30, y };
  }
}
