"""Honest accuracy: k folds by speaker, plus a random-split and a cross-corpus figure.

    python -m training.evaluate --corpus ravdess=PATH --folds 5 --out runs/eval \
        [--random-split] [--cross-corpus emodb=PATH]

Each fold tests on speakers never seen in training: one fold tests, the next validates
(early stopping, temperature scaling), the rest train. Reports unweighted accuracy (mean
per-class recall), weighted accuracy and macro-F1 as mean +- std over folds, and the
confusion matrix pooled over all test clips. The random split mixes speakers across
train and test and is labelled as such: it is only for comparison with published numbers.
Cross-corpus: train on the --corpus data, test on every clip of the other corpus whose
class the training data has.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from ser.config import LABELS
from training import metrics
from training.config import TrainConfig
from training.data import FeatureStore
from training.splits import Split, describe, fold_split, pick_validation, random_split, speaker_folds
from training.train import fit_split, load_clips

KEYS = ("unweighted_accuracy", "weighted_accuracy", "macro_f1", "ece")


def mean_std(results: list[dict]) -> dict:
    return {
        k: {"mean": float(np.mean([r[k] for r in results])),
            "std": float(np.std([r[k] for r in results]))}
        for k in KEYS
    }  # fmt: skip


def speaker_cv(clips, cfg: TrainConfig, k: int, max_folds: int | None, n_val: int | None = None) -> dict:
    folds = speaker_folds(clips, k, cfg.seed)
    store = FeatureStore(clips, cfg)
    per_fold, pooled_true, pooled_probs = [], [], []
    for i in range(min(k, max_folds or k)):
        split = fold_split(clips, folds, i, n_val)
        print(f"fold {i + 1}/{k}: test {split.test_speakers}, val {split.val_speakers}")
        print(describe(clips, split))
        r = fit_split(store, split, cfg, desc=f"fold {i + 1}")
        print(f"fold {i + 1}: test UA {r.test['unweighted_accuracy']:.3f}, "
              f"WA {r.test['weighted_accuracy']:.3f}, F1 {r.test['macro_f1']:.3f}, "
              f"{r.seconds:.0f} s")  # fmt: skip
        per_fold.append({
            "test_speakers": split.test_speakers, "val_speakers": split.val_speakers,
            "best_epoch": r.best_epoch, "temperature": r.temperature, "seconds": r.seconds,
            "test": r.test, "test_uncalibrated": r.test_uncalibrated, "val": r.val,
        })  # fmt: skip
        ids = r.extra["test_clip_indices"]
        pooled_true.append([LABELS.index(clips[j].label) for j in ids])
        pooled_probs.append(r.extra["test_probs"])
    y, probs = np.concatenate(pooled_true), np.concatenate(pooled_probs)
    per_class, confusion = metrics.report(y, probs)
    return {
        "protocol": f"{k}-fold cross-validation by speaker: per fold, test speakers are never "
        f"seen in training; {n_val or 'all'} speakers of the next fold validate (early stopping, "
        "calibration) and are not trained on",
        "folds": per_fold,
        "summary": mean_std([f["test"] for f in per_fold]),
        "summary_uncalibrated": mean_std([f["test_uncalibrated"] for f in per_fold]),
        "pooled": metrics.summary(y, probs),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def random_split_eval(clips, cfg: TrainConfig) -> dict:
    split = random_split(len(clips), cfg.seed)
    r = fit_split(FeatureStore(clips, cfg), split, cfg, desc="random split")
    return {
        "protocol": "RANDOM clip split 60/20/20, speakers on both sides: NOT speaker-"
        "independent; only for comparison with published random-split figures",
        "test": r.test,
    }


def cross_corpus_eval(clips, other, cfg: TrainConfig, k: int, n_val: int | None = None) -> dict:
    """Train on `clips` (validation speakers as in train.py), test on all of `other`'s shared classes."""
    folds = speaker_folds(clips, k, cfg.seed)
    val = set(pick_validation(clips, folds[0], n_val))
    n = len(clips)
    combined = list(clips) + [c for c in other if c.label in {x.label for x in clips}]
    split = Split(
        train=[i for i in range(n) if clips[i].speaker not in val],
        val=[i for i in range(n) if clips[i].speaker in val],
        test=list(range(n, len(combined))),
        test_speakers=tuple(sorted({c.speaker for c in combined[n:]})),
        val_speakers=tuple(sorted(val)),
    )
    r = fit_split(FeatureStore(combined, cfg), split, cfg, desc="cross-corpus")
    y = np.array([LABELS.index(combined[j].label) for j in r.extra["test_clip_indices"]])
    shared = sorted(set(y.tolist()))
    restricted = np.zeros_like(r.extra["test_probs"])
    restricted[:, shared] = r.extra["test_probs"][:, shared]
    restricted /= restricted.sum(axis=1, keepdims=True)
    return {
        "protocol": "train on the training corpus, test on every clip of the other corpus "
        "in a class both share",
        "test_corpus_classes": [LABELS[i] for i in shared],
        "all_8_outputs": r.test,
        "restricted_to_shared_classes": metrics.summary(y, restricted),
        "confusion": r.test_confusion,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", action="append", required=True, help="NAME=PATH, repeatable")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--max-folds", type=int, help="stop after this many folds (smoke tests)")
    p.add_argument("--val-speakers", type=int, default=2, help="validation speakers taken from the next fold")
    p.add_argument("--random-split", action="store_true")
    p.add_argument("--cross-corpus", action="append", default=[], metavar="NAME=PATH")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    cfg = TrainConfig.with_overrides(args.set)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("SER_TF_THREADS", os.cpu_count() or 2)))
    start = time.perf_counter()
    clips = load_clips(args.corpus)
    out: dict = {"config": cfg.to_dict(), "corpora": [a.split("=")[0] for a in args.corpus]}
    out["speaker_cv"] = speaker_cv(clips, cfg, args.folds, args.max_folds, args.val_speakers)
    if args.random_split:
        out["random_split"] = random_split_eval(clips, cfg)
    if args.cross_corpus:
        other = load_clips(args.cross_corpus)
        out["cross_corpus"] = cross_corpus_eval(clips, other, cfg, args.folds, args.val_speakers)
        out["cross_corpus"]["test_corpora"] = [a.split("=")[0] for a in args.cross_corpus]
    out["wall_seconds"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evaluation.json").write_text(json.dumps(out, indent=2))
    from training.reporting import plot_confusion

    s = out["speaker_cv"]["summary"]
    plot_confusion(out["speaker_cv"]["confusion"], args.out / "confusion_matrix.png",
                   f"speaker-independent CV, pooled (UA {s['unweighted_accuracy']['mean']:.2f})")  # fmt: skip
    print(json.dumps({k: v for k, v in out.items() if k != "config"}, indent=1)[:3000])
    print(f"UA {s['unweighted_accuracy']['mean']:.3f} +- {s['unweighted_accuracy']['std']:.3f} "
          f"over {len(out['speaker_cv']['folds'])} speaker folds; {out['wall_seconds']:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
