"""What an exported model carries, built from its run folder's files: no TensorFlow, so
training writes each run's card with it and the exporter only adds the graph.

The run folder is the record: `config.json` (rebuilt into a typed `TrainConfig`),
`normalisation.json` (the statistics the graph standardises with), `metrics.json`
(temperature, validation figures, the uncertainty threshold) and `data.json`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from export.model_card import CARD_NOTES_KEY, model_licence
from ser.config import FEATURE_CONFIG, LABELS, MODEL_NAME
from training.config import BEFORE_SETTING, TrainConfig

REPO = Path(__file__).resolve().parent.parent
VALIDATION_KEYS = ("val", "val_uncalibrated", "best_epoch", "member_best_epoch", "temperature", "train_seconds",
                   "tf_threads")  # fmt: skip


def run_config(run: Path) -> TrainConfig:
    """The run's training settings, typed (tuples, ints) as when it trained."""
    return TrainConfig.from_record(json.loads((run / "config.json").read_text())["train"])


def describe_normalisation(cfg: TrainConfig) -> str:
    k = cfg.cmn_coefficients if cfg.utterance_cmn else 0
    if k == 0:
        first = ""
    elif k == 1:
        first = "per-window subtraction of the mean c0 (the level; spectral shape is kept), then "
    else:
        scaled = " and variance scaling" if cfg.utterance_cvn else ""
        first = f"per-window mean subtraction{scaled} of the first {k} coefficients, then "
    return first + "standardisation per coefficient with statistics fitted on the training speakers only"


def recipe_differences(evaluation: dict, cfg: TrainConfig) -> dict[str, list[Any]]:
    """Settings in which the evaluation's runs differ from the model's: {key: [evaluation's,
    model's]}. The card says the folds are of the same recipe only when this is empty."""
    known = set(TrainConfig().to_dict())
    raw = {k: v for k, v in (evaluation.get("config") or {}).items() if k in known}
    evaluated = TrainConfig.from_record(raw).to_dict()
    # a setting newer than the evaluation has what the evaluation did without it, where known;
    # otherwise it is not assumed to have had today's default
    recorded = set(raw) | set(BEFORE_SETTING)
    return {k: [evaluated[k] if k in recorded else "not recorded", v]
            for k, v in cfg.to_dict().items() if k not in recorded or evaluated[k] != v}  # fmt: skip


def evaluation_metadata(evaluation: dict, cfg: TrainConfig) -> str:
    """The `evaluation` metadata entry: training.evaluate's summary, with the settings in which
    its runs differ from the model's instead of the settings themselves."""
    return json.dumps({k: v for k, v in evaluation.items() if k != "config"}
                      | {"recipe_differences": recipe_differences(evaluation, cfg)})  # fmt: skip


def shown_path(value: Any) -> Any:
    """A path inside the repository as relative to it (`runs/...`); anything else as it is."""
    if not isinstance(value, str) or not value.startswith("/"):
        return value
    try:
        return str(Path(value).resolve().relative_to(REPO))
    except ValueError:
        return value


def build_metadata(run: Path, architecture: dict[str, Any], evaluation: dict | None, version: str,
                   notes: str | None = None, teacher: dict | None = None) -> dict[str, str]:  # fmt: skip
    """The ONNX metadata map (all strings) for the model trained in `run`."""
    cfg = run_config(run)
    # a teacher's run folder as the repository names it, not by this machine's path
    cfg = dataclasses.replace(cfg, distill_from=shown_path(cfg.distill_from))
    norm = json.loads((run / "normalisation.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    data = json.loads((run / "data.json").read_text())
    meta = {
        "model_name": MODEL_NAME,
        "model_version": version,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "feature_config": FEATURE_CONFIG.to_json(),
        "labels": json.dumps(list(LABELS)),
        "normalisation": json.dumps({
            "per_clip_mean_subtraction": cfg.utterance_cmn,
            "per_clip_mean_coefficients": cfg.cmn_coefficients if cfg.utterance_cmn else 0,
            "per_clip_variance_scaling": cfg.utterance_cvn,
            "description": describe_normalisation(cfg),
            "mean": [round(float(v), 5) for v in norm["mean"]],
            "variance": [round(float(v), 5) for v in norm["variance"]],
            "fitted_on": "training speakers only",
        }),  # fmt: skip
        "temperature": json.dumps(round(float(metrics["temperature"]), 6)),
        "architecture": json.dumps(architecture),
        "train_config": json.dumps(cfg.to_dict()),
        "training_data": json.dumps(data),
        "validation_metrics": json.dumps({k: metrics.get(k) for k in VALIDATION_KEYS}),
        "license": model_licence(data.get("corpora", [])),
        "weights": "float32",
    }
    if "uncertainty_threshold" in metrics:  # chosen on the validation speakers
        meta["uncertainty_threshold"] = json.dumps(round(float(metrics["uncertainty_threshold"]), 4))
    if evaluation:
        meta["evaluation"] = evaluation_metadata(evaluation, cfg)
    if notes:
        meta[CARD_NOTES_KEY] = notes
    if teacher:  # distilled: what it learned from (export.export_onnx.teacher_of)
        meta["teacher"] = json.dumps(teacher)
    return meta
