"""Whose clips should fit the temperature? Window-weighted (as training fits it) against corpus-balanced, judged on
speakers the fit did not see:

    python scripts/temperature_balance.py DATA model_store/ser_cnn_bilstm.onnx

The shipped model's validation speakers (its data.json in the ONNX metadata) are the only
speakers it never trained on; their clips are mostly nEMO's. Leave one of them out, fit the
temperature on the rest's windows as training does (`training.metrics.fit_temperature`:
every window weighing the same, or every corpus), score the left-out speaker's clips
(window probabilities averaged, as served); repeat for each. Prints each fit's temperature,
the expected calibration error (%) per corpus and pooled, how often the answer is right
against its mean confidence, and the same without scaling. The model's window
probabilities are turned back into logits (times its temperature), so the served path's
features are what is measured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.held_out_views import CORPORA, validation_clips  # noqa: E402
from ser.config import LABELS  # noqa: E402
from ser.inference import EmotionModel, features_of  # noqa: E402
from training.metrics import (  # noqa: E402
    clip_probabilities,
    corpus_balanced,
    expected_calibration_error,
    fit_temperature,
)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path)
    p.add_argument("model", type=Path)
    args = p.parse_args(argv)
    model = EmotionModel(args.model, providers=["CPUExecutionProvider"])
    shipped = float(model.info.metadata["temperature"])
    clips = validation_clips(args.data, model.info)
    logits, clip = [], []  # one row per window
    for i, c in enumerate(clips):
        probs = model.predict_features(features_of(c.path)[0])
        logits.append(shipped * np.log(np.maximum(probs, 1e-12)))
        clip += [i] * len(probs)
    x, clip = np.concatenate(logits), np.array(clip)
    y = np.array([LABELS.index(c.label) for c in clips])[clip]
    corpus = np.array([c.corpus for c in clips])[clip]
    speaker = np.array([c.speaker for c in clips])[clip]

    def temperatures(rows: np.ndarray) -> dict[str, float]:
        return {"unscaled": 1.0, "window-weighted": fit_temperature(x[rows], y[rows]),
                "corpus-balanced": fit_temperature(x[rows], y[rows], corpus_balanced(corpus[rows]))}  # fmt: skip

    scored: dict[str, list[tuple[str, int, np.ndarray]]] = {}
    for held in sorted(set(speaker)):
        rows = speaker == held
        temps = temperatures(~rows)
        for mode, t in temps.items():
            ids, probs = clip_probabilities(x[rows], clip[rows], t)
            scored.setdefault(mode, []).extend(
                (clips[i].corpus, LABELS.index(clips[i].label), q) for i, q in zip(ids, probs, strict=True))
        print(f"{held}: T window-weighted {temps['window-weighted']:.2f}, corpus-balanced {temps['corpus-balanced']:.2f}")
    everyone = temperatures(np.ones(len(y), bool))
    print(f"shipped T {shipped:.2f}; on all {len(set(speaker))} speakers ({len(clips)} clips) window-weighted "
          f"{everyone['window-weighted']:.2f}, corpus-balanced {everyone['corpus-balanced']:.2f}")  # fmt: skip
    for mode, rows in scored.items():
        cells, per = [], []
        for name in [*CORPORA, None]:
            sel = [r for r in rows if name is None or r[0] == name]
            if sel:
                truth, probs = np.array([r[1] for r in sel]), np.stack([r[2] for r in sel])
                e = 100 * expected_calibration_error(truth, probs)
                right, sure = 100 * (probs.argmax(axis=1) == truth).mean(), 100 * probs.max(axis=1).mean()
                cells.append(f"{name or 'pooled'} {e:.1f} (right {right:.0f} % at confidence {sure:.0f}, {len(sel)} clips)")
                per += [e] if name else []
        print(f"{mode}: ECE % {', '.join(cells)}; mean over corpora {np.mean(per):.1f}")


if __name__ == "__main__":
    main()
