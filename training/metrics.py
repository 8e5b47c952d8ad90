"""Metrics and calibration, in numpy: what the model card and evaluation report."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.metrics import classification_report, confusion_matrix, f1_score

from ser.config import LABELS

N = len(LABELS)


def summary(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """Unweighted accuracy (mean per-class recall), weighted accuracy, macro-F1, ECE, NLL."""
    y_pred = probs.argmax(axis=1)
    present = np.unique(y_true)
    recalls = [np.mean(y_pred[y_true == c] == c) for c in present]
    return {
        "unweighted_accuracy": float(np.mean(recalls)),
        "weighted_accuracy": float(np.mean(y_pred == y_true)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro")),
        "ece": expected_calibration_error(y_true, probs),
        "nll": float(-np.mean(np.log(probs[np.arange(len(y_true)), y_true] + 1e-12))),
        "n": int(len(y_true)),
    }


def report(y_true: np.ndarray, probs: np.ndarray) -> tuple[dict, np.ndarray]:
    """Per-class precision/recall/F1 and the confusion matrix (rows true, columns predicted)."""
    y_pred = probs.argmax(axis=1)
    per_class = classification_report(
        y_true, y_pred, labels=list(range(N)), target_names=list(LABELS),
        output_dict=True, zero_division=0,
    )  # fmt: skip
    return per_class, confusion_matrix(y_true, y_pred, labels=list(range(N)))


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def fit_temperature(logits: np.ndarray, y_true: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Temperature minimising the negative log-likelihood on held-out speakers; `weights`
    (one per row, e.g. 1 / its corpus's rows) say how much each row counts (default: equally)."""
    w = np.ones(len(y_true)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()

    def nll(log_t: float) -> float:
        lp = log_softmax(logits / np.exp(log_t), axis=1)
        return float(-(w * lp[np.arange(len(y_true)), y_true]).sum())

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def corpus_balanced(corpus: np.ndarray) -> np.ndarray:
    """`fit_temperature` weights, one per row, so that every corpus counts as much in total."""
    _, index, counts = np.unique(corpus, return_inverse=True, return_counts=True)
    return 1.0 / counts[index]


def clip_probabilities(
    logits: np.ndarray, clip: np.ndarray, temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Average window probabilities per clip, as the server does. Returns (clip ids, probs)."""
    probs = softmax(logits / temperature, axis=1)
    ids = np.unique(clip)
    return ids, np.stack([probs[clip == i].mean(axis=0) for i in ids])


MIN_CONFIDENT = 20  # answers: a threshold must be backed by at least this many


def confident_threshold(y_true: np.ndarray, probs: np.ndarray, target_accuracy: float) -> float:
    """The lowest confidence at which an answer is right at least `target_accuracy` of the
    time, on held-out speakers: accuracy as a non-decreasing function of confidence
    (isotonic regression), read where it reaches the target, with at least MIN_CONFIDENT
    answers at or above it; 1.0 (every answer flagged) when it never does.

    Local, not cumulative: "the answers above t are right half the time" let the most
    confident answers vouch for doubtful ones (a fold's threshold fell to 0.18).
    """
    from sklearn.isotonic import IsotonicRegression

    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    fit = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(conf, correct)
    levels = np.sort(conf)
    above = len(levels) - np.arange(len(levels))  # answers at or above each level
    ok = levels[(fit.predict(levels) >= target_accuracy) & (above >= MIN_CONFIDENT)]
    return float(ok[0]) if ok.size else 1.0


def risk_coverage(y_true: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    """What the `uncertain` flag does at `threshold`: the share of clips answered with
    confidence (coverage) and how often those answers are right, and the accuracy of the
    most confident answers at each coverage from 10 % to 100 %."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    confident = conf >= threshold
    order = np.argsort(-conf, kind="stable")
    curve = []
    for c in np.linspace(0.1, 1.0, 10):
        k = max(1, int(round(c * len(conf))))
        curve.append({"coverage": round(float(c), 2), "accuracy": float(correct[order][:k].mean())})
    return {
        "threshold": float(threshold),
        "coverage": float(confident.mean()),
        "accuracy_confident": float(correct[confident].mean()) if confident.any() else None,
        "accuracy_uncertain": float(correct[~confident].mean()) if (~confident).any() else None,
        "accuracy_all": float(correct.mean()),
        "n": int(len(conf)),
        "curve": curve,
    }
