"""Replace an exported model's card notes or its evaluation and re-render its card, weights
untouched.

    python -m export.refresh_notes --card-notes export/default_model_notes.md --out model_store
    python -m export.refresh_notes --evaluation runs/eval/evaluation.json --out model_store

Evaluations of a recipe often finish after its model shipped (a fold, a corpus left out,
a whole set of folds run again), and the run folder that `export.export_onnx` needs may be
gone by then. Notes and evaluation are metadata of the ONNX file (`card_notes`,
`evaluation`), so they can be rewritten in place: the graph, the weights and the model
version stay byte for byte what was exported and checked. A new evaluation is compared with
the model's own recorded training settings, so the card still names every setting in which
the evaluated runs differ from the model.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import onnx

from export.metadata import evaluation_metadata
from export.model_card import CARD_NOTES_KEY, write_model_card
from ser.config import MODEL_NAME
from ser.inference import gpu_graph, metadata_json, read_model_info
from training.config import TrainConfig  # dataclass only: no TensorFlow


def set_metadata(model_path: Path, values: dict[str, str]) -> bool:
    """Rewrite entries of one ONNX file's metadata; False when they already held these values."""
    proto = onnx.load(str(model_path))
    props = {p.key: p for p in proto.metadata_props}
    if all(k in props and props[k].value == v for k, v in values.items()):
        return False
    for key, value in values.items():
        if key in props:
            props[key].value = value
        else:
            proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(model_path))
    return True


def refresh(folder: Path, notes: str | None = None, evaluation: Path | None = None) -> list[Path]:
    """New notes and/or evaluation in the shipped graph and its float32 GPU twin (when there
    is one), then the card."""
    shipped = folder / f"{MODEL_NAME}.onnx"
    if not shipped.exists():
        raise SystemExit(f"no exported model at {shipped}")
    values = {} if notes is None else {CARD_NOTES_KEY: notes}
    if evaluation is not None:
        model_cfg = TrainConfig.from_record(metadata_json(read_model_info(shipped), "train_config"))
        values["evaluation"] = evaluation_metadata(json.loads(evaluation.read_text()), model_cfg)
        if (evaluation.parent / "confusion_matrix.png").exists():
            shutil.copyfile(evaluation.parent / "confusion_matrix.png", folder / "confusion_matrix.png")
    changed = [p for p in (shipped, gpu_graph(shipped)) if p.exists() and set_metadata(p, values)]
    write_model_card(folder)
    return changed


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--card-notes", type=Path, help="Markdown for the model card's Notes")
    p.add_argument("--evaluation", type=Path, help="evaluation.json from training.evaluate, to replace the model's")
    p.add_argument("--out", type=Path, default=Path("model_store"), help="folder of the exported model")
    args = p.parse_args(argv)
    if args.card_notes is None and args.evaluation is None:
        p.error("nothing to refresh: give --card-notes, --evaluation or both")
    notes = args.card_notes.read_text() if args.card_notes else None
    changed = refresh(args.out, notes, args.evaluation)
    print(f"metadata rewritten in {len(changed)} file(s); card {args.out / 'MODEL_CARD.md'} re-rendered")


if __name__ == "__main__":
    main()
