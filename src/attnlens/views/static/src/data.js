// attnlens front end, part 1 of 6: data sources and payload decoding (no DOM).
//
// A host hands createView() (shell.js) a *source*:
//   {
//     meta,                        // the payload's meta object (see views/payload.py)
//     load(name) -> Promise<Uint8Array|ArrayBuffer|DataView>   // one buffer, as stored
//     actions: {                   // optional hooks a host may provide
//       // mask token `index` (a piece of a split word: its whole word) and predict it; offered on
//       // every token but [CLS]/[SEP]; several masked positions come back as groups
//       maskToken(index) -> Promise<{title?: string, items: [{label: string, value: number}]}
//                                   | {groups: [{title: string, items: [...]}]}>
//     }
//   }
// The shims below build a source from an anywidget model (Jupyter), from data inlined in the
// page (standalone HTML) or from HTTP (a server: GET <base>/meta, GET <base>/<buffer name> or <base>/buffers).

const FORMAT = "attnlens.view/1";

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

/** A source fetching from a server: `${base}/meta` (JSON, unless the caller already has it) and each buffer as
 * `${base}/${name}` (bytes), or all of them in one `${base}/buffers` when the server offers that
 * (meta.bundle.sizes: each buffer's size, in meta.buffers order). */
export async function sourceFromFetch(base, actions = {}, knownMeta = null) {
  const bytesAt = async (url) => {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`attnlens: ${r.status} for ${url}`);
    return r;
  };
  const meta = knownMeta || await (await bytesAt(`${base}/meta`)).json();
  const one = async (name) => new Uint8Array(await (await bytesAt(`${base}/${name}`)).arrayBuffer());
  let bundle = null;  // Promise of {name: bytes}, fetched on the first load
  const fromBundle = async (name) => {
    bundle ??= bytesAt(`${base}/buffers`).then(async (r) => splitBundle(new Uint8Array(await r.arrayBuffer()), meta));
    const parts = await bundle;
    if (!(name in parts)) throw new Error(`attnlens: no buffer ${name}`);
    return parts[name];
  };
  return { meta, load: meta.bundle ? fromBundle : one, actions };
}

function splitBundle(bytes, meta) {
  const parts = {}, sizes = meta.bundle.sizes;
  let offset = 0;
  Object.keys(meta.buffers).forEach((name, i) => {
    parts[name] = bytes.subarray(offset, offset + sizes[i]);
    offset += sizes[i];
  });
  if (offset !== bytes.length) throw new Error(`attnlens: the buffers came back as ${bytes.length} bytes, not ${offset}`);
  return parts;
}

// ---------------------------------------------------------------- decoding

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
export class CaptureData {
  constructor(source) {
    const meta = source.meta;
    if (!meta || meta.format !== FORMAT) throw new Error(`attnlens: expected data format ${FORMAT}`);
    this.source = source;
    this.meta = meta;
    this.L = meta.num_layers; this.H = meta.num_heads; this.T = meta.num_tokens; this.D = meta.d_head;
    this.cache = new Map();
  }

  /** One buffer decoded: Uint8Array (dtype uint8) or Float32Array (dtype float16). */
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

  /** False when the payload carries no q/k (a model without an attnlens family entry: attention only). */
  get hasQK() { return this.meta.has_qk !== false; }

  /** Float32Array [term, head, query, key] of one layer's score terms (meta.score_terms), or null. */
  async terms(layer) {
    if (!(this.meta.score_terms || []).length) return null;
    const key = `terms/${layer}`, fresh = !this.cache.has(key);
    const out = this.cached(key, () => this.buffer(key));
    if (fresh) this.evict("terms/", 3);
    return out;
  }

  /** {q, k}: Float32Array [head, token, d_head] of one layer. */
  vectors(layer) {
    return this.cached(`qk/${layer}`, async () => {
      const [q, k] = await Promise.all([this.buffer(`queries/${layer}`), this.buffer(`keys/${layer}`)]);
      return { q, k };
    });
  }

