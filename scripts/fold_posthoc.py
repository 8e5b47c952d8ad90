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
    python scripts/fold_posthoc.py crossfit --corpus ravdess=PATH [--corpus ...] \
            --models runs/X/models runs/X/fold_*.json
        the test clips' calibration error (whole clips and 1 s crops) when the temperature is
        fitted on the whole ensemble's logits of unseen speakers, as the shipped model's is:
        each fold's test speakers of every corpus split in two halves, each half scaled by the
        temperature the other half's whole clips and 1 s crops fit (the folds fit theirs on
        single members' logits); needs the folds' kept models (`--save-models`)
    python scripts/fold_posthoc.py short --corpus ... --models runs/X/models runs/X/fold_*.json
        the 1 s crops through the kept models: RAVDESS's and nEMO's confusions, and a class-prior
        correction of short clips fitted on the other half of the test speakers' 1 s crops

Test clips are saved in corpus order; each corpus's slice is checked against the UA the
fold recorded for it, so a change in that order fails here rather than mislabelling.
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.special import softmax

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser.config import LABELS  # noqa: E402
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


def _kept_fold_args(args: list[str]) -> tuple[list, Path, list[str]]:
    """`--corpus NAME=PATH ... --models DIR FOLD.json ...`: the clips, the models' folder, the folds."""
    from ser.datasets import parse_corpus_arg, scan_corpora

    opts: dict[str, list[str]] = {"--corpus": [], "--models": []}
    paths = []
    it = iter(args)
    for a in it:
        opts[a].append(next(it)) if a in opts else paths.append(a)
    if not opts["--models"]:
        raise SystemExit("--models DIR (the folds' kept models, `training.evaluate --save-models`) is needed")
    return scan_corpora(parse_corpus_arg(a) for a in opts["--corpus"]).clips, Path(opts["--models"][0]), paths


def _kept_fold(path: str, clips: list, models: Path):
    """A fold's record, its test clips (indices into `clips`, in the fold's order), its kept
    model and a feature store with its recipe's cached views."""
    import keras

    import training.model  # noqa: F401  (registers the custom layers the saved model uses)
    from training.config import TrainConfig
    from training.data import store_for

    run = json.load(open(path))
    test = [i for i, c in enumerate(clips) if c.speaker in set(run["test_speakers"])]
    if [LABELS.index(clips[i].label) for i in test] != run["clip_predictions"]["test_y"]:
        raise SystemExit(f"{path}: the corpora given do not hold the fold's test clips in its order")
    model = keras.models.load_model(models / f"fold_{run['fold']}" / "model.keras")
    return run, test, model, store_for(clips, TrainConfig.from_record(run["config"]))


def _halves(speaker: np.ndarray, fold: int) -> np.ndarray:
    """Each corpus's test speakers, alternately in two halves (True: the second)."""
    half = np.zeros(len(speaker), bool)
    for c in CORPORA:
        for k, name in enumerate(sorted({s for s in speaker if s.startswith(f"{c}:")})):
            half[speaker == name] = (k + fold) % 2 == 1
    return half


