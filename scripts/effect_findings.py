"""Measure the README's effect findings on the default model and the shipped checkpoint.

1. Sink heads under value_norm (Kobayashi et al. 2020): the atlas under the weights and under the value_norm
   lens over the same pairs; every head labelled cls or sep under the weights, and its label under value_norm.
2. Token importance (Abnar & Zuidema 2020): for each input, the ablation importance of each text token (its
   id replaced by [MASK]; change of the objective) against what raw last-layer attention, rollout and flow
   give that token; mean Spearman correlation over inputs. Objectives: embedding (1 - cosine of the
   mean-pooled sentence embedding; attention / rollout / flow rows averaged over real positions) and, on the
   checkpoint, nsp (its [CLS] row).

    PYTHONPATH=src python scripts/effect_findings.py [--pairs 200] [--token-inputs 30] [--parts sinks,tokens]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from transformers import BertForPreTraining

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import attnlens  # noqa: E402
from attnlens.analysis.objectives import OBJECTIVES, padded_inputs, run  # noqa: E402
from attnlens.analysis.run import resolve_pairs  # noqa: E402
from attnlens.capturing import batches  # noqa: E402
from attnlens.pretraining.predict import shipped_checkpoint  # noqa: E402

SINKS = ("cls", "sep")


def sink_heads(lm, pairs) -> dict:
    """{head: (label under weights, label under value_norm, cls+sep mass under both)} for sink-labelled heads."""
    weights = attnlens.atlas(pairs, model=lm, progress=False)
    norms = attnlens.atlas(pairs, model=lm, progress=False, lens="value_norm")
    rows = {}
    for key, label in sorted(weights.labels.items()):
        if any(name in SINKS for name, _ in label.patterns):
            other = norms.labels[key]
            rows[f"L{key[0]} H{key[1]}"] = {
                "weights": label.name, "value_norm": other.name,
                "sink_mass_weights": round(float(sum(weights.scores[s][key] for s in SINKS)), 3),
                "sink_mass_value_norm": round(float(sum(norms.scores[s][key] for s in SINKS)), 3),
                "keeps_sink_label": any(name in SINKS for name, _ in other.patterns)}
    return rows


def spearman(a, b) -> float:
    rho = spearmanr(a, b).statistic
    return float(rho) if np.isfinite(rho) else float("nan")


@torch.no_grad()
def token_agreement(lm, pairs, objectives, want: int, max_tokens: int = 32) -> dict:
    """Per objective: mean Spearman (over inputs) of token ablation importance vs last-layer attention, rollout
    and flow (the maps are computed once per input), over the first `want` inputs of at most `max_tokens`."""
    scores = {o: {"attention": [], "rollout": [], "flow": []} for o in objectives}
    used = 0
    for batch in batches(lm, pairs, batch_size=1, skip=lambda _r: None):
        cap = batch.capture(0)
        if cap.num_tokens > max_tokens or used >= want:
            continue
        maps = {"attention": cap.attentions[-1].mean(0), "rollout": attnlens.lens(cap, "rollout")[-1],
                "flow": attnlens.lens(cap, "flow")[-1]}  # [T, T] each
        text = np.flatnonzero(~cap.special_mask)  # [N]
        inputs = padded_inputs(lm, batch)
        for objective in objectives:
            obj = OBJECTIVES[objective]
            targets = obj.prepare(lm, inputs, batch, 0, None)
            base, _ = run(obj, lm, inputs, targets)
            ablated = []
            for j in text:
                ids = targets.get("inputs", {}).get("input_ids", inputs["input_ids"]).clone()
                ids[0, j] = lm.tokenizer.mask_token_id
                loss, _ = run(obj, lm, inputs, {**targets, "inputs": {"input_ids": ids}})
                ablated.append(float(loss[0] - base[0]))
            rows = slice(0, 1) if objective == "nsp" else slice(None)  # [CLS] row, or every position
            for name, m in maps.items():
                scores[objective][name].append(spearman(ablated, m[rows].mean(0)[text]))
        used += 1
    return {o: {"inputs": used, **{k: round(float(np.nanmean(v)), 3) for k, v in per.items()}}
            for o, per in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--token-inputs", type=int, default=30, help="inputs of at most 32 tokens")
    parser.add_argument("--parts", default="sinks,tokens")
    args = parser.parse_args()
    pairs, _ = resolve_pairs(None, args.pairs)
    token_pairs, _ = resolve_pairs(None, 20 * args.token_inputs, seed=1)
    default = attnlens.load_model()
    ckpt = attnlens.load_model(shipped_checkpoint(), model_class=BertForPreTraining)
    out = {"pairs": len(pairs)}
    if "sinks" in args.parts:
        out["sink_heads"] = {"default": sink_heads(default, pairs), "checkpoint": sink_heads(ckpt, pairs)}
    if "tokens" in args.parts:
        n = args.token_inputs
        out["token_agreement"] = {"default": token_agreement(default, token_pairs, ["embedding"], n),
                                  "checkpoint": token_agreement(ckpt, token_pairs, ["embedding", "nsp"], n)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
