"""Shared by the lens and importance tests: the model's own modules reached by attribute, not by attnlens."""

from __future__ import annotations

import numpy as np
import torch

from attnlens.capturing import LoadedModel


def value_and_output_modules(lm, layer: int):
    """The value Linear and attention output Linear of one layer, reached by attribute (not by our regexes)."""
    model = lm.model.base_model
    if lm.spec.family == "distilbert":
        attn = model.transformer.layer[layer].attention
        return attn.v_lin, attn.out_lin
    if lm.spec.family == "albert":
        attn = model.encoder.albert_layer_groups[0].albert_layers[0].attention  # one shared layer
        return attn.value, attn.dense
    attn = model.encoder.layer[layer].attention
    return attn.self.value, attn.output.dense


def own_head_outputs(lm, text_a, text_b=None):
    """From the eager model's own modules: alpha [L, H, T, T], f_h(x_j) [L, H, T, hidden], the output Linear's
    bias [L, hidden] and its output [L, T, hidden] (plain torch hooks, nothing of attnlens)."""
    enc = lm.tokenizer(text_a, text_b, return_tensors="pt")
    if lm.spec.family == "distilbert":
        enc.pop("token_type_ids")
    before = lm.model.config._attn_implementation
    lm.model.set_attn_implementation("eager")
    seen = {"v": [], "out": []}
    handles = []
    mods = {value_and_output_modules(lm, l) for l in range(lm.num_layers)}
    for value, output in mods:
        handles.append(value.register_forward_hook(lambda m, i, o: seen["v"].append(o[0])))
        handles.append(output.register_forward_hook(
            lambda m, i, o: seen["out"].append((o[0], m.weight.detach(), m.bias.detach()))))
    try:
        with torch.no_grad():
            alpha = torch.stack(lm.model(**enc, output_attentions=True).attentions)[:, 0]  # [L, H, T, T]
    finally:
        for h in handles:
            h.remove()
        lm.model.set_attn_implementation(before)
    h, d = lm.num_heads, lm.d_head
    f, bias, out = [], [], []
    for v, (o, w, b) in zip(seen["v"], seen["out"]):
        t = v.shape[0]
        vh = v.view(t, h, d).transpose(0, 1).double()  # [H, T, D]
        wh = w.double().view(w.shape[0], h, d).permute(1, 2, 0)  # [H, D, hidden]
        f.append(vh @ wh)  # [H, T, hidden]
        bias.append(b.double())
        out.append(o.double())
    return alpha.double().numpy(), torch.stack(f).numpy(), torch.stack(bias).numpy(), torch.stack(out).numpy()


def with_head(lm, cls):
    """The same random encoder weights under a task head class (a LoadedModel of `cls`)."""
    torch.manual_seed(0)
    model = cls(lm.model.config)
    missing, _unexpected = model.base_model.load_state_dict(lm.model.state_dict(), strict=False)
    assert not missing  # every encoder weight copied (a *ForMaskedLM has no pooler: unexpected keys)
    return LoadedModel(model, lm.tokenizer, name=f"{lm.name}-{cls.__name__}")


def rollout_by_loop(att: np.ndarray) -> np.ndarray:
    """Abnar & Zuidema's rollout written out element by element."""
    n_layers, n_heads, t, _ = att.shape
    mixed = np.zeros((n_layers, t, t))
    for l in range(n_layers):
        for i in range(t):
            for j in range(t):
                mixed[l, i, j] = 0.5 * sum(att[l, h, i, j] for h in range(n_heads)) / n_heads + 0.5 * (i == j)
            mixed[l, i] /= mixed[l, i].sum()
    out = [mixed[0]]
    for l in range(1, n_layers):
        prev = out[-1]
        out.append(np.array([[sum(mixed[l, i, k] * prev[k, j] for k in range(t)) for j in range(t)]
                             for i in range(t)]))
    return np.stack(out)