  /** True for a decoder's capture: a query sees only itself and earlier keys (q . k is masked so). */
  get causal() { return this.meta.causal === true; }

  /** [lo, hi] of the keys query `i` of `layer` may see (meta.bands: allowed offsets j - i, null = unbounded;
   *  causal: none later than i), as key indices clamped to 0..T-1; keys outside it get weight 0. */
  keyRange(layer, i) {
    const band = (this.meta.bands || [])[layer] || [null, null], last = this.T - 1;
    let hi = band[1] === null ? last : Math.min(last, i + band[1]);
    if (this.causal) hi = Math.min(hi, i);
    return [band[0] === null ? 0 : Math.max(0, i + band[0]), hi];
  }

  /** Float32Array [head, query, key] of one layer: stored codes, or softmax(q.k/sqrt(d)) (causal, bands: masked). */
  attention(layer) {
    return this.cached(`att/${layer}`, async () => {
      if (this.meta.attention_code === "qk") return this.attentionFromQK(await this.vectors(layer), layer);
      const codes = await this.buffer(`attention/${layer}`);
      const out = new Float32Array(codes.length);
      for (let i = 0; i < codes.length; i++) { const v = codes[i] / 255; out[i] = v * v; }
      return out;
    });
  }

  /** Float32Array [head, query, key] of one layer under a lens (meta.lenses): "weights" as above;
   *  "value_norm" = weight x ||f_h(x_j)|| (Kobayashi et al. 2020), each row renormalised to 1; "rollout"
   *  (Abnar & Zuidema 2020) computed here from the weights, the same for every head; "grad_weights" as shipped. */
  lensAttention(layer, lens) {
    if (!lens || lens === "weights" || !(this.meta.lenses || []).includes(lens)) return this.attention(layer);
    return this.cached(`att/${lens}/${layer}`, async () => {
      const { H, T } = this, out = new Float32Array(H * T * T);
      if (lens === "rollout") {
        const r = await this.rollout(layer);
        for (let head = 0; head < H; head++) out.set(r, head * T * T);
        return out;
      }
      if (lens === "value_norm") {
        const [att, norms] = await Promise.all([this.attention(layer), this.buffer(`value_norms/${layer}`)]);
        for (let r = 0; r < H * T; r++) {
          const n = Math.floor(r / T) * T, o = r * T;
          let sum = 0;
          for (let j = 0; j < T; j++) { const v = att[o + j] * norms[n + j]; out[o + j] = v; sum += v; }
          if (sum > 0) for (let j = 0; j < T; j++) out[o + j] /= sum;
        }
        return out;
      }
      const codes = await this.buffer(`${lens}/${layer}`);
      for (let i = 0; i < codes.length; i++) { const v = codes[i] / 255; out[i] = v * v; }
      return out;
    });
  }

  /** Float32Array [query, key]: rollout R_l = A_l R_(l-1), A_l = 0.5 mean_h(weights) + 0.5 I, rows renormalised. */
  rollout(layer) {
    return this.cached(`rollout/${layer}`, async () => {
      const { H, T } = this, att = await this.attention(layer), a = new Float64Array(T * T);
      for (let head = 0; head < H; head++) for (let i = 0; i < T * T; i++) a[i] += att[head * T * T + i] * 0.5 / H;
      for (let i = 0; i < T; i++) {
        a[i * T + i] += 0.5;
        let sum = 0;
        for (let j = 0; j < T; j++) sum += a[i * T + j];
        for (let j = 0; j < T; j++) a[i * T + j] /= sum;
      }
      if (layer === 0) return Float32Array.from(a);
      const prev = await this.rollout(layer - 1), out = new Float32Array(T * T);
      for (let i = 0; i < T; i++) {
        for (let k = 0; k < T; k++) {
          const w = a[i * T + k];
          if (w === 0) continue;
          for (let j = 0; j < T; j++) out[i * T + j] += w * prev[k * T + j];
        }
      }
      return out;
    });
  }