def crossfit(args: list[str]) -> dict[str, list[dict[str, float]]]:
    """Test ECE (%) per corpus and pooled, clean clips and 1 s crops, unscaled / as the fold
    scaled / cross-fitted. The 1 s crops' logits come from the fold's kept model (its
    calibrated probabilities times its temperature: softmax ignores the constant left)."""
    clips, models, paths = _kept_fold_args(args)
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    for path in paths:
        run, test, model, store = _kept_fold(path, clips, models)
        cp = {k: np.asarray(v) for k, v in run["clip_predictions"].items()}
        tx, tclip, ty, tcorpus = cp["test_window_logits"], cp["test_window_clip"], cp["test_y"], cp["test_corpus"]
        clean = store.clean_set(test)
        if not np.allclose(model.predict(clean.x, batch_size=256, verbose=0),
                           softmax(tx / run["temperature"], axis=1), atol=2e-3):  # fmt: skip
            raise SystemExit(f"{path}: the kept model does not give back the fold's saved logits")
        short = store.window_set(test, "len:1.0")
        sx = run["temperature"] * np.log(np.maximum(model.predict(short.x, batch_size=256, verbose=0), 1e-12))
        sclip = np.searchsorted(test, short.clip)  # the row of each window's clip
        half = _halves(np.array([clips[i].speaker for i in test]), run["fold"])
        probs = {"clean": np.empty((len(ty), tx.shape[1])), "1 s": np.empty((len(ty), tx.shape[1]))}
        fitted = []
        for side in (False, True):  # fit on one half's whole clips and 1 s crops, as validation does
            fx = np.concatenate([tx[half[tclip] == side], sx[half[sclip] == side]])
            fy = np.concatenate([ty[tclip][half[tclip] == side], ty[sclip][half[sclip] == side]])
            fitted.append(fit_temperature(fx, fy))
            for view, (x, row) in {"clean": (tx, tclip), "1 s": (sx, sclip)}.items():
                keep = half[row] != side
                ids, p = clip_probabilities(x[keep], row[keep], fitted[-1])
                probs[view][ids] = p
        print(f"{path}: T as the fold fitted it {run['temperature']:.2f}, on the ensemble's test halves "
              + " / ".join(f"{t:.2f}" for t in fitted))  # fmt: skip
        cells = {c: tcorpus == c for c in CORPORA if (tcorpus == c).any()} | {"all": np.ones(len(ty), bool)}
        for view, (x, row) in {"clean": (tx, tclip), "1 s": (sx, sclip)}.items():
            for mode, t in {"unscaled": 1.0, "as the fold scaled": run["temperature"]}.items():
                p = clip_probabilities(x, row, t)[1]
                rows[f"{view}, {mode}"].append({c: expected_calibration_error(ty[m], p[m]) for c, m in cells.items()})
            found = {c: expected_calibration_error(ty[m], probs[view][m]) for c, m in cells.items()}
            rows[f"{view}, cross-fitted"].append(found)
    for mode, found in rows.items():
        print(f"{mode:30} ECE % " + "  ".join(
            f"{c} {100 * np.mean([r[c] for r in found]):5.1f}" for c in found[0]))  # fmt: skip
    return rows


def short(args: list[str]) -> dict[float, list[dict[str, float]]]:
    """1 s crops: where RAVDESS's and nEMO's answers go, and UA % per corpus with each
    crop's probabilities divided by the classes' mean probability over the other half's
    1 s crops, to a power (0: as served; the script stops unless it gives back the fold's
    recorded UA)."""
    clips, models, paths = _kept_fold_args(args)
    rows: dict[float, list[dict[str, float]]] = defaultdict(list)
    confusion = {c: np.zeros((len(LABELS), len(LABELS)), int) for c in ("ravdess", "nemo")}
    for path in paths:
        run, test, model, store = _kept_fold(path, clips, models)
        crops = store.window_set(test, "len:1.0")
        ids, p = clip_probabilities(np.log(np.maximum(model.predict(crops.x, batch_size=256, verbose=0), 1e-12)),
                                    crops.clip)  # fmt: skip
        y = np.array([LABELS.index(clips[i].label) for i in ids])
        corpus = np.array([clips[i].corpus for i in ids])
        half = _halves(np.array([clips[i].speaker for i in ids]), run["fold"])
        cells = {c: corpus == c for c in CORPORA} | {"all": np.ones(len(y), bool)}
        for power in (0.0, 0.5, 1.0):
            q = p.copy()
            for side in (False, True):
                q[half != side] = p[half != side] / p[half == side].mean(0) ** power
            rows[power].append({c: ua(y[m], q[m]) for c, m in cells.items()})
        recorded = run["views"]["len:1.0"]
        if any(abs(rows[0.0][-1][c] - recorded[c]["unweighted_accuracy"]) > 1e-3 for c in cells):
            raise SystemExit(f"{path}: the kept model's 1 s crops do not give back the fold's recorded UA")
        for c, m in confusion.items():
            np.add.at(m, (y[corpus == c], p[corpus == c].argmax(1)), 1)
    for c, m in confusion.items():
        print(f"{c}, 1 s crops (rows: true, columns: answered {', '.join(LABELS)})")
        for label, row in zip(LABELS, m, strict=True):
            if row.sum():
                print(f"  {label:10}" + "".join(f"{n:5d}" for n in row) + f"   recall {row[LABELS.index(label)] / row.sum():.2f}")
    for power, found in rows.items():
        show(f"prior correction, power {power}", found)
    return rows


if __name__ == "__main__":
    modes = {"prior": prior, "average": average, "temperature": temperature, "crossfit": crossfit, "short": short}
    if len(sys.argv) < 3 or sys.argv[1] not in modes:
        raise SystemExit(__doc__)
    modes[sys.argv[1]](sys.argv[2:])
