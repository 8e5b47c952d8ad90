"""Choose a trained run's `uncertain` threshold on its validation speakers, after the fact.

    python scripts/threshold_of_run.py RUN --corpus ravdess=PATH --corpus ...

`training.train` chooses it while training (`metrics.confident_threshold`, written to
metrics.json); this does the same for a run trained before that code existed: the run's
own validation speakers (data.json), their whole clips and 1 s crops (as training's
validation set), the run's calibrated model, the configured target accuracy. It adds
`uncertainty_threshold` and `confident_accuracy` to RUN/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import training.model  # noqa: E402,F401  (registers the custom layers)
from training import metrics  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.data import store_for  # noqa: E402
from training.train import _clip_labels, load_clips, validation_set  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--corpus", action="append", required=True)
    args = p.parse_args()
    cfg = TrainConfig.with_overrides(json.loads((args.run / "config.json").read_text())["train"])
    val_speakers = set(json.loads((args.run / "data.json").read_text())["val"]["speakers"])
    clips = load_clips(args.corpus)
    store = store_for(clips, cfg)
    val = validation_set(store, [i for i, c in enumerate(clips) if c.speaker in val_speakers], cfg)
    model = keras.models.load_model(args.run / "model.keras")  # calibrated: softmax(logits / T)
    window_probs = model.predict(val.x, batch_size=256, verbose=0)
    ids = np.unique(val.clip)
    probs = np.stack([window_probs[val.clip == i].mean(axis=0) for i in ids])
    y = _clip_labels(val)
    threshold = metrics.confident_threshold(y, probs, cfg.confident_accuracy)
    rc = metrics.risk_coverage(y, probs, threshold)
    run_metrics = json.loads((args.run / "metrics.json").read_text())
    run_metrics |= {"uncertainty_threshold": threshold, "confident_accuracy": cfg.confident_accuracy,
                    "uncertainty_on_validation": rc}  # fmt: skip
    (args.run / "metrics.json").write_text(json.dumps(run_metrics, indent=2))
    print(f"threshold {threshold:.3f}: {rc['coverage']:.1%} of {rc['n']} validation clips confident, "
          f"right {rc['accuracy_confident']}; all {rc['accuracy_all']:.3f}")


if __name__ == "__main__":
    main()
