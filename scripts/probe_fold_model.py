"""What a fold's kept model does with its test speakers' clips changed one way at a time; no training.

    python scripts/probe_fold_model.py phases --corpus ravdess=PATH [--corpus ...] \
        runs/exp_e3full/fold_0.json runs/exp_e3full/models/fold_0 [FOLD.json MODEL_DIR ...]
    python scripts/probe_fold_model.py phone --corpus ... FOLD.json MODEL_DIR [...]
    python scripts/probe_fold_model.py short --corpus ... FOLD.json MODEL_DIR [...]
    python scripts/probe_fold_model.py calibration --corpus ... FOLD.json MODEL_DIR [...]

Each fold's JSON names its test speakers; its model was kept by `training.evaluate
--save-models`. Every probe also scores the clips as the evaluation did, with its own seeds,
and stops if that does not give back the UA the fold recorded.

`phases`: a clip shorter than the 4 s window is tiled (`ser.features.fit_window`), so the
network hears it from its first sample on; started elsewhere, the same loop makes another
window. The 1 s and 2 s crops around the speech (`training.degrade.length_crop`) as served
(one window) and as the mean of the probabilities of K windows whose loops start K evenly
spaced points into the crop.

`phone`: which part of the evaluation's telephone line (`training.degrade.phone`: a 300-3400
Hz Chebyshev band-pass, then 8 kHz mu-law) costs accuracy: each part alone, then together.

`short`: the 1 s crops around the speech (the cache's `len:1.0` view, as the evaluation
scored them): where RAVDESS's and nEMO's answers go, and UA with each crop's probabilities
divided by the classes' mean probability over the other half of the fold's test speakers'
1 s crops (`Fold.halves`), to a power (0: as served).

`calibration`: the folds fit their temperature on single members' logits; the shipped model
fits it on the whole ensemble's. ECE of the test clips (whole clips and 1 s crops) unscaled,
as the fold scaled them, and with the temperature fitted on the ensemble's logits of the
other half's whole clips and 1 s crops (cross-fitted, as validation fits it).

Prints unweighted accuracy % (ECE % for `calibration`) per corpus, the mean over the folds given.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.special import softmax

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser.audio import load_audio  # noqa: E402
from ser.config import LABELS  # noqa: E402
from ser.datasets import Clip, parse_corpus_arg, scan_corpora  # noqa: E402
from ser.features import clip_features, fit_window, mfcc  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.data import _clip_seed, store_for  # noqa: E402
from training.degrade import length_crop, mulaw_8k, peak, phone, phone_filter  # noqa: E402
from training.metrics import clip_probabilities, expected_calibration_error, fit_temperature, summary  # noqa: E402

PHASES = (1, 2, 4, 8)
Rows = dict[tuple[str, str], list[float]]  # (variant, corpus or "all") -> UA % per fold


def phase_windows(crop: np.ndarray, k: int) -> np.ndarray:
    """(k, N_SAMPLES): the crop's loop started at k evenly spaced points."""
    return np.stack([fit_window(np.roll(crop, -(j * crop.shape[0]) // k)) for j in range(k)])


PHONE_PARTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clean": lambda x: x,
    "high-pass 300 Hz": lambda x: phone_filter(x, "highpass"),
    "low-pass 3400 Hz": lambda x: phone_filter(x, "lowpass"),
    "band-pass 300-3400 Hz": phone_filter,
    "8 kHz mu-law alone": lambda x: mulaw_8k(peak(x)),
    "telephone (all)": lambda x: phone(x, np.random.default_rng(0)),
}
RECORDED = {"clean": "clean", "telephone (all)": "cond:phone"}  # the fold's own views


class Fold:
    """A fold's test clips and kept model; `score` adds each variant's UA per corpus to `rows`."""

    def __init__(self, fold_json: Path, model_dir: Path, clips: list[Clip]) -> None:
        import keras

        import training.model  # noqa: F401  (registers the custom layers the saved model uses)

        self.record = json.loads(fold_json.read_text())
        self.seed = TrainConfig.from_record(self.record["config"]).seed
        self.model = keras.models.load_model(model_dir / "model.keras")
        self.index = [i for i, c in enumerate(clips) if c.speaker in set(self.record["test_speakers"])]
        self.test = [clips[i] for i in self.index]
        self.y = np.array([LABELS.index(c.label) for c in self.test])
        self.corpus = np.array([c.corpus for c in self.test])
        if self.y.tolist() != self.record["clip_predictions"]["test_y"]:
            raise SystemExit(f"{fold_json}: the corpora given do not hold the fold's test clips in its order")
        self.store = store_for(clips, TrainConfig.from_record(self.record["config"]))  # its cached views

    def halves(self) -> np.ndarray:
        """Each corpus's test speakers, alternately in two halves (True: the second)."""
        speaker = np.array([c.speaker for c in self.test])
        half = np.zeros(len(speaker), bool)
        for corpus in sorted(set(self.corpus)):
            for k, name in enumerate(sorted(set(speaker[self.corpus == corpus]))):
                half[speaker == name] = (k + self.record["fold"]) % 2 == 1
        return half

    def window_logits(self, view: str) -> tuple[np.ndarray, np.ndarray]:
        """The kept model's logits for a cached view's windows (its calibrated probabilities
        times its temperature: softmax ignores the constant left) and each window's clip row."""
        windows = self.store.window_set(self.index, view)
        p = self.model.predict(windows.x, batch_size=256, verbose=0)
        return self.record["temperature"] * np.log(np.maximum(p, 1e-12)), np.searchsorted(self.index, windows.clip)

    def rng(self, clip: Clip, view: str) -> np.random.Generator:
        return np.random.default_rng(_clip_seed(clip.path, view, self.seed))

    def score(self, rows: Rows, variant: str, windows: list[np.ndarray], view: str | None) -> None:
        """`windows`: each test clip's MFCC windows; their probabilities are averaged per clip,
        as served. With `view`, the fold's recorded UA for it must come back."""
        p = self.model.predict(np.concatenate(windows), batch_size=256, verbose=0)
        owner = np.repeat(np.arange(len(windows)), [len(w) for w in windows])
        probs = np.stack([p[owner == i].mean(axis=0) for i in range(len(windows))])
        for name in ("all", *sorted(set(self.corpus))):
            m = self.corpus == name if name != "all" else np.ones(len(self.y), bool)
            got = summary(self.y[m], probs[m])["unweighted_accuracy"]
            want = self.record["views"][view][name]["unweighted_accuracy"] if view else got
            if abs(got - want) > 0.005:
                raise SystemExit(f"fold {self.record['fold']} {view} {name}: {got:.4f}, recorded {want:.4f}")
            rows.setdefault((variant, name), []).append(100 * got)


def probe_phases(fold: Fold, rows: Rows, seconds: list[float]) -> None:
    for s in seconds:
        view = f"len:{s}"
        crops = [length_crop(load_audio(c.path), s, fold.rng(c, view)) for c in fold.test]
        for k in PHASES:
            fold.score(rows, f"{s:g} s, {k} phase{'s' if k > 1 else ''}",
                       [mfcc(phase_windows(c, k)) for c in crops], view if k == 1 else None)  # fmt: skip


def probe_phone(fold: Fold, rows: Rows) -> None:
    audio = [load_audio(c.path) for c in fold.test]
    for name, change in PHONE_PARTS.items():
        fold.score(rows, name, [clip_features(change(x))[0] for x in audio], RECORDED.get(name))


def cells(fold: Fold) -> dict[str, np.ndarray]:
    return {"all": np.ones(len(fold.y), bool)} | {c: fold.corpus == c for c in sorted(set(fold.corpus))}


def probe_short(fold: Fold, rows: Rows, confusion: dict[str, np.ndarray]) -> None:
    logits, row = fold.window_logits("len:1.0")
    p = clip_probabilities(logits, row, fold.record["temperature"])[1]
    half = fold.halves()
    for power in (0.0, 0.5, 1.0):
        q = p.copy()
        for side in (False, True):
            q[half != side] = p[half != side] / p[half == side].mean(0) ** power
        for name, m in cells(fold).items():
            got = summary(fold.y[m], q[m])["unweighted_accuracy"]
            if power == 0 and abs(got - fold.record["views"]["len:1.0"][name]["unweighted_accuracy"]) > 0.005:
                raise SystemExit(f"fold {fold.record['fold']} len:1.0 {name}: {got:.4f}, not the recorded UA")
            rows.setdefault((f"1 s, prior correction {power:g}", name), []).append(100 * got)
    for corpus, m in confusion.items():
        np.add.at(m, (fold.y[fold.corpus == corpus], p[fold.corpus == corpus].argmax(1)), 1)


def probe_calibration(fold: Fold, rows: Rows) -> None:
    cp = {k: np.asarray(v) for k, v in fold.record["clip_predictions"].items()}
    clean, clean_row = fold.window_logits("clean")
    if not np.allclose(softmax(clean, axis=1), softmax(cp["test_window_logits"], axis=1), atol=2e-3):
        raise SystemExit(f"fold {fold.record['fold']}: the kept model does not give back the saved logits")
    views = {"whole clips": (clean, clean_row), "1 s": fold.window_logits("len:1.0")}
    half, y, t_fold = fold.halves(), fold.y, fold.record["temperature"]
    crossfitted = {view: np.empty((len(y), clean.shape[1])) for view in views}
    for side in (False, True):  # fit on one half's whole clips and 1 s crops, as validation does
        t = fit_temperature(np.concatenate([x[half[r] == side] for x, r in views.values()]),
                            np.concatenate([y[r][half[r] == side] for _, r in views.values()]))  # fmt: skip
        print(f"fold {fold.record['fold']}: T {t_fold:.2f} as fitted on members, {t:.2f} on the ensemble's half {int(side)}")
        for view, (x, r) in views.items():
            keep = half[r] != side
            ids, p = clip_probabilities(x[keep], r[keep], t)
            crossfitted[view][ids] = p
    for view, (x, r) in views.items():
        for how, p in {"unscaled": clip_probabilities(x, r)[1], "as the fold scaled": clip_probabilities(x, r, t_fold)[1],
                       "cross-fitted": crossfitted[view]}.items():  # fmt: skip
            for name, m in cells(fold).items():
                rows.setdefault((f"ECE, {view}, {how}", name), []).append(100 * expected_calibration_error(y[m], p[m]))


def main(argv: list[str] | None = None) -> Rows:
    """Returns {(variant, corpus or "all"): UA % per fold}."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("probe", choices=("phases", "phone", "short", "calibration"))
    p.add_argument("--corpus", action="append", required=True, help="NAME=PATH, repeatable")
    p.add_argument("pairs", nargs="+", type=Path, help="FOLD.json MODEL_DIR, repeated")
    p.add_argument("--seconds", type=float, nargs="+", default=[1.0, 2.0], help="phases: crop lengths")
    args = p.parse_args(argv)
    if len(args.pairs) % 2:
        p.error("give a model folder after each fold JSON")
    clips = scan_corpora(parse_corpus_arg(a) for a in args.corpus).clips
    rows: Rows = {}
    confusion = {c: np.zeros((len(LABELS), len(LABELS)), int) for c in ("ravdess", "nemo")}
    for fold_json, model_dir in zip(args.pairs[0::2], args.pairs[1::2], strict=True):
        fold = Fold(fold_json, model_dir, clips)
        if args.probe == "phases":
            probe_phases(fold, rows, args.seconds)
        elif args.probe == "phone":
            probe_phone(fold, rows)
        elif args.probe == "short":
            probe_short(fold, rows, confusion)
        else:
            probe_calibration(fold, rows)
        print(f"{fold_json}: done", flush=True)
    if args.probe == "short":
        for corpus, m in confusion.items():
            print(f"\n{corpus}, 1 s crops (rows: true, columns: answered {', '.join(LABELS)})")
            for label, row in zip(LABELS, m, strict=True):
                if row.sum():
                    recall = row[LABELS.index(label)] / row.sum()
                    print(f"  {label:10}" + "".join(f"{n:5d}" for n in row) + f"   recall {recall:.2f}")
    names = ("all", *sorted({c.corpus for c in clips}))
    variants = list(dict.fromkeys(v for v, _ in rows))
    width = max(len(v) for v in variants)
    print(f"\n{'ECE' if args.probe == 'calibration' else 'UA'} %, mean over {len(args.pairs) // 2} fold(s)")
    print(" " * width + "".join(f"{n:>9}" for n in names))
    for v in variants:
        print(f"{v:{width}}" + "".join(f"{np.mean(rows[(v, n)]):9.1f}" if (v, n) in rows else " " * 9 for n in names))
    return rows


if __name__ == "__main__":
    main()
