"""Honest accuracy: k folds by speaker, plus a random-split and a cross-corpus figure.

    python -m training.evaluate --corpus ravdess=PATH --folds 5 --out runs/eval \
        [--random-split] [--cross-corpus emodb=PATH] [--run-folds 0,1]

Each fold tests on speakers never seen in training: one fold tests, `--val-speakers` of
the next fold validate (early stopping, temperature scaling) and are not trained on, the
rest train. Reports unweighted accuracy (mean per-class recall), weighted accuracy,
macro-F1 and calibration error as mean +- std over folds, and per-class figures from the
confusion matrix pooled over all folds. The random split mixes speakers across train and
test and is labelled as such: it is only for comparison with published numbers.
Cross-corpus: train on the --corpus data, test on every clip of the other corpus whose
class the training data has; `--cross-corpus-run runs/default` tests that trained run (the
shipped model never saw the other corpus) instead of training another.

Each part (fold, random split, cross-corpus) is saved as its own JSON in --out, and
evaluation.json is rebuilt from all parts present, so separate processes can run
different folds in parallel (`--run-folds`) on a machine with idle cores. A fold or
left-out corpus whose training was cut off (the job killed, the machine gone) resumes from
its last finished epoch when the same command runs again (`fold_<i>.checkpoint/` in --out).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ser.config import LABELS
from training import metrics
from training.config import TrainConfig
from training.data import FeatureStore, store_for
from training.degrade import CONDITIONS, LENGTHS_S
from training.splits import Split, describe, fold_split, pick_validation, random_split, speaker_folds
from training.train import fit_split, load_clips, set_tf_threads

KEYS = ("unweighted_accuracy", "weighted_accuracy", "macro_f1", "ece")


def mean_std(results: list[dict]) -> dict:
    return {
        k: {"mean": float(np.mean([r[k] for r in results])),
            "std": float(np.std([r[k] for r in results]))}
        for k in KEYS
    }  # fmt: skip


def per_class_from_confusion(confusion: np.ndarray) -> dict:
    """Precision, recall, F1 and support per class from a (true x predicted) count matrix."""
    out = {}
    for i, label in enumerate(LABELS):
        tp, support, predicted = confusion[i, i], confusion[i].sum(), confusion[:, i].sum()
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        out[label] = {"precision": float(p), "recall": float(r),
                      "f1-score": float(2 * p * r / (p + r)) if p + r else 0.0, "support": int(support)}  # fmt: skip
    return out


ROBUSTNESS_VIEWS = tuple(f"cond:{c}" for c in CONDITIONS[1:]) + tuple(f"len:{s}" for s in LENGTHS_S)


def score_views(r, store: FeatureStore, idx: list[int], views: Sequence[str]) -> dict:
    """{view: {corpus or "all": metrics}} for the test clips `idx`, calibrated, plus the
    uncalibrated ECE next to each, clip-level (window probabilities averaged)."""
    out = {}
    for view in views:
        data = store.window_set(idx, view)
        logits = r.logits_model.predict(data.x, batch_size=256, verbose=0)
        ids, probs = metrics.clip_probabilities(logits, data.clip, r.temperature)
        raw = metrics.clip_probabilities(logits, data.clip)[1]
        y = np.array([LABELS.index(store.clips[i].label) for i in ids])
        corpus = np.array([store.clips[i].corpus for i in ids])
        per = {}
        for name in ["all", *sorted(set(corpus))]:
            m = corpus == name if name != "all" else np.ones(len(ids), bool)
            per[name] = metrics.summary(y[m], probs[m]) | {"ece_uncalibrated": metrics.expected_calibration_error(y[m], raw[m])}
        out[view] = per
    return out


def run_fold(clips, cfg: TrainConfig, folds: list[list[str]], i: int, n_val: int | None,
             views: Sequence[str] = ROBUSTNESS_VIEWS, save: Path | None = None,
             checkpoint: Path | None = None) -> dict:  # fmt: skip
    """Train on fold `i`'s training speakers, score its test speakers; with `save`, the
    fold's model is kept there as a run folder (a teacher for the same fold's student);
    with `checkpoint`, training resumes from there (see training.checkpoint)."""
    split = fold_split(clips, folds, i, n_val)
    print(f"fold {i + 1}/{len(folds)}: test {split.test_speakers}, val {split.val_speakers}")
    print(describe(clips, split))
    store = store_for(clips, cfg)
    r = fit_split(store, split, cfg, desc=f"fold {i + 1}", checkpoint=checkpoint)
    scores = score_views(r, store, split.test, ["clean", *views])
    if save is not None:
        from training.reporting import write_run

        write_run(save, r, cfg, clips, r.split, [f"{c}=" for c in sorted({c.corpus for c in clips})], r.seconds)
    line = ", ".join(f"{k} {v['unweighted_accuracy']:.3f}" for k, v in scores["clean"].items())
    print(f"fold {i + 1}: test UA {line}; {r.seconds:.0f} s")
    return {
        "fold": i, "config": cfg.to_dict(), "test_speakers": split.test_speakers, "val_speakers": r.split.val_speakers,
        "best_epoch": r.best_epoch, "temperature": r.temperature, "seconds": r.seconds,
        "test": r.test, "test_uncalibrated": r.test_uncalibrated, "val": r.val, "confusion": r.test_confusion,
        "views": scores,
        "clip_predictions": saved_predictions(r),
        "history": r.history,  # test_ua per epoch is a record only; weights are chosen without it
        "member_history": r.extra.get("member_history"),
    }  # fmt: skip


def leave_corpus_out(clips, cfg: TrainConfig, corpus: str, k: int, n_val: int | None,
                     views: Sequence[str] = ("cond:noise", "cond:phone", "len:1.0"),
                     checkpoint: Path | None = None) -> dict:  # fmt: skip
    """Train without any clip of `corpus` (validation from the others), test on all of it."""
    rest = [i for i, c in enumerate(clips) if c.corpus != corpus]
    held = [i for i, c in enumerate(clips) if c.corpus == corpus]
    if not rest or not held:
        raise SystemExit(f"leave-one-corpus-out needs {corpus} and at least one other corpus")
    others = [clips[i] for i in rest]
    val = set(pick_validation(others, speaker_folds(others, k, cfg.seed)[0], n_val))
    split = Split(
        train=[i for i in rest if clips[i].speaker not in val], val=[i for i in rest if clips[i].speaker in val],
        test=held, test_speakers=tuple(sorted({clips[i].speaker for i in held})), val_speakers=tuple(sorted(val)),
    )  # fmt: skip
    print(f"leave {corpus} out:\n{describe(clips, split)}")
    store = store_for(clips, cfg)
    r = fit_split(store, split, cfg, desc=f"without {corpus}", checkpoint=checkpoint)
    scores = score_views(r, store, held, ["clean", *views])
    print(f"{corpus} never heard: UA {scores['clean'][corpus]['unweighted_accuracy']:.3f}; {r.seconds:.0f} s")
    return {
        "protocol": f"trained on every corpus but {corpus} (validation speakers from those corpora); "
        f"tested on all of {corpus}, 8-way answers scored on the classes {corpus} has",
        "corpus": corpus, "config": cfg.to_dict(), "classes": sorted({clips[i].label for i in held}), "seconds": r.seconds,
        "best_epoch": r.best_epoch, "temperature": r.temperature, "views": scores, "confusion": r.test_confusion,
        "clip_predictions": saved_predictions(r),
    }  # fmt: skip


PREDICTION_KEYS = ("y", "probs", "corpus", "short", "window_logits", "window_clip")


def saved_predictions(r) -> dict[str, list]:
    """Validation and test answers, by clip (the merge scores the uncertain flag from them:
    `uncertainty_of_fold`) and by window, uncalibrated (`scripts/fold_posthoc.py`)."""
    out = {}
    for part in ("val", "test"):
        for key in PREDICTION_KEYS:
            value = r.extra.get(f"{part}_{key}")
            if value is not None:
                value = np.asarray(value)
                if value.dtype.kind == "f":  # float64 first: rounded float32 prints its binary tail
                    value = np.round(value.astype(np.float64), 4 if key == "window_logits" else 5)
                out[f"{part}_{key}"] = value.tolist()
    return out


def random_split_eval(clips, cfg: TrainConfig) -> dict:
    split = random_split(len(clips), cfg.seed)
    r = fit_split(store_for(clips, cfg), split, cfg, desc="random split")
    return {
        "protocol": "RANDOM clip split 60/20/20, speakers on both sides: NOT speaker-"
        "independent; only for comparison with published random-split figures",
        "test": r.test,
    }


def cross_corpus_eval(clips, other, cfg: TrainConfig, k: int, n_val: int | None, test_corpora: list[str]) -> dict:
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
    r = fit_split(store_for(combined, cfg), split, cfg, desc="cross-corpus")
    y = np.array([LABELS.index(combined[j].label) for j in r.extra["test_clip_indices"]])
    return cross_corpus_report(y, r.extra["test_probs"], test_corpora, "a model trained for this test")


def cross_corpus_of_run(run: Path, other, test_corpora: list[str]) -> dict:
    """Test an already trained run (e.g. the shipped model) on another corpus, no training.

    Only valid when the run never saw that corpus: checked against the run's data.json.
    """
    import keras

    import training.model  # noqa: F401  (registers the custom layer)
    from ser.audio import load_audio
    from ser.features import clip_features

    data = json.loads((run / "data.json").read_text())
    overlap = set(data["corpora"]) & {c.corpus for c in other}
    if overlap:
        raise SystemExit(f"{run} was trained on {sorted(overlap)}: not a cross-corpus test")
    model = keras.models.load_model(run / "model.keras")
    clips = [c for c in other if c.label in data["train"]["labels"]]
    probs = []
    for clip in clips:
        windows = clip_features(load_audio(clip.path))[0]
        probs.append(model.predict(windows, verbose=0).mean(axis=0))
    y = np.array([LABELS.index(c.label) for c in clips])
    return cross_corpus_report(y, np.stack(probs), test_corpora, f"the trained run {run.name}")


def cross_corpus_report(y: np.ndarray, probs: np.ndarray, test_corpora: list[str], model: str) -> dict:
    shared = sorted(set(y.tolist()))
    restricted = np.zeros_like(probs)
    restricted[:, shared] = probs[:, shared]
    restricted /= restricted.sum(axis=1, keepdims=True)
    _, confusion = metrics.report(y, probs)
    return {
        "protocol": "train on the training corpus, test on every clip of the other corpus "
        f"in a class both share ({model})",
        "test_corpora": test_corpora,
        "test_corpus_classes": [LABELS[i] for i in shared],
        "all_8_outputs": metrics.summary(y, probs),
        "restricted_to_shared_classes": metrics.summary(y, restricted),
        "confusion": confusion.tolist(),
    }


def cv_protocol(k: int, n_val: int | None, config: dict) -> str:
    text = (f"{k}-fold cross-validation by speaker, speakers of every corpus dealt into the folds: per fold, "
            "the test speakers are never seen in training; ")  # fmt: skip
    members = int(config.get("ensemble", 1))
    only = (f"; only {', '.join(config['train_corpora'])} trains and validates (the other corpora's test speakers "
            "are an unseen corpus)" if config.get("train_corpora") else "")  # fmt: skip
    role = ("temperature scaling; weights are those at the end of the schedule" if config.get("selection") == "last"
            else "early stopping, temperature scaling")  # fmt: skip
    if members > 1 and config.get("rotate_validation") and config.get("rotate_within_train"):
        return text + (
            f"each of the {members} ensemble members validates ({role}) on one training speaker per corpus "
            f"that it does not train on (no two members the same); {n_val} speakers of each corpus in the next "
            "fold are trained on by no member"
        ) + only
    if members > 1 and config.get("rotate_validation"):
        return text + (
            f"each of the {members} ensemble members validates ({role}) on "
            f"{n_val} other speakers that it does not train on (the first member on {n_val} speakers "
            "of the next fold, the others on speakers rotated through the rest)"
        ) + only
    per = f"{n_val} speakers of each corpus" if n_val else "all speakers"
    return text + f"{per} in the next fold validate ({role}) and are not trained on" + only


def views_summary(folds: list[dict]) -> dict:
    """{view: {corpus: mean +- std over folds}} for every view all folds scored."""
    views = set.intersection(*(set(f.get("views", {})) for f in folds))
    out = {}
    for view in sorted(views):
        corpora = set.intersection(*(set(f["views"][view]) for f in folds))
        out[view] = {c: mean_std([f["views"][view][c] for f in folds]) | {
            "ece_uncalibrated": float(np.mean([f["views"][view][c]["ece_uncalibrated"] for f in folds]))}
            for c in sorted(corpora)}  # fmt: skip
    return out


def uncertainty_of_fold(fold: dict, target: float) -> dict:
    """The uncertain flag on a fold's test speakers, its threshold chosen on its validation
    speakers for `target` accuracy, from the clip-level answers the fold saved."""
    p = {k: np.asarray(v) for k, v in fold["clip_predictions"].items()}
    threshold = metrics.confident_threshold(p["val_y"], p["val_probs"], target)
    return metrics.risk_coverage(p["test_y"], p["test_probs"], threshold)


def merge(out: Path, k: int, n_val: int | None, header: dict) -> dict:
    """evaluation.json from every part saved in `out`. The settings are the ones the parts
    recorded (a merge run with other `--set`s would otherwise describe another recipe);
    parts trained with different settings are refused. A part from before a setting existed
    is read as what it did without it (`TrainConfig.from_record`), so adding a setting
    does not split a recipe's folds."""
    folds = [json.loads(p.read_text()) for p in sorted(out.glob("fold_*.json"))]
    parts = folds + [json.loads(p.read_text()) for p in sorted(out.glob("loco_*.json"))]
    recorded = [TrainConfig.from_record(p["config"]).to_dict() for p in parts if "config" in p]
    if any(r != recorded[0] for r in recorded):
        raise SystemExit(f"the parts in {out} were trained with different settings: merge them apart")
    if recorded:
        header = {**header, "config": recorded[0]}
    result = dict(header)
    if folds:
        confusion = np.sum([np.array(f["confusion"]) for f in folds], axis=0)
        result["speaker_cv"] = {
            "protocol": cv_protocol(k, n_val, header.get("config", {})),
            "folds_run": f"{len(folds)} of {k}",
            "folds": [{k: v for k, v in f.items() if k not in ("clip_predictions", "config")} for f in folds],
            "summary": mean_std([f["test"] for f in folds]),
            "summary_uncalibrated": mean_std([f["test_uncalibrated"] for f in folds]),
            "per_class": per_class_from_confusion(confusion),
            "confusion": confusion.tolist(),
            "by_view": views_summary(folds),
        }
        target = float(header.get("config", {}).get("confident_accuracy", 0.5))
        rc = [uncertainty_of_fold(f, target) for f in folds if "clip_predictions" in f]
        if rc:
            result["speaker_cv"]["uncertainty"] = {
                "protocol": "per fold, the threshold is chosen on that fold's validation speakers (the "
                "confidence at which an answer is right the target share of the time, from an isotonic fit "
                "of correctness on confidence) and applied to its test speakers; accuracy = share of clips "
                "whose top emotion is right",
                "target_accuracy": target,
                "folds": len(rc),
                **{k: {"mean": float(np.mean([r[k] for r in rc if r[k] is not None])),
                       "std": float(np.std([r[k] for r in rc if r[k] is not None]))}
                   for k in ("threshold", "coverage", "accuracy_confident", "accuracy_uncertain", "accuracy_all")},
                "curve": [{"coverage": p["coverage"], "accuracy": float(np.mean([r["curve"][j]["accuracy"] for r in rc]))}
                          for j, p in enumerate(rc[0]["curve"])],
            }  # fmt: skip
    for part in ("random_split", "cross_corpus"):
        if (out / f"{part}.json").exists():
            result[part] = json.loads((out / f"{part}.json").read_text())
    # each part's clip and window predictions stay in its own file (scripts/fold_posthoc.py):
    # evaluation.json travels into the model's metadata
    loco = {p.stem[5:]: {k: v for k, v in json.loads(p.read_text()).items() if k not in ("clip_predictions", "config")}
            for p in sorted(out.glob("loco_*.json"))}  # fmt: skip
    if loco:
        result["leave_one_corpus_out"] = loco
    (out / "evaluation.json").write_text(json.dumps(result, indent=2))
    if folds:
        from training.reporting import plot_confusion

        s = result["speaker_cv"]["summary"]["unweighted_accuracy"]
        plot_confusion(confusion, out / "confusion_matrix.png",
                       f"speaker-independent CV, {len(folds)} folds pooled (UA {s['mean']:.2f})")  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", action="append", required=True, help="NAME=PATH, repeatable")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--run-folds", help="comma-separated 0-based folds to run (default: all)")
    p.add_argument("--max-folds", type=int, help="run only the first N folds (smoke tests)")
    p.add_argument("--val-speakers", type=int, default=2, help="validation speakers taken from the next fold")
    p.add_argument("--random-split", action="store_true")
    p.add_argument("--leave-out", action="append", default=[], metavar="CORPUS",
                   help="leave-one-corpus-out: train without CORPUS, test on all of it (repeatable)")
    p.add_argument("--cross-corpus", action="append", default=[], metavar="NAME=PATH")
    p.add_argument("--cross-corpus-run", type=Path, metavar="RUN",
                   help="test this trained run folder on --cross-corpus instead of training a new model")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--save-models", type=Path, metavar="DIR", help="keep each fold's model in DIR/fold_<i>")
    args = p.parse_args(argv)
    cfg = TrainConfig.with_overrides(args.set)
    set_tf_threads()
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    clips = load_clips(args.corpus)
    header = {"config": cfg.to_dict(), "corpora": [a.split("=")[0] for a in args.corpus]}
    folds = speaker_folds(clips, args.folds, cfg.seed)
    if args.run_folds is not None:
        to_run = [int(i) for i in args.run_folds.split(",") if i.strip()]
    else:
        to_run = list(range(args.max_folds or args.folds))
    for i in to_run:
        save = args.save_models / f"fold_{i}" if args.save_models else None
        checkpoint = args.out / f"fold_{i}.checkpoint"  # run again after a cut-off: resumes here
        part = run_fold(clips, cfg, folds, i, args.val_speakers, save=save, checkpoint=checkpoint)
        (args.out / f"fold_{i}.json").write_text(json.dumps(part, indent=2))
        shutil.rmtree(checkpoint, ignore_errors=True)
    for corpus in args.leave_out:
        checkpoint = args.out / f"loco_{corpus}.checkpoint"
        part = leave_corpus_out(clips, cfg, corpus, args.folds, args.val_speakers, checkpoint=checkpoint)
        (args.out / f"loco_{corpus}.json").write_text(json.dumps(part, indent=2))
        shutil.rmtree(checkpoint, ignore_errors=True)
    if args.random_split:
        (args.out / "random_split.json").write_text(json.dumps(random_split_eval(clips, cfg), indent=2))
    if args.cross_corpus:
        other = load_clips(args.cross_corpus)
        names = [a.split("=")[0] for a in args.cross_corpus]
        if args.cross_corpus_run:
            part = cross_corpus_of_run(args.cross_corpus_run, other, names)
        else:
            part = cross_corpus_eval(clips, other, cfg, args.folds, args.val_speakers, names)
        (args.out / "cross_corpus.json").write_text(json.dumps(part, indent=2))
    result = merge(args.out, args.folds, args.val_speakers, header)
    print(f"this process: {time.perf_counter() - start:.0f} s")
    if "speaker_cv" in result:
        s = result["speaker_cv"]["summary"]["unweighted_accuracy"]
        print(f"UA {s['mean']:.3f} +- {s['std']:.3f} over {len(result['speaker_cv']['folds'])} speaker folds")


if __name__ == "__main__":
    main()
