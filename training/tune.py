"""Tuning: try a few settings on validation speakers, report every trial.

    python -m training.tune --corpus ravdess=PATH --out runs/tune \
        --grid learning_rate=0.001,0.0005 --grid dropout=0.2,0.3 [--trials 4]

Trials train on all speakers but one speaker fold and score unweighted accuracy on that
fold, which is held out of training; test speakers are not involved at all, so pick
settings here and then measure them with `training.evaluate`. Each trial's settings and
score go to tuning.json, best first.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

from training.config import TrainConfig
from training.data import store_for
from training.splits import holdout_split, speaker_folds
from training.train import fit_split, load_clips, set_tf_threads


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ValueError(f"--grid takes key=v1,v2,..., got {item!r}")
        grid[key] = values.split(",")
    return grid


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", action="append", required=True, help="NAME=PATH, repeatable")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2")
    p.add_argument("--trials", type=int, help="at most this many grid points, in grid order")
    p.add_argument("--folds", type=int, default=5, help="speaker folds; fold --val-fold validates")
    p.add_argument("--val-fold", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fixed overrides")
    args = p.parse_args(argv)
    grid = parse_grid(args.grid)
    base = TrainConfig.with_overrides(args.set)
    set_tf_threads()
    clips = load_clips(args.corpus)
    split = holdout_split(clips, speaker_folds(clips, args.folds, base.seed)[args.val_fold])
    points = list(itertools.product(*grid.values()))[: args.trials]
    trials = []
    for n, values in enumerate(points, 1):
        overrides = dict(zip(grid, values, strict=True))
        cfg = TrainConfig.with_overrides([*args.set, *(f"{k}={v}" for k, v in overrides.items())])
        start = time.perf_counter()
        # a fresh store per trial: augmentation settings may be among the tuned keys
        r = fit_split(store_for(clips, cfg), split, cfg, desc=f"trial {n}/{len(points)}")
        trial = {"trial": n, "overrides": overrides, "val_ua": r.val["unweighted_accuracy"],
                 "val_ece": r.val["ece"], "best_epoch": r.best_epoch, "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
        trials.append(trial)
        print(f"trial {n}: {overrides} -> validation UA {trial['val_ua']:.3f} (epoch {trial['best_epoch']})")
    trials.sort(key=lambda t: -t["val_ua"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tuning.json").write_text(json.dumps({
        "protocol": "train on all speakers but the validation fold; validation UA on that fold "
        "(with rotate_validation, each validation speaker scored by the member that never trained on it)",
        "validation_speakers": list(split.val_speakers), "base": base.to_dict(), "trials": trials}, indent=2))  # fmt: skip
    print(f"best: {trials[0]['overrides']} (UA {trials[0]['val_ua']:.3f}); wrote {args.out / 'tuning.json'}")


if __name__ == "__main__":
    main()