  /** Float32Array [head, key] of ||f_h(x_j)|| for one layer, or null when the payload has no value norms. */
  valueNorms(layer) {
    if (!(this.meta.lenses || []).includes("value_norm")) return Promise.resolve(null);
    return this.cached(`norms/${layer}`, () => this.buffer(`value_norms/${layer}`));
  }

  attentionFromQK({ q, k }, layer) {
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
      if (this.causal) row.fill(-Infinity, (r % T) + 1);  // query r % T sees no later key: weight 0
      if (this.meta.bands) {  // keys outside the layer's band (a sliding window): weight 0
        const [lo, hi] = this.keyRange(layer, r % T);
        row.fill(-Infinity, 0, lo);
        row.fill(-Infinity, hi + 1);
      }
      let max = -Infinity;
      for (let j = 0; j < T; j++) if (row[j] > max) max = row[j];
      let sum = 0;
      for (let j = 0; j < T; j++) { const x = Math.exp(row[j] - max); row[j] = x; sum += x; }
      const inv = 1 / sum;
      for (let j = 0; j < T; j++) row[j] *= inv;
    }
    return out;
  }

  /** What the neuron view shows for one query: q, k per key, q x k, q.k, the score terms (families whose
   *  scores add terms to q . k: [{name, values}]) and their total, softmax of the score (float64). */
  async detail(layer, head, query) {
    const [{ q, k }, termBuf] = await Promise.all([this.vectors(layer), this.terms(layer)]);
    const { H, T, D } = this, base = head * T * D;
    const qv = Array.from(q.subarray(base + query * D, base + (query + 1) * D));
    const keys = [], products = [], dots = [];
    for (let j = 0; j < T; j++) {
      const kv = Array.from(k.subarray(base + j * D, base + (j + 1) * D));
      const prod = kv.map((x, d) => x * qv[d]);
      keys.push(kv); products.push(prod); dots.push(prod.reduce((a, b) => a + b, 0));
    }
    const scale = this.meta.content_scale ? this.meta.content_scale[layer][head] : 1 / Math.sqrt(D);
    const scaled = dots.map((s) => s * scale);
    const terms = (this.meta.score_terms || []).map((name, t) => {
      const at = ((t * H + head) * T + query) * T;
      return { name, values: Array.from(termBuf.subarray(at, at + T)) };
    });
    const [lo, hi] = this.keyRange(layer, query);  // causal: no later key; a band: only the keys in its window
    const total = scaled.map((s, j) => (j < lo || j > hi ? -Infinity  // a masked key: weight 0
      : terms.reduce((acc, term) => acc + term.values[j], s))), max = Math.max(...total);
    const exps = total.map((s) => Math.exp(s - max)), sum = exps.reduce((a, b) => a + b, 0);
    return { q: qv, keys, products, dots, scale, scaled, terms, total, softmax: exps.map((e) => e / sum) };
  }
}

// ---------------------------------------------------------------- lenses

/** [key, label] of each lens the views offer (the payload's meta.lenses says which it carries). */
export const LENS_OPTIONS = [["weights", "weights"], ["value_norm", "value norm ‖αf(x)‖"],
  ["rollout", "rollout"], ["grad_weights", "weight × |gradient|"]];

// ---------------------------------------------------------------- sentence-pair filters

/** [key, label] of each filter; a key names the query's sentence then the key's ("AB": A -> B). */
export const FILTERS = [["all", "All"], ["AA", "A \u2192 A"], ["AB", "A \u2192 B"], ["BA", "B \u2192 A"], ["BB", "B \u2192 B"]];

/** Which tokens a filter keeps on one side (`which`: "query" or "key"): an array of booleans. */
export function filterMask(segments, filter, which) {
  if (filter === "all") return segments.map(() => true);
  const want = which === "query" ? filter[0] : filter[1];
  return segments.map((s) => (s === 0 ? "A" : "B") === want);
}

/** The first token that is not special ([CLS] ...), or 0. */
export function firstWordToken(meta) {
  const i = meta.special.findIndex((s) => !s);
  return i < 0 ? 0 : i;
}
