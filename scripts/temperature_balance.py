"""Whose clips should fit the temperature? Clip-weighted against corpus-balanced, judged on
speakers the fit did not see:

    python scripts/temperature_balance.py DATA model_store/ser_cnn_bilstm.onnx

The shipped model's validation speakers (its data.json in the ONNX metadata) are the only
speakers it never trained on; their clips are mostly nEMO's. Leave one of them out, fit the
temperature on the rest (every clip weighing the same, or every corpus), score the left-out
speaker's clips; repeat for each. Prints each fit's temperature and the expected
calibration error (%) per corpus and pooled, with how often the answer is right against its
mean confidence, and the same without scaling. The window
probabilities the model returns are turned back into logits (times its temperature), so the
served path's features and clip averaging are what is measured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import softmax

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser.config import LABELS  # noqa: E402
from ser.datasets import scan_corpus  # noqa: E402
from ser.inference import EmotionModel, features_of, metadata_json  # noqa: E402
from training.metrics import expected_calibration_error  # noqa: E402

CORPORA = ("ravdess", "emodb", "nemo", "ased")


def fit(logits: list[np.ndarray], y: list[int], corpus: list[str], balanced: bool) -> float:
    """Temperature minimising the (weighted) log-loss of the clips' averaged probabilities."""
    n = {c: corpus.count(c) for c in set(corpus)}
    w = np.array([1 / n[c] if balanced else 1.0 for c in corpus])
    w /= w.sum()

    def nll(log_t: float) -> float:
        p = [softmax(x / np.exp(log_t), axis=1).mean(axis=0)[k] for x, k in zip(logits, y, strict=True)]
        return float(-(w * np.log(np.maximum(p, 1e-12))).sum())

    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path)
    p.add_argument("model", type=Path)
    args = p.parse_args(argv)
    model = EmotionModel(args.model, providers=["CPUExecutionProvider"])
    shipped = float(model.info.metadata["temperature"])
    held = set(metadata_json(model.info, "training_data")["val"]["speakers"])
    clips = []  # (corpus, speaker, label index, window logits)
    for corpus in CORPORA:
        if (args.data / corpus).is_dir():
            for c in scan_corpus(corpus, args.data / corpus).clips:
                if c.speaker in held:
                    probs = model.predict_features(features_of(c.path)[0])
                    clips.append((corpus, c.speaker, LABELS.index(c.label), shipped * np.log(np.maximum(probs, 1e-12))))
    scored: dict[str, list[tuple[str, int, np.ndarray]]] = {"unscaled": [], "clip-weighted": [], "corpus-balanced": []}
    for speaker in sorted({c[1] for c in clips}):
        rest = [c for c in clips if c[1] != speaker]
        temps = {"unscaled": 1.0}
        for mode in ("clip-weighted", "corpus-balanced"):
            temps[mode] = fit([c[3] for c in rest], [c[2] for c in rest], [c[0] for c in rest], mode == "corpus-balanced")
        for mode, t in temps.items():
            scored[mode] += [(c[0], c[2], softmax(c[3] / t, axis=1).mean(axis=0)) for c in clips if c[1] == speaker]
        print(f"{speaker}: T clip-weighted {temps['clip-weighted']:.2f}, corpus-balanced {temps['corpus-balanced']:.2f}")
    everyone = ([c[3] for c in clips], [c[2] for c in clips], [c[0] for c in clips])
    print(f"shipped T {shipped:.2f}; on all {len(held)} speakers ({len(clips)} clips) clip-weighted "
          f"{fit(*everyone, False):.2f}, corpus-balanced {fit(*everyone, True):.2f}")  # fmt: skip
    for mode, rows in scored.items():
        cells, per = [], []
        for corpus in [*CORPORA, None]:
            sel = [r for r in rows if corpus is None or r[0] == corpus]
            if sel:
                y, probs = np.array([r[1] for r in sel]), np.stack([r[2] for r in sel])
                e = 100 * expected_calibration_error(y, probs)
                right, sure = 100 * (probs.argmax(axis=1) == y).mean(), 100 * probs.max(axis=1).mean()
                cells.append(f"{corpus or 'pooled'} {e:.1f} (right {right:.0f} % at confidence {sure:.0f}, {len(sel)} clips)")
                per += [e] if corpus else []
        print(f"{mode}: ECE % {', '.join(cells)}; mean over corpora {np.mean(per):.1f}")


if __name__ == "__main__":
    main()
