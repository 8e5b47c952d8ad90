"""What post-hoc changes would buy, from the clip probabilities fold results saved; no training.

    python scripts/fold_posthoc.py prior runs/exp_w2/fold_*.json
        dividing the probabilities by the classes' mean validation probability to a power
        (a prior correction, its power chosen on each fold's validation speakers)
    python scripts/fold_posthoc.py average runs/exp_k2/fold_0.json runs/exp_w2/fold_0.json ...
        averaging the clip probabilities of runs of the same fold (an ensemble of runs)
    python scripts/fold_posthoc.py temperature runs/X/fold_*.json runs/X/loco_*.json
        the temperature fitted on the validation windows as training fits it (every window
        alike) or corpus-balanced (every corpus alike): the test clips' calibration error
        per corpus with each, and unscaled (runs saved since 2026-12-07 only: window logits)

Test clips are saved in corpus order; each corpus's slice is checked against the UA the
fold recorded for it, so a change in that order fails here rather than mislabelling.
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.metrics import (  # noqa: E402
    clip_probabilities,
    corpus_balanced,
    expected_calibration_error,
    fit_temperature,
    summary,
)

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


def temperature(paths: list[str]) -> dict[str, list[dict[str, float]]]:
    """Test ECE (%) per corpus and pooled, by way of fitting: {mode: one row per run}."""
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    for path in paths:
        run = json.load(open(path))
        cp = {k: np.asarray(v) for k, v in run["clip_predictions"].items()}
        if "val_window_logits" not in cp:
            raise SystemExit(f"{path}: saved without window logits (before 2026-12-07)")
        vx, vclip, tx, tclip = (cp[k] for k in ("val_window_logits", "val_window_clip",
                                                 "test_window_logits", "test_window_clip"))  # fmt: skip
        vy, vcorpus = cp["val_y"][vclip], cp["val_corpus"][vclip]
        ty, tcorpus = cp["test_y"], cp["test_corpus"]
        if not np.allclose(clip_probabilities(tx, tclip, run["temperature"])[1], cp["test_probs"], atol=2e-3):
            raise SystemExit(f"{path}: the window logits do not give the saved test answers")
        fits = {"unscaled": 1.0, "window-weighted": fit_temperature(vx, vy),
                "corpus-balanced": fit_temperature(vx, vy, corpus_balanced(vcorpus))}  # fmt: skip
        print(f"{path}: T as trained {run['temperature']:.2f}, refitted window-weighted "
              f"{fits['window-weighted']:.2f}, corpus-balanced {fits['corpus-balanced']:.2f}")  # fmt: skip
        for mode, t in fits.items():
            probs = clip_probabilities(tx, tclip, t)[1]
            cells = {c: tcorpus == c for c in CORPORA if (tcorpus == c).any()} | {"all": np.ones(len(ty), bool)}
            rows[mode].append({c: expected_calibration_error(ty[m], probs[m]) for c, m in cells.items()})
    for mode, found in rows.items():
        names = [c for c in (*CORPORA, "all") if any(c in r for r in found)]
        print(f"{mode:16} ECE % " + "  ".join(
            f"{c} {100 * np.mean([r[c] for r in found if c in r]):5.1f}" for c in names))  # fmt: skip
    return rows


if __name__ == "__main__":
    modes = {"prior": prior, "average": average, "temperature": temperature}
    if len(sys.argv) < 3 or sys.argv[1] not in modes:
        raise SystemExit(__doc__)
    modes[sys.argv[1]](sys.argv[2:])
