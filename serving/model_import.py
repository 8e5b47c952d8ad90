"""Put the bundled ONNX model into BentoML's model store, once per model version.

    python -m serving.model_import [PATH]

`bentoml serve` and `bentoml build` look models up in the store; the serve script runs
this first, so a fresh machine serves the committed model without a manual step.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import bentoml

from ser.inference import BUNDLED_MODEL, read_model_info

MODEL_FILE = "model.onnx"
EXTRA_FILES = ("MODEL_CARD.md", "export_report.json", "confusion_matrix.png", "training_curves.png")


def ensure_imported(onnx_path: Path = BUNDLED_MODEL) -> bentoml.Model:
    """The store's model for this file's version, importing it if it isn't there yet."""
    info = read_model_info(onnx_path)
    tag = f"{info.name}:{info.version}"
    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        pass
    with bentoml.models.create(
        tag,
        labels={"framework": "onnx", "task": "speech-emotion-recognition"},
        metadata={"labels": list(info.labels), "feature_config": info.feature_config.to_json(),
                  "source": str(onnx_path.name)},  # fmt: skip
    ) as model:
        shutil.copyfile(onnx_path, Path(model.path) / MODEL_FILE)
        for name in EXTRA_FILES:
            if (onnx_path.parent / name).exists():
                shutil.copyfile(onnx_path.parent / name, Path(model.path) / name)
    return bentoml.models.get(tag)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else BUNDLED_MODEL
    model = ensure_imported(path)
    print(f"model store has {model.tag} at {model.path}")


if __name__ == "__main__":
    main()
