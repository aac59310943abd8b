// attnlens front end, part 4 of 6: the model view. Every layer x head as a heatmap
// thumbnail (queries down, keys across); click one to open it in the head (or neuron) view.

import { FONT, cssVar, fitCanvas, h, nextFrame, parseColor } from "./dom.js";

export class ModelView {
  static title = "Model view";

  /** Builds the panel (this.panel) and follows `shell`'s state (see shell.js for what a view may use). */
  constructor(shell) {
    this.shell = shell;
    this.generation = 0;  // bumped per draw; a draw that finds it changed after an await gives up
    this.geo = null;  // {cell, pad, left, top, width, height} of the last drawing, CSS pixels
    this.drawnKey = null;  // filter/theme/width of the thumbnails in this.base (an ImageData)
    this.build();
    shell.subscribe((s) => {
      if (s.view === "model") this.draw().catch((err) => shell.fail(err));
    });
  }

  build() {
    const shell = this.shell;
    this.canvas = h("canvas", { class: "al-model-canvas" });
    this.canvas.addEventListener("click", (e) => {
      const hit = this.hit(e);
      if (!hit) return;
      shell.setState({ heads: new Set([hit.head]), layer: hit.layer, head: hit.head });
      shell.show(shell.views.includes("head") ? "head" : "neuron");
    });
    this.canvas.addEventListener("mousemove", (e) => {
      const hit = this.hit(e);
      shell.tooltip.show(e, hit ? `layer ${hit.layer} head ${hit.head} \u2014 click to open` : null, hit ? { layer: hit.layer, head: hit.head } : {});
    });
    this.canvas.addEventListener("mouseleave", () => shell.tooltip.hide());
    this.panel = h("section", { class: "al-panel", "data-view": "model" },
      h("div", { class: "al-controls" }, shell.filterControl(), shell.lensControl(),
        h("span", { class: "al-legend-text", text: "Each cell: one head, queries down, keys across; stronger colour = more attention (\u221aweight of the block maximum)." })),
      h("div", { class: "al-scroll" }, this.canvas));
  }

  geometry() {
    const { L, H } = this.shell.data;
    const avail = Math.max(400, (this.shell.el.clientWidth || 900) - 60);
    const cell = Math.max(40, Math.min(96, Math.floor(avail / H) - 6));
    return { cell, pad: 6, left: 34, top: 18, width: 34 + H * (cell + 6), height: 18 + L * (cell + 6) };
  }

  /** {layer, head} of the thumbnail under the pointer, or null. */
  hit(event) {
    const g = this.geo, { L, H } = this.shell.data;
    if (!g) return null;
    const rect = this.canvas.getBoundingClientRect();
    const x = event.clientX - rect.left - g.left, y = event.clientY - rect.top - g.top;
    const head = Math.floor(x / (g.cell + g.pad)), layer = Math.floor(y / (g.cell + g.pad));
    if (x < 0 || y < 0 || head >= H || layer >= L) return null;
    if (x - head * (g.cell + g.pad) > g.cell || y - layer * (g.cell + g.pad) > g.cell) return null;
    return { layer, head };
  }

  /** Uint8Array [head, n, n] of sqrt-coded block maxima for one layer under the current filter. */
  async thumbs(layer) {
    const shell = this.shell, filter = shell.state.filter;
    if (filter === "all" && shell.state.lens === "weights") return shell.data.buffer(`thumbs/${layer}`);
    const { H, T } = shell.data, n = shell.data.meta.thumb_size;
    const att = await shell.data.lensAttention(layer, shell.state.lens);
    const rowsOk = shell.allowed("query"), colsOk = shell.allowed("key"), out = new Uint8Array(H * n * n);
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

  async draw() {
    const shell = this.shell, s = shell.state, el = shell.el;
    const key = `${s.filter}/${s.lens}/${s.theme}/${el.clientWidth}`;
    if (this.drawnKey === key) { this.drawMarks(); return; }  // same thumbnails: only move the selection box
    const gen = ++this.generation;
    const { L, H } = shell.data, n = shell.data.meta.thumb_size;
    const g = (this.geo = this.geometry());
    const ctx = fitCanvas(this.canvas, g.width, g.height);
    const fg = cssVar(el, "--al-fg"), bg = parseColor(cssVar(el, "--al-cell-bg"));
    const ink = cssVar(el, "--al-ink-rgb").split(",").map(Number);
    ctx.font = FONT; ctx.fillStyle = fg; ctx.textBaseline = "middle"; ctx.textAlign = "center";
    for (let head = 0; head < H; head++) ctx.fillText(`H${head}`, g.left + head * (g.cell + g.pad) + g.cell / 2, g.top / 2);
    ctx.textAlign = "right";
    for (let layer = 0; layer < L; layer++) ctx.fillText(`L${layer}`, g.left - 6, g.top + layer * (g.cell + g.pad) + g.cell / 2);
    const tile = document.createElement("canvas");
    tile.width = n; tile.height = n;
    const tctx = tile.getContext("2d"), image = tctx.createImageData(n, n), pix = image.data;
    const palette = new Uint8ClampedArray(256 * 3);  // code 0..255 -> rgb between the cell background and the ink
    for (let v = 0; v < 256; v++) for (let c = 0; c < 3; c++) palette[v * 3 + c] = bg[c] + ((ink[c] - bg[c]) * v) / 255;
    ctx.imageSmoothingEnabled = false;
    for (let layer = 0; layer < L; layer++) {
      const codes = await this.thumbs(layer);
      if (gen !== this.generation) return;
      for (let head = 0; head < H; head++) {
        const off = head * n * n;
        for (let p = 0; p < n * n; p++) {
          const v = codes[off + p];
          pix[p * 4] = palette[v * 3]; pix[p * 4 + 1] = palette[v * 3 + 1]; pix[p * 4 + 2] = palette[v * 3 + 2]; pix[p * 4 + 3] = 255;
        }
        tctx.putImageData(image, 0, 0);
        ctx.drawImage(tile, g.left + head * (g.cell + g.pad), g.top + layer * (g.cell + g.pad), g.cell, g.cell);
      }
      if (s.filter !== "all") { await nextFrame(); if (gen !== this.generation) return; }
    }
    this.drawnKey = key;
    this.base = ctx.getImageData(0, 0, this.canvas.width, this.canvas.height);
    this.drawMarks();
  }

  /** The thumbnails again, with a box around the selected layer/head. */
  drawMarks() {
    const g = this.geo, s = this.shell.state, ctx = this.canvas.getContext("2d");
    ctx.putImageData(this.base, 0, 0);
    ctx.strokeStyle = cssVar(this.shell.el, "--al-accent");
    ctx.lineWidth = 2;
    ctx.strokeRect(g.left + s.head * (g.cell + g.pad) - 2, g.top + s.layer * (g.cell + g.pad) - 2, g.cell + 4, g.cell + 4);
    this.shell.markDrawn("model");
  }
}
