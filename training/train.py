"""Train the default model: speaker-held-out early stopping and calibration, one run folder.

    python -m training.train --corpus ravdess=PATH [--corpus emodb=PATH] --out runs/default

Validation speakers (early stopping, temperature scaling) are one speaker fold
(`--val-fold`, `--folds`); every other speaker trains. The honest accuracy estimate
comes from `python -m training.evaluate`, which holds out test speakers as well.
Writes: model.keras (calibrated inference model), config.json, metrics.json,
classification_report.json, confusion_matrix.png, training_curves.png, data.json.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ser.config import N_CLASSES  # noqa: E402
from ser.datasets import Clip, parse_corpus_arg, scan_corpora  # noqa: E402
from training import metrics  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.data import FeatureStore, WindowSet, spec_augment  # noqa: E402
from training.model import (  # noqa: E402
    build_classifier,
    build_inference_model,
    normalisation_stats,
)
from training.splits import Split, describe, holdout_split, pick_validation, speaker_folds  # noqa: E402


class _Batches(keras.utils.PyDataset):
    """Shuffled training batches with fresh SpecAugment masks every epoch."""

    def __init__(self, data: WindowSet, cfg: TrainConfig, weights: np.ndarray) -> None:
        super().__init__()
        self.data, self.cfg, self.weights = data, cfg, weights
        self.rng = np.random.default_rng(cfg.seed)
        self.order = self.rng.permutation(len(data.y))

    def __len__(self) -> int:
        return int(np.ceil(len(self.data.y) / self.cfg.batch_size))

    def __getitem__(self, i: int):
        idx = self.order[i * self.cfg.batch_size : (i + 1) * self.cfg.batch_size]
        x = spec_augment(self.data.x[idx], self.rng, self.cfg)
        y = np.eye(N_CLASSES, dtype=np.float32)[self.data.y[idx]]
        w = self.weights[self.data.y[idx]]
        if self.cfg.mixup_alpha > 0:
            lam = self.rng.beta(self.cfg.mixup_alpha, self.cfg.mixup_alpha, size=len(idx)).astype(np.float32)
            lam = np.maximum(lam, 1 - lam)  # the first clip dominates each mix
            perm = self.rng.permutation(len(idx))
            x = lam[:, None, None] * x + (1 - lam[:, None, None]) * x[perm]
            y = lam[:, None] * y + (1 - lam[:, None]) * y[perm]
            w = lam * w + (1 - lam) * w[perm]
        return x, y, w

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.data.y))


def _clip_ua(model: keras.Model, data: WindowSet) -> float:
    logits = model.predict(data.x, batch_size=256, verbose=0)
    _, probs = metrics.clip_probabilities(logits, data.clip)
    return metrics.summary(_clip_labels(data), probs)["unweighted_accuracy"]


class _Monitor(keras.callbacks.Callback):
    """Validation UA every epoch; keeps the best epoch's weights when selecting on it.

    With `test` given (evaluation folds), test UA is recorded too, for the learning-curve
    record only: nothing reads it to choose weights or settings.
    """

    def __init__(self, val: WindowSet, cfg: TrainConfig, bar: tqdm, test: WindowSet | None = None) -> None:
        super().__init__()
        self.val, self.test, self.cfg, self.bar = val, test, cfg, bar
        self.best, self.best_epoch, self.best_weights = -1.0, -1, None
        self.history: list[dict] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        ua = _clip_ua(self.model, self.val)
        logs = logs or {}
        row = {"epoch": epoch + 1, "loss": float(logs.get("loss", np.nan)),
               "train_accuracy": float(logs.get("accuracy", np.nan)), "val_ua": ua}  # fmt: skip
        if self.test is not None:
            row["test_ua"] = _clip_ua(self.model, self.test)
        self.history.append(row)
        if self.cfg.selection == "best_val" and ua > self.best:
            self.best, self.best_epoch = ua, epoch + 1
            self.best_weights = self.model.get_weights()
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{logs.get('loss', 0):.3f}", val_ua=f"{ua:.3f}",
                             **({"best": f"{self.best:.3f}@{self.best_epoch}"} if self.best_epoch > 0 else {}))  # fmt: skip
        if self.cfg.selection == "best_val" and epoch + 1 - self.best_epoch >= self.cfg.patience:
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.cfg.selection == "best_val":
            self.model.set_weights(self.best_weights)
        else:
            self.best_epoch = len(self.history)


def _clip_labels(data: WindowSet) -> np.ndarray:
    ids = np.unique(data.clip)
    return np.array([data.y[data.clip == i][0] for i in ids])


@dataclass
class FitResult:
    inference_model: keras.Model
    temperature: float
    best_epoch: int
    history: list[dict]
    val: dict  # calibrated clip-level metrics on validation speakers
    val_uncalibrated: dict
    test: dict | None = None
    test_uncalibrated: dict | None = None
    test_report: dict | None = None
    test_confusion: list | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def fit_split(store: FeatureStore, split: Split, cfg: TrainConfig, desc: str = "train") -> FitResult:
    """Train on split.train, stop early and calibrate on split.val, evaluate on split.test."""
    start = time.perf_counter()
    keras.utils.set_random_seed(cfg.seed)
    train = store.training_set(split.train)
    val = store.clean_set(split.val)
    mean, var = normalisation_stats(store.clean_set(split.train).x, cfg)  # clean train only
    model = build_classifier(cfg, mean, var)
    steps = int(np.ceil(len(train.y) / cfg.batch_size)) * cfg.epochs
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"],
    )
    counts = np.bincount(train.y, minlength=N_CLASSES).astype(np.float64)
    weights = np.ones(N_CLASSES, np.float32)
    if cfg.balance_classes:
        present = counts > 0
        weights[present] = (counts[present].sum() / (present.sum() * counts[present]))
    if cfg.selection not in ("last", "best_val"):
        raise ValueError(f"selection must be 'last' or 'best_val', not {cfg.selection!r}")
    test = store.clean_set(split.test) if split.test else None
    with tqdm(total=cfg.epochs, desc=desc, unit="epoch") as bar:
        stopper = _Monitor(val, cfg, bar, test)
        model.fit(_Batches(train, cfg, weights), epochs=cfg.epochs, verbose=0, callbacks=[stopper])

    val_logits = model.predict(val.x, batch_size=256, verbose=0)
    temperature = metrics.fit_temperature(val_logits, val.y)
    y_val = _clip_labels(val)
    result = FitResult(
        inference_model=build_inference_model(model, temperature),
        temperature=temperature,
        best_epoch=stopper.best_epoch,
        history=stopper.history,
        val=metrics.summary(y_val, metrics.clip_probabilities(val_logits, val.clip, temperature)[1]),
        val_uncalibrated=metrics.summary(y_val, metrics.clip_probabilities(val_logits, val.clip)[1]),
    )
    if test is not None:
        logits = model.predict(test.x, batch_size=256, verbose=0)
        y_test = _clip_labels(test)
        probs = metrics.clip_probabilities(logits, test.clip, temperature)[1]
        result.test = metrics.summary(y_test, probs)
        result.test_uncalibrated = metrics.summary(
            y_test, metrics.clip_probabilities(logits, test.clip)[1]
        )
        result.test_report, confusion = metrics.report(y_test, probs)
        result.test_confusion = confusion.tolist()
        result.extra["test_clip_indices"] = np.unique(test.clip).tolist()
        result.extra["test_probs"] = probs
    result.seconds = time.perf_counter() - start
    return result


def load_clips(corpus_args: list[str]) -> list[Clip]:
    scan = scan_corpora(parse_corpus_arg(a) for a in corpus_args)
    print(scan.summary())
    if not scan.clips:
        raise SystemExit("no clips found: check the --corpus paths")
    return scan.clips


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", required=True, help="NAME=PATH, repeatable")
    parser.add_argument("--out", type=Path, required=True, help="run folder to create")
    parser.add_argument("--folds", type=int, default=5, help="speaker folds (one validates)")
    parser.add_argument("--val-fold", type=int, default=0)
    parser.add_argument("--val-speakers", type=int, default=2, help="validation speakers taken from that fold")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a TrainConfig field, e.g. --set epochs=2")  # fmt: skip
    args = parser.parse_args(argv)
    cfg = TrainConfig.with_overrides(args.set)
    tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("SER_TF_THREADS", os.cpu_count() or 2)))
    wall = time.perf_counter()

    clips = load_clips(args.corpus)
    folds = speaker_folds(clips, args.folds, cfg.seed)
    split = holdout_split(clips, pick_validation(clips, folds[args.val_fold], args.val_speakers))
    print(describe(clips, split))
    result = fit_split(FeatureStore(clips, cfg), split, cfg)

    from training.reporting import write_run  # matplotlib only when writing outputs

    write_run(args.out, result, cfg, clips, split, args.corpus, time.perf_counter() - wall)
    print(f"val UA {result.val['unweighted_accuracy']:.3f} (calibrated ECE "
          f"{result.val_uncalibrated['ece']:.3f} -> {result.val['ece']:.3f}, T={result.temperature:.2f}); "
          f"wrote {args.out} in {time.perf_counter() - wall:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()

