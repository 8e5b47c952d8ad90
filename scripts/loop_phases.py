"""Would averaging over where a short clip's loop starts help? Measured on fold models.

    python scripts/loop_phases.py --corpus ravdess=PATH [--corpus ...] \
        runs/exp_e3full/fold_0.json runs/exp_e3full/models/fold_0 [FOLD.json MODEL_DIR ...]

A clip shorter than the 4 s window is tiled (`ser.features.fit_window`), so the network
hears it from its first sample on; started elsewhere in the clip, the same loop makes a
different window. For each fold (its JSON names the test speakers; its model was kept by
`training.evaluate --save-models`), the test speakers' 1 s and 2 s crops around the speech
(`training.degrade.length_crop`, the evaluation's own seeds, so phase 0 must give back the
UA the fold recorded: checked) are scored as served (one window) and as the mean of the
probabilities of K windows whose loops start K evenly spaced points into the crop.
Prints unweighted accuracy % per corpus for each.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser.audio import load_audio  # noqa: E402
from ser.config import LABELS  # noqa: E402
from ser.datasets import parse_corpus_arg, scan_corpora  # noqa: E402
from ser.features import fit_window, mfcc  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.data import _clip_seed  # noqa: E402
from training.degrade import length_crop  # noqa: E402
from training.metrics import summary  # noqa: E402

PHASES = (1, 2, 4, 8)


def phase_windows(crop: np.ndarray, k: int) -> np.ndarray:
    """(k, N_SAMPLES): the crop's loop started at k evenly spaced points."""
    return np.stack([fit_window(np.roll(crop, -(j * crop.shape[0]) // k)) for j in range(k)])


def main(argv: list[str] | None = None) -> dict[tuple[float, int, str], list[float]]:
    """{(seconds, K, corpus or "all"): UA % per fold}."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", action="append", required=True, help="NAME=PATH, repeatable")
    p.add_argument("pairs", nargs="+", help="FOLD.json MODEL_DIR, repeated")
    p.add_argument("--seconds", type=float, nargs="+", default=[1.0, 2.0])
    args = p.parse_args(argv)
    import keras  # only here: the script's other parts need no TensorFlow

    import training.model  # noqa: F401  (registers the custom layers the saved model uses)

    if len(args.pairs) % 2:
        p.error("give a model folder after each fold JSON")
    clips = scan_corpora(parse_corpus_arg(a) for a in args.corpus).clips
    rows: dict[tuple, list[float]] = {}
    for fold_json, model_dir in zip(args.pairs[0::2], args.pairs[1::2], strict=True):
        fold = json.loads(Path(fold_json).read_text())
        seed = TrainConfig.from_record(fold["config"]).seed
        model = keras.models.load_model(Path(model_dir) / "model.keras")
        test = [c for c in clips if c.speaker in set(fold["test_speakers"])]
        y = np.array([LABELS.index(c.label) for c in test])
        corpus = np.array([c.corpus for c in test])
        for seconds in args.seconds:
            view = f"len:{seconds}"
            crops = [length_crop(load_audio(c.path), seconds, np.random.default_rng(_clip_seed(c.path, view, seed)))
                     for c in test]  # fmt: skip
            for k in PHASES:
                x = mfcc(np.concatenate([phase_windows(c, k) for c in crops]))
                probs = model.predict(x, batch_size=256, verbose=0).reshape(len(test), k, -1).mean(axis=1)
                for name in ("all", *sorted(set(corpus))):
                    m = corpus == name if name != "all" else np.ones(len(test), bool)
                    got = summary(y[m], probs[m])["unweighted_accuracy"]
                    if k == 1:  # as served: must be what the fold recorded
                        want = fold["views"][view][name]["unweighted_accuracy"]
                        if abs(got - want) > 0.005:
                            raise SystemExit(
                                f"fold {fold['fold']} {view} {name}: {got:.4f}, recorded {want:.4f}"
                            )
                    rows.setdefault((seconds, k, name), []).append(100 * got)
            print(f"fold {fold['fold']} {view}: " + ", ".join(
                f"K={k} {rows[(seconds, k, 'all')][-1]:.1f}" for k in PHASES), flush=True)  # fmt: skip
    names = ("all", *sorted({c.corpus for c in clips}))
    print("\nUA %, mean over folds | " + " | ".join(names))
    for seconds in args.seconds:
        for k in PHASES:
            cells = [
                f"{np.mean(rows[(seconds, k, n)]):.1f}" if (seconds, k, n) in rows else "" for n in names
            ]
            print(f"{seconds:g} s, {k} phase{'s' if k > 1 else ''} | " + " | ".join(cells))
    return rows


if __name__ == "__main__":
    main()
