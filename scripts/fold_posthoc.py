"""What post-hoc changes would buy, from the clip probabilities fold results saved; no training.

    python scripts/fold_posthoc.py prior runs/exp_w2/fold_*.json
        dividing the probabilities by the classes' mean validation probability to a power
        (a prior correction, its power chosen on each fold's validation speakers)
    python scripts/fold_posthoc.py average runs/exp_k2/fold_0.json runs/exp_w2/fold_0.json ...
        averaging the clip probabilities of runs of the same fold (an ensemble of runs)

Test clips are saved in corpus order; each corpus's slice is checked against the UA the
fold recorded for it, so a change in that order fails here rather than mislabelling.
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.metrics import summary  # noqa: E402

CORPORA = ("ravdess", "emodb", "nemo", "ased")
POWERS = np.arange(0.0, 1.01, 0.125)


def ua(y: np.ndarray, p: np.ndarray) -> float:
    """The folds' own unweighted accuracy, so the corpus-order check compares like with like."""
    return summary(y, p)["unweighted_accuracy"]


def corpus_slices(fold: dict, y: np.ndarray, p: np.ndarray) -> dict[str, slice]:
    out, start = {}, 0
    for corpus in CORPORA:
        n = fold["views"]["clean"][corpus]["n"]
        out[corpus] = slice(start, start + n)
        start += n
        recorded = fold["views"]["clean"][corpus]["unweighted_accuracy"]
        if abs(ua(y[out[corpus]], p[out[corpus]]) - recorded) > 1e-3:
            raise SystemExit(f"fold {fold['fold']}: test clips are not in corpus order {CORPORA}")
    return out


def per_corpus(y: np.ndarray, p: np.ndarray, slices: dict[str, slice]) -> dict[str, float]:
    return {c: ua(y[s], p[s]) for c, s in slices.items()} | {"all": ua(y, p)}


def load(path: str) -> tuple[dict, np.ndarray, np.ndarray]:
    fold = json.load(open(path))
    cp = fold["clip_predictions"]
    y, p = np.asarray(cp["test_y"]), np.asarray(cp["test_probs"])
    return fold, y, p


def show(name: str, rows: list[dict[str, float]]) -> None:
    print(f"{name:28}" + "".join(f"{c} {100 * np.mean([r[c] for r in rows]):5.1f}  " for c in rows[0]))


def prior(paths: list[str]) -> None:
    before, after = [], []
    for path in paths:
        fold, y, p = load(path)
        vy, vp = (np.asarray(fold["clip_predictions"][k]) for k in ("val_y", "val_probs"))
        mass = vp.mean(0)
        power = max(POWERS, key=lambda t: ua(vy, vp / mass**t))
        slices = corpus_slices(fold, y, p)
        before.append(per_corpus(y, p, slices))
        after.append(per_corpus(y, p / mass**power, slices))
        print(f"{path}: power {power:.3f} (validation UA {ua(vy, vp):.3f} -> {ua(vy, vp / mass**power):.3f})")
    show("as saved", before)
    show("prior-corrected", after)


def average(paths: list[str]) -> None:
    by_fold = defaultdict(list)
    for path in paths:
        by_fold[json.load(open(path))["fold"]].append(path)
    singles, averaged = defaultdict(list), []
    for k, group in sorted(by_fold.items()):
        parts = [load(p) for p in group]
        fold, y, _ = parts[0]
        if any(not np.array_equal(y, other_y) for _, other_y, _ in parts[1:]):
            raise SystemExit(f"fold {k}: the runs were not tested on the same clips")
        slices = corpus_slices(fold, y, parts[0][2])
        for path, (_, _, p) in zip(group, parts, strict=True):
            singles[path.rsplit("/", 2)[-2]].append(per_corpus(y, p, slices))
        averaged.append(per_corpus(y, np.mean([p for _, _, p in parts], axis=0), slices))
        print(f"fold {k}: " + " + ".join(group))
    for run, rows in singles.items():
        show(run, rows)
    show("averaged", averaged)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("prior", "average"):
        raise SystemExit(__doc__)
    {"prior": prior, "average": average}[sys.argv[1]](sys.argv[2:])
