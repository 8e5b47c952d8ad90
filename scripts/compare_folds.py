"""One fold of a recipe against the same fold of another, UA % per view and corpus.

    python scripts/compare_folds.py runs/exp_e3/fold_3.json runs/prev_evaluation.json

The first argument is a fold's JSON (`training.evaluate --run-folds i`); the second an
`evaluation.json` whose `speaker_cv` holds the same fold. The two must have tested the same
speakers (checked): the table in docs/results/exp_e3.md is this script's output.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CORPORA = ("ravdess", "emodb", "nemo", "ased", "all")


def cell(views: dict, view: str, corpus: str) -> str:
    per = views.get(view, {}).get(corpus)
    return f"{100 * per['unweighted_accuracy']:5.1f}" if per else "    -"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fold", type=Path)
    p.add_argument("baseline", type=Path)
    args = p.parse_args(argv)
    fold = json.loads(args.fold.read_text())
    folds = json.loads(args.baseline.read_text())["speaker_cv"]["folds"]
    base = next(f for f in folds if f["fold"] == fold["fold"])
    if sorted(base["test_speakers"]) != sorted(fold["test_speakers"]):
        raise SystemExit(f"fold {fold['fold']}: the two tested different speakers")
    print(f"{'view':14}" + "".join(f"{c:>16}" for c in CORPORA))
    for view in fold["views"]:
        row = "".join(f"  {cell(fold['views'], view, c)} / {cell(base['views'], view, c)}  " for c in CORPORA)
        print(f"{view:14}{row}")
    clean = fold["views"]["clean"]["all"]
    print(f"temperature {fold['temperature']:.2f}; test clips {clean['n']}; "
          f"ECE raw {100 * clean['ece_uncalibrated']:.1f} %, calibrated {100 * clean['ece']:.1f} %; "
          f"{fold['seconds']:,.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
