"""What a fold's kept model does with its test speakers' clips changed one way at a time; no training.

    python scripts/probe_fold_model.py phases --corpus ravdess=PATH [--corpus ...] \
        runs/exp_e3full/fold_0.json runs/exp_e3full/models/fold_0 [FOLD.json MODEL_DIR ...]
    python scripts/probe_fold_model.py phone --corpus ... FOLD.json MODEL_DIR [...]

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

Prints unweighted accuracy % per corpus, the mean over the folds given.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser.audio import load_audio  # noqa: E402
from ser.config import LABELS  # noqa: E402
from ser.datasets import Clip, parse_corpus_arg, scan_corpora  # noqa: E402
from ser.features import clip_features, fit_window, mfcc  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.data import _clip_seed  # noqa: E402
from training.degrade import length_crop, mulaw_8k, peak, phone, phone_filter  # noqa: E402
from training.metrics import summary  # noqa: E402

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
        self.test = [c for c in clips if c.speaker in set(self.record["test_speakers"])]
        self.y = np.array([LABELS.index(c.label) for c in self.test])
        self.corpus = np.array([c.corpus for c in self.test])

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


def main(argv: list[str] | None = None) -> Rows:
    """Returns {(variant, corpus or "all"): UA % per fold}."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("probe", choices=("phases", "phone"))
    p.add_argument("--corpus", action="append", required=True, help="NAME=PATH, repeatable")
    p.add_argument("pairs", nargs="+", type=Path, help="FOLD.json MODEL_DIR, repeated")
    p.add_argument("--seconds", type=float, nargs="+", default=[1.0, 2.0], help="phases: crop lengths")
    args = p.parse_args(argv)
    if len(args.pairs) % 2:
        p.error("give a model folder after each fold JSON")
    clips = scan_corpora(parse_corpus_arg(a) for a in args.corpus).clips
    rows: Rows = {}
    for fold_json, model_dir in zip(args.pairs[0::2], args.pairs[1::2], strict=True):
        fold = Fold(fold_json, model_dir, clips)
        probe_phases(fold, rows, args.seconds) if args.probe == "phases" else probe_phone(fold, rows)
        print(f"{fold_json}: done", flush=True)
    names = ("all", *sorted({c.corpus for c in clips}))
    variants = list(dict.fromkeys(v for v, _ in rows))
    width = max(len(v) for v in variants)
    print(f"\nUA %, mean over {len(args.pairs) // 2} fold(s)")
    print(" " * width + "".join(f"{n:>9}" for n in names))
    for v in variants:
        print(f"{v:{width}}" + "".join(f"{np.mean(rows[(v, n)]):9.1f}" if (v, n) in rows else " " * 9 for n in names))
    return rows


if __name__ == "__main__":
    main()
