"""Train the default model: speaker-held-out early stopping and calibration, one run folder.

    python -m training.train --corpus ravdess=PATH [--corpus emodb=PATH] --out runs/default

Validation speakers (early stopping, temperature scaling): `--val-speakers` of one speaker
fold (`--val-fold`, `--folds`) for the first ensemble member; with rotate_validation each
other member validates on as many other speakers. Each member trains on all the rest.
The honest accuracy estimate comes from `python -m training.evaluate`, which holds out
test speakers as well.
Writes: model.keras (calibrated inference model, normalisation inside), config.json,
data.json, metrics.json, normalisation.json, classification_report.json and
confusion_matrix.png (validation speakers), training_curves.png, MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections import Counter  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ser.config import LABELS, N_CLASSES  # noqa: E402
from ser.datasets import Clip, parse_corpus_arg, scan_corpora  # noqa: E402
from training import metrics  # noqa: E402
from training.checkpoint import MemberCheckpoint, MemberState, fingerprint  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.data import FeatureStore, WindowSet, band_limit, freq_warp, spec_augment, store_for  # noqa: E402
from training.model import (  # noqa: E402
    build_adversarial_trainer,
    build_body,
    build_classifier,
    build_inference_model,
    normalisation_stats,
)
from training.splits import (  # noqa: E402
    Split,
    describe,
    holdout_split,
    member_splits,
    pick_validation,
    restrict_corpora,
    speaker_folds,
    speakers_taught,
)

SELECTIONS = ("val_nll", "best_val", "last")


class _Batches(keras.utils.PyDataset):
    """Each epoch: one cached training window per draw, clips drawn by `probs` (corpus and
    class balance), a random copy of each, fresh SpecAugment masks and mixup. With `soft`
    (a teacher's probabilities per clip and copy) the targets mix in the teacher's answer; with
    `corpus` (each clip's corpus number, 0..k-1) the targets are {"emotion", "corpus"} for the
    corpus-adversarial trainer."""

    def __init__(self, copies: np.ndarray, y: np.ndarray, probs: np.ndarray, cfg: TrainConfig, seed: int,
                 soft: np.ndarray | None = None, corpus: np.ndarray | None = None) -> None:  # fmt: skip
        super().__init__()
        self.copies, self.y, self.probs, self.cfg, self.soft = copies, y, probs, cfg, soft
        self.corpus = None if corpus is None else np.eye(corpus.max() + 1, dtype=np.float32)[corpus]
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self) -> int:
        return int(np.ceil(len(self.y) * self.cfg.draws_per_clip / self.cfg.batch_size))

    def __getitem__(self, i: int):
        sl = slice(i * self.cfg.batch_size, (i + 1) * self.cfg.batch_size)
        clip, copy = self.order[sl], self.copy[sl]
        x = self.copies[clip, copy].astype(np.float32)
        x = spec_augment(band_limit(freq_warp(x, self.rng, self.cfg), self.rng, self.cfg), self.rng, self.cfg)
        y = np.eye(N_CLASSES, dtype=np.float32)[self.y[clip]]
        if self.soft is not None:
            w = self.cfg.distill_weight
            y = (1 - w) * y + w * self.soft[clip, copy]
        if self.cfg.mixup_alpha > 0:
            lam = self.rng.beta(self.cfg.mixup_alpha, self.cfg.mixup_alpha, size=len(clip)).astype(np.float32)
            lam = np.maximum(lam, 1 - lam)  # the first clip dominates each mix
            perm = self.rng.permutation(len(clip))
            x = lam[:, None, None] * x + (1 - lam[:, None, None]) * x[perm]
            y = lam[:, None] * y + (1 - lam[:, None]) * y[perm]
        if self.corpus is not None:
            return x, {"emotion": y, "corpus": self.corpus[clip]}
        return x, y

    def on_epoch_end(self) -> None:
        n = len(self.y) * self.cfg.draws_per_clip
        self.order = self.rng.choice(len(self.y), size=n, p=self.probs)
        self.copy = self.rng.integers(0, self.copies.shape[1], size=n)


def corpus_weights(items: tuple[str, ...], corpora: set[str]) -> dict[str, float]:
    """`corpus_weights` ("name=weight" strings) as a dict; a corpus not trained on, or a
    weight that is not a positive number, is refused rather than silently ignored."""
    weights = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            weight = float(value) if sep else float("nan")
        except ValueError:
            weight = float("nan")
        if not weight > 0:
            raise ValueError(f"corpus_weights item {item!r} is not name=positive number")
        if name not in corpora:
            raise ValueError(f"corpus_weights names {name!r}, not a training corpus: {sorted(corpora)}")
        weights[name] = weight
    return weights


def sampling_probabilities(clips: list[Clip], idx: list[int], cfg: TrainConfig) -> np.ndarray:
    """Probability of drawing each training clip: corpus share ~ size^corpus_power x its
    weight, equal classes inside a corpus, then classes that few corpora have drawn more
    often."""
    corpora = [clips[i].corpus for i in idx]
    labels = [clips[i].label for i in idx]
    corpus_n = Counter(corpora)
    cell_n = Counter(zip(corpora, labels, strict=True))
    classes_in = {c: {lab for (cc, lab) in cell_n if cc == c} for c in corpus_n}
    weight = corpus_weights(cfg.corpus_weights, set(corpus_n))
    share = {c: n**cfg.corpus_power * weight.get(c, 1.0) for c, n in corpus_n.items()}
    total = sum(share.values())
    p = np.array([share[c] / total / len(classes_in[c]) / cell_n[(c, lab)] for c, lab in zip(corpora, labels, strict=True)])
    class_mass = Counter()
    for pi, lab in zip(p, labels, strict=True):
        class_mass[lab] += pi
    target = 1 / len(class_mass)
    p *= np.array([(target / class_mass[lab]) ** cfg.class_power for lab in labels])
    return p / p.sum()


def _clip_scores(model: keras.Model, data: WindowSet) -> tuple[float, float]:
    """(unweighted accuracy, negative log-likelihood) of clip-level predictions."""
    logits = model.predict(data.x, batch_size=256, verbose=0)
    _, probs = metrics.clip_probabilities(logits, data.clip)
    s = metrics.summary(_clip_labels(data), probs)
    return s["unweighted_accuracy"], s["nll"]


class _Monitor(keras.callbacks.Callback):
    """Validation scores every epoch; early stopping with the best epoch's weights kept
    when `selection` is "val_nll" (clip-level log-loss) or "best_val" (clip-level UA).

    With `test` given (evaluation folds), test UA is recorded too, for the learning-curve
    record only: nothing reads it to choose weights or settings.
    """

    def __init__(self, val: WindowSet, cfg: TrainConfig, bar: tqdm, test: WindowSet | None = None,
                 scorer: keras.Model | None = None) -> None:  # fmt: skip
        super().__init__()
        self.val, self.test, self.cfg, self.bar = val, test, cfg, bar
        self.scorer = scorer  # the classifier, when the model being fit is a wrapper of it
        self.best, self.best_epoch, self.best_weights = -np.inf, -1, None
        self.history: list[dict] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        scorer = self.scorer or self.model
        ua, nll = _clip_scores(scorer, self.val)
        logs = logs or {}
        row = {"epoch": epoch + 1, "loss": float(logs.get("loss", np.nan)),
               "train_accuracy": float(logs.get("accuracy", logs.get("emotion_accuracy", np.nan))),
               "val_ua": ua, "val_nll": nll}  # fmt: skip
        if "corpus_loss" in logs:
            row["corpus_loss"] = float(logs["corpus_loss"])
        if self.test is not None:
            row["test_ua"], row["test_nll"] = _clip_scores(scorer, self.test)
        self.history.append(row)
        score = ua if self.cfg.selection == "best_val" else -nll
        if self.cfg.selection != "last" and score > self.best:
            self.best, self.best_epoch = score, epoch + 1
            self.best_weights = self.model.get_weights()
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{logs.get('loss', 0):.3f}", val_ua=f"{ua:.3f}", val_nll=f"{nll:.3f}",
                             **({"best_epoch": self.best_epoch} if self.best_epoch > 0 else {}))  # fmt: skip
        if self.cfg.selection != "last" and epoch + 1 - self.best_epoch >= self.cfg.patience:
            self.bar.update(self.cfg.epochs - epoch - 1)  # the epochs early stopping saved
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.cfg.selection != "last":
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
    val_report: dict | None = None  # per class, validation speakers
    val_confusion: list | None = None
    normalisation: dict | None = None
    test: dict | None = None
    test_uncalibrated: dict | None = None
    test_report: dict | None = None
    test_confusion: list | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    logits_model: keras.Model | None = None  # features -> uncalibrated logits
    split: Split | None = None  # the split trained on (after `train_corpora`): what the run records
    # answers below this calibrated confidence are flagged uncertain (chosen on validation)
    uncertainty_threshold: float = 1.0


def teacher_targets(store: FeatureStore, split: Split, idx: list[int], cfg: TrainConfig) -> np.ndarray | None:
    """The teacher's calibrated probabilities for every cached training window of the clips
    `idx`: (len(idx), train_copies + short_copies + clean_copies, N_CLASSES), or None without `distill_from`.

    Refuses a teacher that trained on a speaker the student is measured on: its answers
    would carry that speaker into the student. Those are the test speakers, or the
    validation speakers where the split has none (the shipped model). With test speakers,
    the validation speakers only calibrate (the schedule runs to its end) and may be the
    teacher's, as a rotated ensemble's are.
    """
    if not cfg.distill_from:
        return None
    run = Path(cfg.distill_from)
    taught = speakers_taught(json.loads((run / "data.json").read_text()))
    held = {store.clips[i].speaker for i in (split.test or split.val)}
    if taught & held:
        raise ValueError(f"the teacher {run} trained on held-out speakers {sorted(taught & held)}")
    teacher = keras.models.load_model(run / "model.keras")
    copies = store.copies(idx, cfg.clean_copies)
    flat = copies.reshape(-1, *copies.shape[2:]).astype(np.float32)
    probs = teacher.predict(flat, batch_size=512, verbose=0)
    return probs.reshape(*copies.shape[:2], N_CLASSES).astype(np.float32)


def _train_member(store: FeatureStore, train_idx: list[int], val: WindowSet, test: WindowSet | None,
                  mean: np.ndarray, var: np.ndarray, cfg: TrainConfig, member: int,
                  bar: tqdm, soft: np.ndarray | None = None,
                  checkpoint: Path | None = None) -> tuple[keras.Model, keras.Model, _Monitor]:  # fmt: skip
    """One member: its own seed (initialisation, draws, masks, mixup) and data; with
    `checkpoint` (a folder), saved after every epoch and resumed from there."""
    seed = cfg.seed + 1000 * member
    keras.utils.set_random_seed(seed)
    copies = store.copies(train_idx, cfg.clean_copies)
    y = np.array([LABELS.index(store.clips[i].label) for i in train_idx])
    probs = sampling_probabilities(store.clips, train_idx, cfg)
    body = build_body(cfg, name=f"member{member}")
    model = build_classifier(cfg, mean, var, [body])
    steps = int(np.ceil(len(y) * cfg.draws_per_clip / cfg.batch_size)) * cfg.epochs
    optimizer = keras.optimizers.AdamW(
        keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps), weight_decay=cfg.weight_decay
    )
    emotion_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=cfg.label_smoothing)
    corpus = None
    if cfg.adversary_weight > 0:  # fit a wrapper with a corpus head; `model` shares its weights
        names, corpus = np.unique([store.clips[i].corpus for i in train_idx], return_inverse=True)
        fitted = build_adversarial_trainer(model, body, len(names), cfg.adversary_weight)
        fitted.compile(optimizer=optimizer, metrics={"emotion": ["accuracy"]},
                       loss={"emotion": emotion_loss, "corpus": keras.losses.CategoricalCrossentropy(from_logits=True)})  # fmt: skip
    else:
        fitted = model
        fitted.compile(optimizer=optimizer, loss=emotion_loss, metrics=["accuracy"])
    monitor = _Monitor(val, cfg, bar, test, scorer=model)
    batches = _Batches(copies, y, probs, cfg, seed, soft, corpus)
    callbacks: list[keras.callbacks.Callback] = [monitor]
    if corpus is not None:
        callbacks.insert(0, _ReversalRamp(fitted.get_layer("reverse"), cfg.epochs))
    start = 0
    if checkpoint is not None:
        clips = [str(store.clips[i].path) for i in train_idx]
        saver = MemberCheckpoint(checkpoint / f"member{member}.npz",
                                 fingerprint(cfg.to_dict(), member, clips, np.unique(val.clip).tolist()))  # fmt: skip
        state = saver.load()
        if state is not None:
            start = _resume(fitted, monitor, batches, state, cfg)
            bar.update(start)
            tqdm.write(f"resumed member {member} from {saver.path} after epoch {state.epoch} of {cfg.epochs}")
            if state.finished:
                return body, model, monitor
        callbacks.append(_Checkpointer(saver, monitor, batches))
    fitted.fit(batches, epochs=cfg.epochs, initial_epoch=start, verbose=0, callbacks=callbacks)
    if checkpoint is not None:
        saver.save(_state(fitted, monitor, batches, finished=True))
    return body, model, monitor


class _ReversalRamp(keras.callbacks.Callback):
    """The reversed gradient's weight rises from 0 to full over training, 2 / (1 + e^-10p) - 1
    at progress p (Ganin & Lempitsky's schedule): the corpus head first learns what tells the
    corpora apart, and the network is not pushed by a head that is still guessing."""

    def __init__(self, layer: keras.layers.Layer, epochs: int) -> None:
        super().__init__()
        self.layer, self.epochs = layer, epochs

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.layer.ramp.assign(reversal_ramp(epoch, self.epochs))


def reversal_ramp(epoch: int, epochs: int) -> float:
    return float(2 / (1 + np.exp(-10 * epoch / max(epochs, 1))) - 1)


def _state(model: keras.Model, monitor: _Monitor, batches: _Batches, finished: bool = False) -> MemberState:
    return MemberState(
        epoch=len(monitor.history), stopped=bool(model.stop_training), finished=finished, history=monitor.history,
        best=float(monitor.best), best_epoch=monitor.best_epoch, rng=batches.rng.bit_generator.state,
        weights=model.get_weights(), optimizer=[v.numpy() for v in model.optimizer.variables],
        best_weights=monitor.best_weights,
    )  # fmt: skip


def _resume(model: keras.Model, monitor: _Monitor, batches: _Batches, state: MemberState, cfg: TrainConfig) -> int:
    """Put a member back where its checkpoint left it; returns the epoch to continue from."""
    model.optimizer.build(model.trainable_variables)
    if len(model.optimizer.variables) != len(state.optimizer):
        raise ValueError("the checkpoint's optimizer state does not fit this model")
    for variable, value in zip(model.optimizer.variables, state.optimizer, strict=True):
        variable.assign(value)
    model.set_weights(state.weights)
    monitor.history, monitor.best, monitor.best_epoch = state.history, state.best, state.best_epoch
    monitor.best_weights = state.best_weights
    batches.rng.bit_generator.state = state.rng
    batches.on_epoch_end()  # the next epoch's draws, from the restored generator
    return cfg.epochs if state.stopped or state.finished else state.epoch


class _Checkpointer(keras.callbacks.Callback):
    """After every epoch (and after _Monitor has scored it), the member's state to disk."""

    def __init__(self, saver: MemberCheckpoint, monitor: _Monitor, batches: _Batches) -> None:
        super().__init__()
        self.saver, self.monitor, self.batches = saver, monitor, batches

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.saver.save(_state(self.model, self.monitor, self.batches))


def validation_set(store: FeatureStore, idx: list[int], cfg: TrainConfig) -> WindowSet:
    """The validation speakers' whole clips, plus short crops of them as separate clips
    (ids offset by SHORT_OFFSET), so early stopping and calibration see both."""
    whole = store.clean_set(idx)
    if not cfg.val_short_seconds:
        return whole
    short = store.window_set(idx, f"len:{cfg.val_short_seconds}")
    short.clip = short.clip + SHORT_OFFSET
    return WindowSet(*(np.concatenate([getattr(whole, f), getattr(short, f)]) for f in ("x", "y", "clip")))


SHORT_OFFSET = 1_000_000


def window_record(store: FeatureStore, part: str, windows: WindowSet, logits: np.ndarray) -> dict[str, Any]:
    """Each window's uncalibrated logits, the row of its clip in the clip-level arrays, and
    each clip's corpus (and whether it is a short validation crop): what a post-hoc check of
    the calibration needs (`scripts/fold_posthoc.py temperature`), which clip averages lose."""
    ids, row = np.unique(windows.clip, return_inverse=True)
    return {
        f"{part}_window_logits": logits, f"{part}_window_clip": row,
        f"{part}_corpus": [store.clips[i % SHORT_OFFSET].corpus for i in ids],
        f"{part}_short": (ids >= SHORT_OFFSET).tolist(),
    }  # fmt: skip


def fit_split(store: FeatureStore, split: Split, cfg: TrainConfig, desc: str = "train",
              checkpoint: Path | None = None) -> FitResult:  # fmt: skip
    """Train on split.train, stop early and calibrate on split.val, evaluate on split.test.

    With `checkpoint` (a folder) every member is saved after every epoch, and a run cut off
    resumes there; the caller removes the folder once the results are written.

    With `ensemble` > 1 several members are trained and their logits averaged; with
    `rotate_validation` each member validates on different speakers (`member_splits`) and
    the temperature is fitted on each validation speaker's predictions from the one
    member that never trained on them.
    """
    start = time.perf_counter()
    if cfg.selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, not {cfg.selection!r}")
    split = restrict_corpora(store.clips, split, cfg.train_corpora)
    plans = member_splits(store.clips, split, cfg.ensemble, cfg.rotate_validation, cfg.seed, cfg.rotate_within_train)
    # Normalisation from clips every member trains on: no member's validation speakers.
    common = sorted(set.intersection(*(set(train_idx) for train_idx, _ in plans)))
    # statistics of training windows only: the first cached crop of each clip
    mean, var = normalisation_stats(store.copies(common)[:, 0].astype(np.float32), cfg)
    rotated = len({tuple(val_idx) for _, val_idx in plans}) > 1
    test = store.clean_set(split.test) if split.test else None
    trained = sorted(set().union(*(train_idx for train_idx, _ in plans)))  # by any member
    targets = teacher_targets(store, split, trained, cfg)
    row = {clip: r for r, clip in enumerate(trained)}
    bodies, monitors, val_logits, val_parts = [], [], [], []
    with tqdm(total=cfg.epochs * cfg.ensemble, desc=desc, unit="epoch") as bar:
        for member, (train_idx, val_idx) in enumerate(plans):
            val = validation_set(store, val_idx, cfg)
            soft = None if targets is None else targets[[row[i] for i in train_idx]]
            body, single, monitor = _train_member(store, train_idx, val, test, mean, var, cfg, member, bar, soft,
                                                  checkpoint)
            bodies.append(body)
            monitors.append(monitor)
            if rotated:  # each validation speaker scored by the member that never saw it
                val_logits.append(single.predict(val.x, batch_size=256, verbose=0))
                val_parts.append(val)
    model = build_classifier(cfg, mean, var, bodies) if len(bodies) > 1 else single
    if not val_parts:  # shared validation speakers: the whole ensemble is unseen by them
        val_parts = [validation_set(store, plans[0][1], cfg)]
        val_logits = [model.predict(val_parts[0].x, batch_size=256, verbose=0)]
    val = WindowSet(*(np.concatenate([getattr(v, f) for v in val_parts]) for f in ("x", "y", "clip")))
    val_logits = np.concatenate(val_logits)
    temperature = metrics.fit_temperature(val_logits, val.y)
    y_val = _clip_labels(val)
    val_probs = metrics.clip_probabilities(val_logits, val.clip, temperature)[1]
    val_report, val_confusion = metrics.report(y_val, val_probs)
    clip_predictions = {"val_y": y_val, "val_probs": val_probs} | window_record(store, "val", val, val_logits)
    result = FitResult(
        split=split,
        inference_model=build_inference_model(model, temperature),
        temperature=temperature,
        best_epoch=monitors[0].best_epoch,
        history=monitors[0].history,  # the first member's; every member's is in extra
        val=metrics.summary(y_val, val_probs),
        val_uncalibrated=metrics.summary(y_val, metrics.clip_probabilities(val_logits, val.clip)[1]),
        val_report=val_report,
        val_confusion=val_confusion.tolist(),
        uncertainty_threshold=metrics.confident_threshold(y_val, val_probs, cfg.confident_accuracy),
        normalisation={
            "per_clip_mean_subtraction": cfg.utterance_cmn, "per_clip_mean_coefficients": cfg.cmn_coefficients,
            "per_clip_variance_scaling": cfg.utterance_cvn, "mean": mean.tolist(), "variance": var.tolist(),
            "fitted_on": f"one training window (crop, mostly augmented) of each of {len(common)} clips that every member trains on",
        },  # fmt: skip
    )
    result.logits_model = model
    result.extra |= clip_predictions
    result.extra["member_val_speakers"] = [sorted({store.clips[i].speaker for i in v}) for _, v in plans]
    result.extra["member_train_speakers"] = [sorted({store.clips[i].speaker for i in t}) for t, _ in plans]
    if len(monitors) > 1:
        result.extra["member_history"] = [m.history for m in monitors]
        result.extra["member_best_epoch"] = [m.best_epoch for m in monitors]
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
        result.extra["test_y"] = y_test
        result.extra |= window_record(store, "test", test, logits)
    result.seconds = time.perf_counter() - start
    return result


def set_tf_threads() -> int:
    """TensorFlow threads from SER_TF_THREADS (default: all cores), before TF starts work.

    Two jobs sharing the machine should take one thread each. Once TensorFlow has run
    anything in this process its thread pools are fixed, and the setting is left alone.
    """
    threads = int(os.environ.get("SER_TF_THREADS", os.cpu_count() or 2))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised (e.g. several runs in one test process)
        return tf.config.threading.get_intra_op_parallelism_threads() or threads
    return threads


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
    set_tf_threads()
    wall = time.perf_counter()

    clips = load_clips(args.corpus)
    folds = speaker_folds(clips, args.folds, cfg.seed)
    split = holdout_split(clips, pick_validation(clips, folds[args.val_fold], args.val_speakers))
    print(describe(clips, split))
    checkpoint = args.out / "checkpoint"  # a run cut off resumes from here when run again
    result = fit_split(store_for(clips, cfg), split, cfg, checkpoint=checkpoint)

    from training.reporting import write_run  # matplotlib only when writing outputs

    write_run(args.out, result, cfg, clips, result.split, args.corpus, time.perf_counter() - wall)
    shutil.rmtree(checkpoint, ignore_errors=True)
    print(f"val UA {result.val['unweighted_accuracy']:.3f} (calibrated ECE "
          f"{result.val_uncalibrated['ece']:.3f} -> {result.val['ece']:.3f}, T={result.temperature:.2f}); "
          f"wrote {args.out} in {time.perf_counter() - wall:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()

