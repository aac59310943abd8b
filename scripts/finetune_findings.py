"""The README's fine-tuning findings, measured on finished runs of `attnlens finetune`.

For each RUN_DIR (a fine-tuning run on a built-in task): held-out accuracy / macro-F1 of the fine-tuned
model, of the majority class and of a bag-of-words logistic regression (scikit-learn) on the same held-out
examples; the attention diff against the model it started from (per layer, and which labelled heads kept
or lost their label); and every single head disabled in turn (zero context / uniform attention,
attnlens.analysis.interventions.ablate_heads) on a fixed sample of --ablation-examples of those examples.

    python scripts/finetune_findings.py RUN_DIR [RUN_DIR ...] --out findings.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from attnlens.analysis.interventions import ablate_heads
from attnlens.capturing import LoadedModel
from attnlens.finetuning.compare import diff
from attnlens.finetuning.data import encode_examples
from attnlens.finetuning.predict import evaluate_encoded, load_classifier
from attnlens.finetuning.tasks import classification_metrics, load_task
from attnlens.finetuning.trainer import eval_subset
from attnlens.pretraining.checkpoint import latest_checkpoint


def bag_of_words(task, examples) -> dict:
    """A logistic regression on word counts (A and B counted separately for pairs), trained on the train split."""
    vec_a, vec_b = CountVectorizer(min_df=2), CountVectorizer(min_df=2)

    def features(rows, fit):
        a = (vec_a.fit_transform if fit else vec_a.transform)([r.a for r in rows])
        if task.kind != "pair":
            return a
        return hstack([a, (vec_b.fit_transform if fit else vec_b.transform)([r.b for r in rows])]).tocsr()

    index = {n: i for i, n in enumerate(task.labels)}
    clf = LogisticRegression(max_iter=2000)
    clf.fit(features(task.train, True), [index[r.label] for r in task.train])
    predicted = clf.predict(features(examples, False))
    return classification_metrics(np.array([index[r.label] for r in examples]), predicted, len(task.labels))


def ablations(lm: LoadedModel, encoded, num_labels: int, pad_id: int, kinds=("zero", "uniform")) -> dict:
    base = evaluate_encoded(lm.model, encoded, num_labels, pad_id)
    rows = []
    for kind in kinds:
        for layer in range(lm.num_layers):
            for head in range(lm.num_heads):
                def around(batch, layer=layer, head=head, kind=kind):
                    return ablate_heads(lm, [(layer, head)], kind, mask=batch.attention_mask)
                m = evaluate_encoded(lm.model, encoded, num_labels, pad_id, around=around)
                rows.append({"kind": kind, "layer": layer, "head": head, "accuracy": m["accuracy"],
                             "macro_f1": m["macro_f1"], "d_accuracy": m["accuracy"] - base["accuracy"],
                             "d_macro_f1": m["macro_f1"] - base["macro_f1"]})
    best = max(rows, key=lambda r: (r["d_accuracy"], r["d_macro_f1"]))
    worst = min(rows, key=lambda r: (r["d_accuracy"], r["d_macro_f1"]))
    harmless = sum(r["d_accuracy"] >= 0 for r in rows)
    return {"examples": len(encoded), "base": base, "best": best, "worst": worst,
            "no_loss_or_gain": harmless, "ablations": len(rows), "rows": rows}


def findings(run_dir: Path, diff_limit: int, ablation_examples: int, kinds) -> dict:
    record = json.loads((run_dir / "run.json").read_text())
    config = record["config"]
    task = load_task(config["task"], config.get("heldout"), config["seed"])
    examples = eval_subset(task.heldout, config["eval_limit"])
    lm = load_classifier(str(latest_checkpoint(run_dir)))
    pad = lm.tokenizer.pad_token_id
    t0 = time.time()
    encoded = encode_examples(task, examples, lm.tokenizer, record["max_length"])
    out = {"run": str(run_dir), "task": task.name, "model": record["source"], "steps": config["steps"],
           "batch_size": config["batch_size"], "lr": config["lr"], "max_length": record["max_length"],
           "heldout_examples": len(examples),
           "finetuned": evaluate_encoded(lm.model, encoded, len(task.labels), pad),
           "majority": replace(task, heldout=examples).majority_baseline(),
           "bag_of_words": bag_of_words(task, examples)}
    print(run_dir.name, "metrics", round(time.time() - t0), "s", flush=True)
    d = diff(record["source"], str(latest_checkpoint(run_dir)), None, limit=diff_limit)
    changes = d.label_changes()
    out["diff"] = {"inputs": d.atlas_a.inputs, "layer_tv": [float(v) for v in d.layer_tv],
                   "kept": [c for c in changes if c["change"] == "kept"],
                   "lost": [c for c in changes if c["change"] == "lost"],
                   "gained": [c for c in changes if c["change"] == "gained"]}
    print(run_dir.name, "diff", round(time.time() - t0), "s", flush=True)
    sub = encode_examples(task, eval_subset(examples, ablation_examples), lm.tokenizer, record["max_length"])
    out["heads_disabled"] = ablations(lm, sub, len(task.labels), pad, kinds)
    print(run_dir.name, "ablations", round(time.time() - t0), "s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", default="findings.json")
    parser.add_argument("--diff-limit", type=int, default=150)
    parser.add_argument("--ablation-examples", type=int, default=300)
    parser.add_argument("--kinds", default="zero,uniform", help="head ablations (analysis.interventions)")
    args = parser.parse_args()
    results = []
    for run in args.runs:
        results.append(findings(Path(run), args.diff_limit, args.ablation_examples, args.kinds.split(",")))
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    for r in results:
        h = r["heads_disabled"]
        print(f"{Path(r['run']).name}: acc {r['finetuned']['accuracy']:.3f} F1 {r['finetuned']['macro_f1']:.3f} | "
              f"majority {r['majority']['accuracy']:.3f}/{r['majority']['macro_f1']:.3f} | BoW "
              f"{r['bag_of_words']['accuracy']:.3f}/{r['bag_of_words']['macro_f1']:.3f} | layer TV "
              + " ".join(f"{v:.3f}" for v in r["diff"]["layer_tv"])
              + f" | kept {len(r['diff']['kept'])} lost {len(r['diff']['lost'])} gained {len(r['diff']['gained'])}"
              f" | ablation best {h['best']['kind']} L{h['best']['layer']}H{h['best']['head']} "
              f"{h['best']['d_accuracy']:+.3f}, worst {h['worst']['kind']} L{h['worst']['layer']}H{h['worst']['head']}"
              f" {h['worst']['d_accuracy']:+.3f}, {h['no_loss_or_gain']}/{h['ablations']} without loss")


if __name__ == "__main__":
    main()
