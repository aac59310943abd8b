// attnlens front end, part 3 of 6: the head view. Tokens in two columns (queries left, keys
// right), one line per visible head and pair, opacity = attention weight.

import { FONT, clipText, cssVar, fitCanvas, fmt, h, headColor } from "./dom.js";

export class HeadView {
  static title = "Head view";

  /** Builds the panel (this.panel) and follows `shell`'s state (see shell.js for what a view may use). */
  constructor(shell) {
    this.shell = shell;
    this.generation = 0;  // bumped per draw; a draw that finds it changed after an await gives up
    this.layout = null;  // {col, row, gap, top, left, xl, xr, width, height} of the last drawing, CSS pixels
    this.maskResult = null;
    this.searchResult = null;  // {index, box, pending} of the host's findSimilar (its status line)
    this.build();
    shell.subscribe((s) => {
      for (const b of this.blocks.children) b.classList.toggle("al-off", !s.heads.has(+b.dataset.head));
      if (s.view === "head") this.draw().catch((err) => shell.fail(err));
    });
  }

  build() {
    const shell = this.shell, { H } = shell.data;
    this.blocks = h("div", { class: "al-heads", title: "Click: show / hide a head. Double-click: only this head." });
    for (let head = 0; head < H; head++) {
      const block = h("button", { type: "button", class: "al-head", "data-head": String(head), title: `head ${head}`,
        style: `background:${headColor(head)}`, text: String(head) });
      let timer = null;
      block.addEventListener("click", () => {
        clearTimeout(timer);
        timer = setTimeout(() => this.toggleHead(head), 220);
      });
      block.addEventListener("dblclick", () => { clearTimeout(timer); this.soloHead(head); });
      this.blocks.append(block);
    }
    const layer = shell.layerSelect();
    const threshold = h("input", { type: "range", min: "0", max: "0.5", step: "0.01", value: String(shell.state.threshold),
      "aria-label": "Hide lines below this weight" });
    const thresholdText = h("span", { class: "al-num", text: fmt(shell.state.threshold, 2) });
    threshold.addEventListener("input", () => shell.setState({ threshold: +threshold.value }));
    shell.subscribe((s) => {  // the slider follows the state (a host may set it, e.g. from its URL)
      if (+threshold.value !== s.threshold) threshold.value = String(s.threshold);
      thresholdText.textContent = fmt(s.threshold, 2);
    });
    this.info = h("div", { class: "al-info" });
    this.canvas = h("canvas", { class: "al-head-canvas" });
    this.canvas.addEventListener("mousemove", (e) => this.pointer(e, false));
    this.canvas.addEventListener("click", (e) => this.pointer(e, true));
    this.canvas.addEventListener("mouseleave", () => { if (shell.state.hover) shell.setState({ hover: null }); });
    this.panel = h("section", { class: "al-panel", "data-view": "head" },
      h("div", { class: "al-controls" }, h("label", {}, layer), shell.filterControl(), shell.lensControl(),
        h("label", {}, "Hide below ", threshold, thresholdText), this.blocks),
      this.info, h("div", { class: "al-scroll" }, this.canvas));
  }

  toggleHead(head) {
    const heads = new Set(this.shell.state.heads);
    if (heads.has(head)) heads.delete(head); else heads.add(head);
    this.shell.setState({ heads });
  }

  soloHead(head) {
    const s = this.shell.state;
    const heads = s.heads.size === 1 && s.heads.has(head) ? new Set([...Array(this.shell.data.H).keys()]) : new Set([head]);
    this.shell.setState({ heads, head });
  }

  measure() {
    const { T } = this.shell.data;
    const ctx = this.canvas.getContext("2d");
    ctx.font = FONT;
    const widest = Math.max(...this.shell.tokens.map((t) => ctx.measureText(t).width));
    const col = Math.min(Math.ceil(widest) + 10, 170);
    const row = T > 200 ? 13 : T > 64 ? 15 : 20;
    const gap = T > 200 ? 220 : 160;
    return { col, row, gap, top: 8, left: 4, xl: 4 + col, xr: 4 + col + gap, width: 8 + 2 * col + gap, height: 16 + T * row };
  }

