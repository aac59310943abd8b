// attnlens front end, part 6 of 6: the shell. It owns the state (view, layer, head, query token,
// visible heads, filter, threshold, hovered / pinned token, theme) in a small store, builds the
// frame (header, tabs, tooltip) and one panel per view, and holds the entry points.
//
// A view (head.js, model.js, neuron.js) is a class constructed with the shell; it builds its
// own panel (`view.panel`) and subscribes to the state to sync its own controls and redraw
// itself while it is the one shown. What a view may use of the shell:
//   el, data (CaptureData), tokens, actions, views, state (read it; change it via setState),
//   setState(patch), show(view), subscribe(fn), stateSelect(key, options, label, parse), layerSelect(),
//   filterControl(), allowed(which), selection(), tooltip (dom.js Tooltip), markDrawn(view), fail(err)
// Hosts get the shell from createView() (also as `el.attnlens`): state, setState, show, subscribe,
// setTheme, maskToken(index), findSimilar(index, {layer, head}), data, tokens, el, dispose(), and for tests layout / headCanvas /
// modelGeo / neuronCellCenter(). Options: views, layer, head, heads, query, theme (a standalone
// page also reads them from its #hash, see hashOptions).

import { CaptureData, FILTERS, LENS_OPTIONS, filterMask, firstWordToken, sourceFromDocument, sourceFromModel } from "./data.js";
import { Tooltip, h, select } from "./dom.js";
import { HeadView } from "./head.js";
import { ModelView } from "./model.js";
import { NeuronView } from "./neuron.js";

const VIEW_TYPES = { head: HeadView, model: ModelView, neuron: NeuronView };  // panels in this order

/** A tiny store: `state` (one object, patched in place), set(patch) notifies every subscriber in order. */
export function createStore(state) {
  const listeners = [];
  return {
    state,
    set(patch) {
      Object.assign(state, patch);
      for (const fn of [...listeners]) fn(state);
    },
    subscribe(fn) {
      listeners.push(fn);
      return () => { const i = listeners.indexOf(fn); if (i >= 0) listeners.splice(i, 1); };
    },
    clear() { listeners.length = 0; },
  };
}

function clampInt(value, lo, hi, fallback) {
  const v = Number.isInteger(value) ? value : fallback;
  return Math.min(hi, Math.max(lo, v));
}

/** The visible heads: options.heads (indices) where it names any valid head, else all H. */
function headSet(wanted, H) {
  const valid = Array.isArray(wanted) ? wanted.filter((x) => Number.isInteger(x) && x >= 0 && x < H) : [];
  return new Set(valid.length ? valid : [...Array(H).keys()]);
}

/** Options from a page's location hash: "#model" (a view first) and/or "layer=1&head=2&heads=2,5&query=3&theme=dark",
 *  joined by "&" ("#head&heads=2" opens the head view with only head 2 shown). Unknown parts are ignored. */
