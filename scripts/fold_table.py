"""One fold's unweighted accuracy (%) per view and corpus, alone or against the same fold of
another recipe:

    python -m scripts.fold_table runs/eval/fold_0.json [runs/eval/fold_1.json ...]
    python -m scripts.fold_table runs/exp_e3/fold_3.json --against runs/prev_evaluation.json

A fold's JSON is what `training.evaluate --run-folds i` writes. `--against` takes an
`evaluation.json` whose `speaker_cv` holds the same fold; each cell then reads "this / that",
and the two must have tested the same speakers (checked): the tables in docs/results/exp_e3.md
are this script's output.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scripts.accuracy_table import corpus_columns


def cell(views: dict, view: str, corpus: str) -> str:
    per = views.get(view, {}).get(corpus)
    return f"{100 * per['unweighted_accuracy']:5.1f}" if per else "    -"


def table(fold: dict, baseline: dict | None = None) -> str:
    """The fold's views as rows, its corpora and "all" as columns."""
    views = fold["views"]
    corpora = [*corpus_columns(views["clean"]), "all"]
    width = 16 if baseline else 8
    lines = [f"{'view':14}" + "".join(f"{c:>{width}}" for c in corpora)]
    for view in views:
        if baseline:
            row = "".join(f"  {cell(views, view, c)} / {cell(baseline['views'], view, c)}  " for c in corpora)
        else:
            row = "".join(f"   {cell(views, view, c)}" for c in corpora)
        lines.append(f"{view:14}{row}")
    clean = views["clean"]["all"]
    lines.append(f"temperature {fold.get('temperature', float('nan')):.2f}; test clips {clean['n']}; "
                 f"ECE raw {100 * clean['ece_uncalibrated']:.1f} %, calibrated {100 * clean['ece']:.1f} %; "
                 f"{fold.get('seconds', 0):,.0f} s")  # fmt: skip
    return "\n".join(lines)


def same_fold(fold: dict, evaluation: dict) -> dict:
    """The fold of `evaluation` that tested the same speakers as `fold`, or exit saying why not."""
    folds = evaluation.get("speaker_cv", {}).get("folds", [])
    base = next((f for f in folds if f["fold"] == fold["fold"]), None)
    if base is None:
        raise SystemExit(f"fold {fold['fold']}: not in the baseline evaluation")
    if sorted(base["test_speakers"]) != sorted(fold["test_speakers"]):
        raise SystemExit(f"fold {fold['fold']}: the two tested different speakers")
    return base


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folds", type=Path, nargs="+", help="fold_<i>.json files")
    p.add_argument("--against", type=Path, metavar="EVALUATION", help="an evaluation.json holding the same folds")
    args = p.parse_args(argv)
    evaluation = json.loads(args.against.read_text()) if args.against else None
    for path in args.folds:
        fold = json.loads(path.read_text())
        print(f"{path}: fold {fold['fold']}" + (f" against {args.against}" if evaluation else ""))
        print(table(fold, same_fold(fold, evaluation) if evaluation else None))


if __name__ == "__main__":
    main()