  /** Hover (isClick false) or click a token: the hovered / pinned {side, index} in the state. */
  pointer(event, isClick) {
    const lay = this.layout, shell = this.shell, s = shell.state;
    if (!lay) return;
    const rect = this.canvas.getBoundingClientRect();
    const x = event.clientX - rect.left, y = event.clientY - rect.top;
    const index = Math.floor((y - lay.top) / lay.row);
    let hit = null;
    if (index >= 0 && index < shell.data.T) {
      if (x < lay.xl + 4) hit = { side: "query", index };
      else if (x > lay.xr - 4) hit = { side: "key", index };
    }
    if (isClick) {
      const same = hit && s.pinned && s.pinned.side === hit.side && s.pinned.index === hit.index;
      shell.setState({ pinned: same ? null : hit, query: hit && hit.side === "query" ? hit.index : s.query });
    } else {
      const cur = s.hover;
      if ((cur && hit && cur.side === hit.side && cur.index === hit.index) || (!cur && !hit)) return;
      shell.setState({ hover: hit });
    }
  }

  async draw() {
    const gen = ++this.generation;
    const shell = this.shell, { T } = shell.data, s = shell.state, tokens = shell.tokens;
    const t0 = performance.now();
    const att = await shell.data.lensAttention(s.layer, s.lens);
    shell.el.dataset.headComputeMs = (performance.now() - t0).toFixed(1);
    if (gen !== this.generation) return;
    const lay = (this.layout = this.measure());
    const ctx = fitCanvas(this.canvas, lay.width, lay.height);
    const fg = cssVar(shell.el, "--al-fg"), muted = cssVar(shell.el, "--al-muted"), hl = cssVar(shell.el, "--al-highlight");
    ctx.font = FONT;
    ctx.textBaseline = "middle";
    const rowsOk = shell.allowed("query"), colsOk = shell.allowed("key");
    const sel = shell.selection();
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
      ctx.strokeStyle = headColor(head);
      for (let b = 1; b <= steps; b++) if (used[b]) { ctx.globalAlpha = b / steps; ctx.stroke(paths[b]); }
    }
    ctx.globalAlpha = 1;

