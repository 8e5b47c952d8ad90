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

from ser.inference import BUNDLED_MODEL, gpu_graph, read_model_info

MODEL_FILE = "model.onnx"
EXTRA_FILES = ("MODEL_CARD.md", "export_report.json", "confusion_matrix.png", "training_curves.png")


def ensure_imported(onnx_path: Path = BUNDLED_MODEL) -> bentoml.Model:
    """The store's model for this file's version, importing it if it isn't there yet."""
    info = read_model_info(onnx_path)
    tag = f"{info.name}:{info.version}"
    files = {MODEL_FILE: onnx_path, gpu_graph(MODEL_FILE).name: gpu_graph(onnx_path)}
    files |= {name: onnx_path.parent / name for name in EXTRA_FILES}
    files = {name: path for name, path in files.items() if path.exists()}
    try:
        stored = bentoml.models.get(tag)
        if all(Path(stored.path_of(name)).exists() for name in files):
            return stored
        bentoml.models.delete(tag)  # imported before the bundle gained a file (the GPU graph)
    except bentoml.exceptions.NotFound:
        pass
    with bentoml.models.create(
        tag,
        labels={"framework": "onnx", "task": "speech-emotion-recognition"},
        metadata={"labels": list(info.labels), "feature_config": info.feature_config.to_json(),
                  "source": str(onnx_path.name)},  # fmt: skip
    ) as model:
        for name, path in files.items():
            shutil.copyfile(path, Path(model.path) / name)
    return bentoml.models.get(tag)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else BUNDLED_MODEL
    model = ensure_imported(path)
    print(f"model store has {model.tag} at {model.path}")


if __name__ == "__main__":
    main()
