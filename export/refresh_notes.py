"""Replace an exported model's card notes and re-render its card, weights untouched.

    python -m export.refresh_notes --card-notes export/default_model_notes.md --out model_store

Evaluations of a recipe often finish after its model shipped (a fold, a corpus left out),
and the run folder that `export.export_onnx` needs may be gone by then. The notes are
metadata of the ONNX file (`card_notes`), so they can be rewritten in place: the graph,
the weights and the model version stay byte for byte what was exported and checked.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnx

from export.model_card import CARD_NOTES_KEY, write_model_card
from ser.config import MODEL_NAME
from ser.inference import gpu_graph


def set_notes(model_path: Path, notes: str) -> bool:
    """Rewrite one ONNX file's notes; False when they were already these."""
    proto = onnx.load(str(model_path))
    props = {p.key: p for p in proto.metadata_props}
    if CARD_NOTES_KEY in props and props[CARD_NOTES_KEY].value == notes:
        return False
    if CARD_NOTES_KEY in props:
        props[CARD_NOTES_KEY].value = notes
    else:
        proto.metadata_props.add(key=CARD_NOTES_KEY, value=notes)
    onnx.save(proto, str(model_path))
    return True


def refresh(folder: Path, notes: str) -> list[Path]:
    """New notes in the shipped graph and its float32 GPU twin (when there is one), then the card."""
    shipped = folder / f"{MODEL_NAME}.onnx"
    if not shipped.exists():
        raise SystemExit(f"no exported model at {shipped}")
    changed = [p for p in (shipped, gpu_graph(shipped)) if p.exists() and set_notes(p, notes)]
    write_model_card(folder)
    return changed


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--card-notes", type=Path, required=True, help="Markdown for the model card's Notes")
    p.add_argument("--out", type=Path, default=Path("model_store"), help="folder of the exported model")
    args = p.parse_args(argv)
    changed = refresh(args.out, args.card_notes.read_text())
    print(f"notes rewritten in {len(changed)} file(s); card {args.out / 'MODEL_CARD.md'} re-rendered")


if __name__ == "__main__":
    main()