export function hashOptions(hash, views) {
  const options = {};
  for (const part of (hash || "").replace(/^#/, "").split("&")) {
    const [key, value] = part.split("=", 2);
    if (value === undefined) { if (views.includes(key)) options.view = key; continue; }
    if (["layer", "head", "query"].includes(key) && /^\d+$/.test(value)) options[key] = Number(value);
    else if (key === "heads" && /^\d+(,\d+)*$/.test(value)) options.heads = value.split(",").map(Number);
    else if (key === "theme" && (value === "light" || value === "dark")) options.theme = value;
  }
  return options;
}

class AttnlensView {
  constructor(el, source, options = {}) {
    this.el = el;
    el.dataset.startMs = performance.now().toFixed(1);
    this.data = new CaptureData(source);
    this.actions = source.actions || {};
    const meta = this.data.meta, { L, H, T } = this.data;
    this.tokens = meta.tokens;
    this.segments = meta.segment_ids;
    this.views = (options.views || Object.keys(VIEW_TYPES)).filter((v) => v in VIEW_TYPES);
    this.store = createStore({
      view: this.views[0], layer: clampInt(options.layer, 0, L - 1, 0), head: clampInt(options.head, 0, H - 1, 0),
      query: clampInt(options.query, 0, T - 1, firstWordToken(meta)), heads: headSet(options.heads, H),
      filter: "all", threshold: T > 64 ? 0.02 : 0, hover: null, pinned: null, lens: "weights",
      theme: options.theme || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"),
    });
    this.state = this.store.state;
    this.drawn = { head: 0, model: 0, neuron: 0 };
    this.build();
    this.show(this.state.view);
  }

  // ---- the frame ----
  build() {
    const meta = this.data.meta;
    this.el.classList.add("attnlens");
    this.el.replaceChildren();
    this.themeButton = h("button", { class: "al-theme", type: "button", title: "Light / dark theme",
      onclick: () => this.setTheme(this.state.theme === "dark" ? "light" : "dark") });
    const tabs = h("div", { class: "al-tabs", role: "tablist" });
    this.tabButtons = {};
    for (const v of this.views) {
      this.tabButtons[v] = h("button", { type: "button", role: "tab", "data-view": v, text: VIEW_TYPES[v].title,
        onclick: () => this.show(v) });
      tabs.append(this.tabButtons[v]);
    }
    const sentences = h("div", { class: "al-sentences" },
      h("span", { class: "al-seg al-seg-a", text: "A" }), h("span", { text: meta.text_a }));
    if (meta.is_pair) sentences.append(h("span", { class: "al-seg al-seg-b", text: "B" }), h("span", { text: meta.text_b }));
    this.el.append(h("div", { class: "al-header" },
      h("div", { class: "al-title" }, h("strong", { text: "attnlens" }),
        h("span", { class: "al-model", text: ` ${meta.model_name} \u00b7 ${meta.num_layers} layers \u00d7 ${meta.num_heads} heads \u00b7 ${meta.num_tokens} tokens`
          + (meta.causal ? " \u00b7 causal (decoder): each token attends only to itself and earlier tokens" : "") }),
        this.themeButton),
      sentences, tabs));
    this.subscribe((s) => this.syncFrame(s));  // first: the frame and data-* are current before any view redraws
    this.tooltip = new Tooltip(this.el);
    this.parts = {};  // view name -> HeadView / ModelView / NeuronView
    for (const [name, View] of Object.entries(VIEW_TYPES)) {
      if (!this.views.includes(name)) continue;
      this.parts[name] = new View(this);
      this.el.append(this.parts[name].panel);
    }
    this.el.append(this.tooltip.el);
  }

  /** Tabs, which panel shows, the theme button and the root's data-* (read by hosts and tests). */
  syncFrame(s) {
    for (const [v, b] of Object.entries(this.tabButtons)) b.setAttribute("aria-selected", String(v === s.view));
    for (const [v, part] of Object.entries(this.parts)) part.panel.hidden = v !== s.view;
    this.themeButton.textContent = s.theme === "dark" ? "\u263e dark" : "\u2600 light";
    const d = this.el.dataset, sel = this.selection();
    d.theme = s.theme;
    d.view = s.view; d.layer = s.layer; d.head = s.head; d.query = s.query; d.filter = s.filter;
    d.lens = s.lens;
    d.heads = [...s.heads].sort((a, b) => a - b).join(",");
    d.selected = sel ? `${sel.side}:${sel.index}` : "";
  }

  // ---- state ----
  subscribe(fn) { return this.store.subscribe(fn); }

  setState(patch) { this.store.set(patch); }

  show(view) { this.setState({ view }); }

  setTheme(theme) { this.setState({ theme }); }

  /** Run the host's maskToken action for token `index` as the head view's button does (a host restoring it). */
  maskToken(index) { return this.parts.head ? this.parts.head.maskToken(index) : Promise.resolve(); }

  /** Run the host's findSimilar action for token `index` (and {layer, head}) as the head view's button does. */
  findSimilar(index, target) { return this.parts.head ? this.parts.head.findSimilar(index, target) : Promise.resolve(); }

  /** The hovered or pinned token ({side: "query"|"key", index}), or null. */
  selection() { return this.state.pinned || this.state.hover; }

  /** Which tokens the sentence-pair filter keeps on one side ("query" or "key"). */
  allowed(which) { return filterMask(this.segments, this.state.filter, which); }

  // ---- controls shared by views (each view places its own) ----
  /** A <select> of [value, text] options bound to state[key]: choosing sets parse(value); it follows the state. */
  stateSelect(key, options, label, parse = Number) {
    const el = select(options, this.state[key], (v) => this.setState({ [key]: parse(v) }), label);
    this.subscribe((s) => { el.value = String(s[key]); });
    return el;
  }

  /** The layer picker ("Layer 0" ...) for a view's controls. */
  layerSelect() {
    return this.stateSelect("layer", [...Array(this.data.L).keys()].map((l) => [l, `Layer ${l}`]), "Layer");
  }

  /** The lens picker (weights / value norm / rollout / gradient) for a view's controls; null with weights only. */
  lensControl() {
    const offered = LENS_OPTIONS.filter(([key]) => (this.data.meta.lenses || ["weights"]).includes(key));
    if (offered.length < 2) return null;
    return h("label", {}, "Lens ", this.stateSelect("lens", offered, "Lens", String));
  }

  /** The sentence-pair filter ("Pairs A -> B" ...) for a view's controls; null for a single sentence. */
  filterControl() {
    if (!this.data.meta.is_pair) return null;
    return h("label", {}, "Pairs ", this.stateSelect("filter", FILTERS, "Sentence filter", String));
  }

  // ---- what views report ----
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

  /** Stop: nothing redraws any more, draws in progress give up. */
  dispose() {
    this.store.clear();
    for (const part of Object.values(this.parts)) part.generation += 1;
  }

  // ---- for tests and hosts: where things were drawn, CSS pixels ----
  get layout() { return this.parts.head ? this.parts.head.layout : undefined; }

  get headCanvas() { return this.parts.head ? this.parts.head.canvas : undefined; }

  get modelGeo() { return this.parts.model ? this.parts.model.geo : undefined; }

  neuronCellCenter(kind, row, dim = 0) { return this.parts.neuron.cellCenter(kind, row, dim); }
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
    const views = options.views || Object.keys(VIEW_TYPES);
    // page.html#model opens the model view first; #heads=2 shows only head 2 (see hashOptions)
    const { view: wanted, ...fromHash } = hashOptions(doc.location ? doc.location.hash : "", views);
    Object.assign(options, fromHash);
    if (wanted) options.views = [wanted, ...views.filter((v) => v !== wanted)];
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
    return () => { view.dispose(); mount.remove(); };
  },
};

if (typeof document !== "undefined" && document.querySelector("[data-attnlens-root]:not([data-attnlens-booted])")) bootInline();