    // with a selected query: the weight each visible head gives each key, as stripes
    if (sel && sel.side === "query" && heads.length) {
      const stripe = lay.col / heads.length;
      heads.forEach((head, n) => {
        ctx.fillStyle = headColor(head);
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
      const text = clipText(ctx, tokens[i], lay.col - 8);
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
    this.canvas.dataset.lines = String(lines);
    this.renderInfo(sel);
    shell.markDrawn("head");
  }

  renderInfo(sel) {
    const info = [], shell = this.shell;
    if (this.maskResult && sel && sel.index !== this.maskResult.index) this.maskResult = null;  // another token: drop the old prediction
    if (sel) {
      const token = shell.tokens[sel.index];
      info.push(h("span", { text: `${sel.side === "query" ? "Attention from" : "Attention to"} #${sel.index} \u201c${token}\u201d${shell.state.pinned ? " (pinned; click again to release)" : ""}` }));
      const offer = this.maskOffer(sel.index);
      if (offer) {
        const pending = this.maskResult && this.maskResult.pending;
        info.push(h("button", { type: "button", class: "al-mask", text: offer, "data-index": String(sel.index),
          ...(pending ? { disabled: "" } : {}), onclick: () => this.maskToken(sel.index) }));
      }
    } else {
      info.push(h("span", { class: "al-muted", text: "Hover a token to see only its attention; click to pin it. Left: queries, right: keys." }));
    }
    if (sel && this.searchOffered(sel.index)) {
      const { layer, head } = this.searchTarget();
      const pending = this.searchResult && this.searchResult.pending;
      info.push(h("button", { type: "button", class: "al-search", text: `Find similar contexts (layer ${layer} head ${head})`,
        "data-index": String(sel.index), "data-layer": String(layer), "data-head": String(head),
        title: "The corpus contexts where this head behaves most like it does on this token",
        ...(pending ? { disabled: "" } : {}), onclick: () => this.findSimilar(sel.index, { layer, head }) }));
    }
    if (this.maskResult) info.push(this.maskResult.box);
    const pinned = shell.state.pinned;
    if (this.searchResult && pinned && pinned.index !== this.searchResult.index) this.searchResult = null;  // another token pinned
    if (this.searchResult) info.push(this.searchResult.box);
    this.info.replaceChildren(...info);
  }

  /** Whether "Find similar contexts" is offered for token `index`: a host findSimilar action (the web app has
   *  one, a standalone page none) and a text token (the search indexes no [CLS]/[SEP]). */
  searchOffered(index) {
    const shell = this.shell;
    return typeof shell.actions.findSimilar === "function" && !shell.data.meta.special[index];
  }

  /** The head a search is for: the one visible head, else the current head (a double-click on a head picks it). */
  searchTarget() {
    const s = this.shell.state;
    return { layer: s.layer, head: s.heads.size === 1 ? [...s.heads][0] : s.head };
  }

  /** The host's findSimilar action for token `index` and {layer, head}; the host shows the contexts (its panel),
   *  the head view a status line: the action's {text} or its one error. */
  async findSimilar(index, target = this.searchTarget()) {
    if (this.searchResult && this.searchResult.pending) return;  // one request at a time
    const box = h("div", { class: "al-search-result", "data-index": String(index),
      text: `Searching for contexts like #${index} “${this.shell.tokens[index]}”…` });
    const entry = (this.searchResult = { index, box, pending: true });
    this.renderInfo(this.shell.selection());
    try {
      const result = await this.shell.actions.findSimilar(index, target);
      if (this.searchResult !== entry) return;
      box.textContent = (result && result.text) || "";
    } catch (err) {
      if (this.searchResult !== entry) return;
      box.classList.add("al-error");
      box.textContent = `Could not search: ${err && err.message ? err.message : err}`;
    } finally {
      entry.pending = false;
      if (this.searchResult === entry) this.renderInfo(this.shell.selection());
    }
  }

  /** The mask button's text for token `index`, or null where masking cannot work: no host action, or a
   *  special token ([CLS], [SEP]). A piece of a split word offers its whole word (the host masks every piece). */
  maskOffer(index) {
    const shell = this.shell, meta = shell.data.meta;
    if (typeof shell.actions.maskToken !== "function" || meta.special[index]) return null;
    const word = meta.word_ids ? meta.word_ids[index] : -1;
    const pieces = word >= 0 ? meta.word_ids.filter((w) => w === word).length : 1;
    return pieces > 1 ? `Mask this word (${pieces} pieces)` : "Mask this token";
  }

  /** The host's maskToken action for token `index`; its predictions (or its one error) below the info line.
   *  The action returns {title?, items} or, for several masked positions, {groups: [{title, items}, ...]}. */
  async maskToken(index) {
    if (this.maskResult && this.maskResult.pending) return;  // one request at a time
    const box = h("div", { class: "al-mask-result", "data-index": String(index), text: `Predicting #${index}\u2026` });
    const entry = (this.maskResult = { index, box, pending: true });
    this.renderInfo(this.shell.selection());
    try {
      const result = await this.shell.actions.maskToken(index);
      if (this.maskResult !== entry) return;  // another token was chosen meanwhile
      const groups = result.groups || [{ title: result.title, items: result.items }];
      box.replaceChildren(...groups.map((group, n) => h("div", { class: "al-mask-group" },
        h("strong", { text: group.title || (n ? "" : `Predictions for #${index} \u201c${this.shell.tokens[index]}\u201d: `) }),
        ...(group.items || []).map((item) => h("span", { class: "al-pred", text: `${item.label} ${fmt(+item.value, 3)}` })))));
    } catch (err) {
      if (this.maskResult !== entry) return;
      box.classList.add("al-error");
      box.textContent = `Could not predict: ${err && err.message ? err.message : err}`;
    } finally {
      entry.pending = false;
      if (this.maskResult === entry) this.renderInfo(this.shell.selection());
    }
  }
}
