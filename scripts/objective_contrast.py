"""The two emergence curves of an MLM + NSP run and a CLM run side by side (the README's objective contrast).

    python scripts/objective_contrast.py RUN_MLM/emergence.json RUN_CLM/emergence.json docs/emergence_mlm_vs_clm.png

Both runs must have the same checkpoint steps (same --steps/--save-every/--batch-size: one token budget).
Draws each pattern's best-head score against the step, one panel per objective, with the chance levels
dotted; a pattern that is not defined for the decoder (next_token) is named in its panel instead of drawn
as 0. Prints a markdown table of the best head per pattern at every checkpoint.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after matplotlib.use)

SHOWN = ("previous_token", "next_token", "self", "same_token", "cls", "sep", "punctuation", "bag_of_words")


def main(mlm_json: str, clm_json: str, out_png: str) -> None:
    runs = {"MLM + NSP (BERT encoder)": json.loads(Path(mlm_json).read_text()),
            "CLM (GPT-2-style decoder)": json.loads(Path(clm_json).read_text())}
    steps = [r["steps"] for r in runs.values()]
    if steps[0] != steps[1]:
        sys.exit(f"the runs have different checkpoints: {steps[0]} vs {steps[1]}")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110, sharey=True)
    colors = dict(zip(SHOWN, plt.get_cmap("tab10").colors, strict=False))
    for ax, (title, run) in zip(axes, runs.items(), strict=True):
        for name in SHOWN:
            values = run["best"].get(name)
            if not values or all(v is None for v in values):
                continue
            ax.plot(run["steps"], values, marker="o", markersize=3, label=name, color=colors[name])
            chance = run["chance"].get(name)
            if chance is not None:
                ax.axhline(chance, color=colors[name], linewidth=0.6, linestyle=":")
        undefined = [n for n in run.get("undefined", {}) if n in SHOWN]
        if undefined:
            ax.text(0.98, 0.97, "not defined (needs later tokens): " + ", ".join(undefined), transform=ax.transAxes,
                    ha="right", va="top", fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("best head's score (dotted: chance)")
    axes[0].legend(fontsize=7, loc="upper left", ncol=2)
    fig.suptitle(f"Same corpus, tokenizer, inputs and token budget; atlas over {runs[title]['inputs']} held-out pairs",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out_png)
    print(f"saved {out_png}")
    for title, run in runs.items():
        print(f"\n{title}\n\n| pattern | chance | " + " | ".join(str(s) for s in run["steps"]) + " |")
        print("|---|---:|" + "---:|" * len(run["steps"]))
        for name in SHOWN:
            chance = run["chance"].get(name)
            cells = ["n/a" if v is None else f"{v:.3f} (L{h[0]} H{h[1]})"
                     for v, h in zip(run["best"][name], run["best_head"][name], strict=True)]
            print(f"| {name} | {'n/a' if chance is None else f'{chance:.3f}'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
