"""Run-folder outputs: metrics JSON, plots, and the data and config behind them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ser.config import FEATURE_CONFIG, LABELS  # noqa: E402
from ser.datasets import Clip  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.splits import Split  # noqa: E402


def plot_confusion(matrix: np.ndarray, path: Path, title: str) -> None:
    matrix = np.asarray(matrix, dtype=float)
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha="right")
    ax.set_yticks(range(len(LABELS)), LABELS)
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(history: list[dict], path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(epochs, [h["loss"] for h in history])
    a.set_title("training loss")
    a.set_xlabel("epoch")
    b.plot(epochs, [h["train_accuracy"] for h in history], label="train accuracy (augmented)")
    b.plot(epochs, [h["val_ua"] for h in history], label="validation UA (held-out speakers)")
    b.set_xlabel("epoch")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def data_summary(clips: Sequence[Clip], split: Split, corpus_args: Sequence[str],
                 member_val_speakers: list[list[str]] | None = None,
                 member_train_speakers: list[list[str]] | None = None) -> dict:  # fmt: skip
    def side(idx: list[int]) -> dict:
        return {
            "clips": len(idx),
            "speakers": sorted({clips[i].speaker for i in idx}),
            "labels": dict(sorted(Counter(clips[i].label for i in idx).items())),
        }

    summary = {
        "corpora": sorted({c.corpus for c in clips}),
        "corpus_args": [a.split("=", 1)[0] for a in corpus_args],  # paths are the user's own
        "train": side(split.train),
        "val": side(split.val),
        "test": side(split.test),
        # per ensemble member, the speakers it validated on and never trained on
        "member_val_speakers": member_val_speakers or [side(split.val)["speakers"]],
    }
    if member_train_speakers:  # and the speakers it trained on
        summary["member_train_speakers"] = member_train_speakers
    return summary


def write_run(out: Path, result, cfg: TrainConfig, clips, split, corpus_args, wall_s: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result.inference_model.save(out / "model.keras")
    (out / "config.json").write_text(json.dumps(
        {"train": cfg.to_dict(), "features": json.loads(FEATURE_CONFIG.to_json())}, indent=2))  # fmt: skip
    (out / "data.json").write_text(json.dumps(
        data_summary(clips, split, corpus_args, result.extra.get("member_val_speakers"),
                     result.extra.get("member_train_speakers")), indent=2))  # fmt: skip
    summary = {
        "protocol": "each ensemble member trains on all speakers but its validation speakers "
        "(early stopping); the temperature is fitted on validation predictions of members that "
        "never trained on those speakers",
        "temperature": result.temperature,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "member_best_epoch": result.extra.get("member_best_epoch", [result.best_epoch]),
        "val": result.val,
        "val_uncalibrated": result.val_uncalibrated,
        "uncertainty_threshold": result.uncertainty_threshold,
        "confident_accuracy": cfg.confident_accuracy,
        "wall_seconds": round(wall_s, 1),
        "train_seconds": round(result.seconds, 1),
        "tf_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "history": result.history,
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    plot_curves(result.history, out / "training_curves.png")
    (out / "normalisation.json").write_text(json.dumps(result.normalisation, indent=2))
    scope = "validation speakers, each scored by a member that never trained on it"
    (out / "classification_report.json").write_text(json.dumps({"scope": scope, **result.val_report}, indent=2))
    plot_confusion(result.val_confusion, out / "confusion_matrix.png", f"{scope.split(',')[0]} (optimistic)")
    write_run_card(out, result.inference_model)


def write_run_card(out: Path, model) -> None:
    """MODEL_CARD.md for the run, rendered as export renders the shipped model's card."""
    from export.metadata import build_metadata
    from export.model_card import render_info
    from ser.config import MODEL_NAME
    from ser.inference import info_from_metadata
    from training.model import architecture

    meta = build_metadata(out, architecture(model.get_layer(MODEL_NAME)), None, version=f"run {out.name}")
    (out / "MODEL_CARD.md").write_text(render_info(info_from_metadata(meta, out), None))
