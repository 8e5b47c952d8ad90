"""Write MODEL_CARD.md from what the exported model carries, so the card can't disagree with it.

    python -m export.model_card model_store

The wording lives in `export/templates/model_card.md.j2`; this module gathers what the
template shows from the model's metadata. It imports no TensorFlow: training writes each
run's card with it too.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ser.config import EVALUATION_VIEWS, LABELS
from ser.inference import BUNDLED_MODEL, ModelInfo, metadata_json, normalisation_text, read_model_info

TEMPLATES = Path(__file__).resolve().parent / "templates"
# the ONNX metadata key of the card's Notes (export/default_model_notes.md for the bundled model)
CARD_NOTES_KEY = "card_notes"

LICENCES = {
    "ravdess": "RAVDESS (English, North American actors): Livingstone & Russo (2018), PLoS ONE "
    "13(5): e0196391, licensed CC BY-NC-SA 4.0.",
    "emodb": "EmoDB (German): Burkhardt et al., Interspeech 2005; free for research from TU Berlin.",
    "nemo": "nEMO (Polish): Christop, LREC-COLING 2024, licensed CC BY-NC-SA 4.0.",
    "ased": "ASED v1 (Amharic, speakers recording themselves in rooms of their choosing): Retta et "
    "al., ACM TALLIP 2022, doi 10.1145/3529759. **No licence is stated**; the authors publish it "
    "for research and ask to be cited. Treat this model as research-only for that reason too.",
    "cremad": "CREMA-D: Cao et al., IEEE TAC 2014, Open Database License.",
    "tess": "TESS: Dupuis & Pichora-Fuller, University of Toronto, 2010, CC BY-NC-ND 4.0.",
    "savee": "SAVEE: Haq & Jackson, University of Surrey, 2009; free for research.",
}
SHARE_ALIKE = {"ravdess", "nemo"}


def model_licence(corpora: list[str]) -> str:
    """The licence the model inherits, one line, for its metadata."""
    inherited = sorted(SHARE_ALIKE & set(corpora))
    text = f"CC BY-NC-SA 4.0 (inherited from {', '.join(inherited)})" if inherited else "see the training corpora"
    return text + ("; ASED states no licence: research use" if "ased" in corpora else "")


def corpus_licence_lines(corpora: list[str]) -> list[str]:
    """One line per training corpus, then what the model inherits."""
    lines = [f"- {LICENCES.get(c, c + ': licence unknown')}" for c in corpora]
    inherited = sorted(SHARE_ALIKE & set(corpora))
    if inherited:
        lines.append(f"- **This model is a derivative of {', '.join(inherited)} and carries CC BY-NC-SA 4.0: "
                     "non-commercial, share-alike.**")  # fmt: skip
    return lines


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _speaker_counts(speakers: list[str]) -> str:
    counts: dict[str, int] = {}
    for s in speakers:
        counts[s.split(":")[0]] = counts.get(s.split(":")[0], 0) + 1
    return "test " + ", ".join(f"{n} {c}" for c, n in sorted(counts.items()))


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, keep_trailing_newline=True,
                      autoescape=False)  # Markdown, not HTML  # fmt: skip
    env.filters |= {"pct": _pct, "pct0": lambda x: f"{100 * x:.0f}", "speaker_counts": _speaker_counts,
                    "ms": lambda d: f"{_pct(d['mean'])} ± {_pct(d['std'])}"}  # fmt: skip
    return env


def _data_line(data: dict, train_cfg: dict, val_role: str) -> str:
    members = int(train_cfg.get("ensemble", 1))
    if members > 1 and train_cfg.get("rotate_validation") and train_cfg.get("rotate_within_train"):
        member_vals = data.get("member_val_speakers", [])
        return (f"- Training corpora: {', '.join(data.get('corpora', []))}. Each of the {members} ensemble members "
                f"trains on all but one speaker per corpus of the {len(data.get('train', {}).get('speakers', []))} "
                f"training speakers and validates ({val_role}) on that one: "
                + "; ".join(f"member {i + 1}: {', '.join(v)}" for i, v in enumerate(member_vals))
                + f". No member trained on {', '.join(data.get('val', {}).get('speakers', []))}.")  # fmt: skip
    if members > 1 and train_cfg.get("rotate_validation"):
        member_vals = data.get("member_val_speakers") or [data.get("val", {}).get("speakers", [])]
        everyone = set(data.get("train", {}).get("speakers", [])) | set(data.get("val", {}).get("speakers", []))
        return (f"- Training corpora: {', '.join(data.get('corpora', []))}, {len(everyone)} speakers. "
                f"Each of the {members} ensemble members trains on all but 2 of them and validates ({val_role}) "
                "on those 2: " + "; ".join(f"member {i + 1}: {', '.join(v)}" for i, v in enumerate(member_vals))
                + ". The temperature is fitted on each validation speaker's predictions from the member that "
                "never trained on that speaker.")  # fmt: skip
    return (f"- Training corpora: {', '.join(data.get('corpora', []))}. Training speakers: "
            f"{len(data.get('train', {}).get('speakers', []))} ({data.get('train', {}).get('clips', '?')} clips); "
            f"validation speakers ({val_role}): {', '.join(data.get('val', {}).get('speakers', []))}.")  # fmt: skip


def _model_line(info: ModelInfo, train_cfg: dict) -> str:
    arch = metadata_json(info, "architecture") or {}
    members = int(train_cfg.get("ensemble", 1))
    if train_cfg.get("architecture") == "conv2d":
        body = f"2-D convolutions ({train_cfg.get('conv_filters')})"
    else:
        body = (f"1-D convolutions over time (filters {train_cfg.get('conv_filters')}, kernels "
                f"{train_cfg.get('conv_kernels')} frames, the 40 coefficients as channels)")  # fmt: skip
    body += f" + BiLSTM({train_cfg.get('lstm_units')}) + mean/max pooling + dense"
    line = (f"{'An ensemble of ' + str(members) + ' networks (logits averaged), each ' if members > 1 else 'A network: '}"
            f"{body}; {arch.get('total_params', 0):,} parameters in all; temperature scaling "
            f"(T = {float(metadata_json(info, 'temperature') or 1):.2f}).")  # fmt: skip
    teacher = metadata_json(info, "teacher")
    if teacher:
        w = float(teacher["weight"])
        line += (f" Distilled: it learned from a teacher of {teacher['members']} network(s) (weights "
                 f"{teacher['weights_digest']}) that never trained on its validation speakers; each training "
                 f"window's target was {1 - w:.1f} x its label + {w:.1f} x the teacher's calibrated probabilities.")  # fmt: skip
    return line


def card_context(info: ModelInfo, export_report: dict | None) -> dict[str, Any]:
    """What the template shows, all read from the model's metadata and the export report."""
    from training.config import TrainConfig  # dataclass only: no TensorFlow

    ev = metadata_json(info, "evaluation") or {}
    data = metadata_json(info, "training_data") or {}
    val = metadata_json(info, "validation_metrics") or {}
    train_cfg = {**TrainConfig().to_dict(), **(metadata_json(info, "train_config") or {})}
    picked = train_cfg["selection"] != "last"  # early stopping chose the epoch
    val_role = "early stopping, temperature scaling" if picked else "temperature scaling and the uncertainty threshold; weights are those at the end of the schedule"
    cv = ev.get("speaker_cv")
    by_view = (cv or {}).get("by_view") or {}
    return {
        "info": info, "labels": LABELS, "fc": info.feature_config,
        "threshold": info.uncertainty_threshold, "target": float(train_cfg["confident_accuracy"]),
        "threshold_chosen": "uncertainty_threshold" in info.metadata,
        "data_line": _data_line(data, train_cfg, val_role),
        "licence_lines": corpus_licence_lines(data.get("corpora", [])),
        "normalisation": normalisation_text(metadata_json(info, "normalisation") or {}),
        "model_line": _model_line(info, train_cfg),
        "cv": cv, "by_view": by_view, "view_names": EVALUATION_VIEWS,
        "differences": ev.get("recipe_differences") or {},
        "view_corpora": [c for c in by_view.get("clean", {}) if c != "all"],
        "loco": ev.get("leave_one_corpus_out") or {}, "rnd": ev.get("random_split"), "cc": ev.get("cross_corpus"),
        "corpora": ev.get("corpora", []),
        "val": val, "picked": picked, "epochs": val.get("member_best_epoch") or [val.get("best_epoch")],
        "rotated": int(train_cfg.get("ensemble", 1)) > 1 and bool(train_cfg.get("rotate_validation")),
        "notes": (info.metadata.get(CARD_NOTES_KEY) or "").strip(), "report": export_report,
    }  # fmt: skip


def render_info(info: ModelInfo, export_report: dict | None) -> str:
    """The card's Markdown from a model's metadata (an exported ONNX file or a run folder)."""
    text = _environment().get_template("model_card.md.j2").render(card_context(info, export_report))
    return re.sub(r"\n{3,}", "\n\n", text)  # optional sections leave blank lines behind


def render(model_path: Path, export_report: dict | None) -> str:
    return render_info(read_model_info(model_path), export_report)


def write_model_card(folder: Path, model_path: Path | None = None) -> Path:
    model_path = model_path or folder / BUNDLED_MODEL.name
    report_path = folder / "export_report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    out = folder / "MODEL_CARD.md"
    out.write_text(render(model_path, report))
    return out


if __name__ == "__main__":
    print(write_model_card(Path(sys.argv[1] if len(sys.argv) > 1 else "model_store")))
