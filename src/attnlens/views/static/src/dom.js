// attnlens front end, part 2 of 6: DOM and canvas helpers, colours (no state; also used by the web app).
// All text reaches the DOM through textContent or canvas fillText, never as HTML.

export const FONT = "12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";

/**
 * A new element: h("button", {class: "x", text: "Go", onclick: fn, "data-k": "v"}, ...children).
 * attrs: "class" -> className, "text" -> textContent, "on<event>" -> a listener, anything else
 * -> setAttribute. Children are nodes or strings (as text); null/undefined ones are skipped.
 */
export function h(tag, attrs = {}, ...children) {
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

/** A <select> of [value, text] options showing `value`; onchange(newValue as text). */
export function select(options, value, onchange, label) {
  const el = h("select", { "aria-label": label, onchange: () => onchange(el.value) });
  for (const [v, text] of options) el.append(h("option", { value: String(v), text }));
  el.value = String(value);
  return el;
}

/** The floating tooltip of one view root: text plus data-kind/row/dim/value/layer/head (for tests and hosts). */
export class Tooltip {
  constructor(host) {
    this.host = host;
    this.el = h("div", { class: "al-tooltip", role: "status", hidden: "" });
  }

  show(event, text, info = {}) {
    if (!text) { this.hide(); return; }
    const t = this.el;
    t.textContent = text;
    for (const key of ["kind", "row", "dim", "value", "layer", "head"]) {
      if (info[key] === undefined) delete t.dataset[key]; else t.dataset[key] = String(info[key]);
    }
    const box = this.host.getBoundingClientRect();
    t.style.left = `${event.clientX - box.left + 14}px`;
    t.style.top = `${event.clientY - box.top + 14}px`;
    t.hidden = false;
  }

  hide() { this.el.hidden = true; }
}

export const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));

/** A CSS colour per head index, the same in every model (12 heads or 4): hues a golden angle
 *  apart, so neighbouring heads differ clearly and head 2 is one colour wherever it is drawn. */
export function headColor(head) {
  const hue = Math.round(210 + head * 137.508) % 360;
  return `hsl(${hue}, 70%, ${head % 2 ? 42 : 50}%)`;
}

/** A CSS custom property of `el` as text (the canvases use the stylesheet's theme variables). */
export function cssVar(el, name) {
  return getComputedStyle(el).getPropertyValue(name).trim();
}

/** [r, g, b] of "rgb(...)" or "#rrggbb" text; white otherwise. */
export function parseColor(text) {
  const m = text.match(/\d+(\.\d+)?/g);
  if (m && text.startsWith("rgb")) return m.slice(0, 3).map(Number);
  if (text.startsWith("#") && text.length === 7) return [1, 3, 5].map((i) => parseInt(text.slice(i, i + 2), 16));
  return [255, 255, 255];
}

/** Size a canvas to width x height CSS pixels at the screen's pixel ratio; its 2d context, in CSS pixels. */
export function fitCanvas(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(width * ratio));
  canvas.height = Math.max(1, Math.round(height * ratio));
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return ctx;
}

/** `text` cut to fit `width` pixels in ctx's font, with an ellipsis when cut. */
export function clipText(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let cut = text;
  while (cut.length > 1 && ctx.measureText(cut + "\u2026").width > width) cut = cut.slice(0, -1);
  return cut + "\u2026";
}

export const fmt = (x, digits = 3) => (Object.is(x, -0) ? 0 : x).toFixed(digits);
