"""Write MODEL_CARD.md from what the exported model carries, so the card can't disagree with it.

    python -m export.model_card model_store
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ser.config import EVALUATION_VIEWS as VIEW_NAMES
from ser.config import LABELS
from ser.inference import BUNDLED_MODEL, ModelInfo, metadata_json, normalisation_text, read_model_info


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _ms(d: dict) -> str:
    return f"{_pct(d['mean'])} ± {_pct(d['std'])}"


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




def _speaker_counts(speakers: list[str]) -> str:
    counts: dict[str, int] = {}
    for s in speakers:
        counts[s.split(":")[0]] = counts.get(s.split(":")[0], 0) + 1
    return "test " + ", ".join(f"{n} {c}" for c, n in sorted(counts.items()))


def robustness_lines(by_view: dict) -> list[str]:
    """Per-corpus UA under each degradation and clip length, mean ± std over the folds."""
    if "clean" not in by_view:
        return []
    corpora = [c for c in by_view["clean"] if c != "all"]
    lines = [
        "## Per corpus, degraded and short (the same folds' test speakers)",
        "Unweighted accuracy %, mean ± std over folds. Degradations are made by other "
        "implementations and seeds than the training augmentation (`training/degrade.py`). "
        "\"all\" pools every test clip of a fold.",
        "",
        "| condition | " + " | ".join(corpora) + " | all |",
        "|---|" + "---|" * (len(corpora) + 1),
    ]
    for view, label in VIEW_NAMES.items():
        if view in by_view:
            row = by_view[view]
            cells = [_ms(row[c]["unweighted_accuracy"]) if c in row else "-" for c in [*corpora, "all"]]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Calibration per corpus (clean, test speakers): ECE % before → after temperature scaling: "
        + "; ".join(f"{c} {_pct(by_view['clean'][c]['ece_uncalibrated'])} → {_pct(by_view['clean'][c]['ece']['mean'])}"
                    for c in corpora) + ".",  # fmt: skip
        "",
    ]
    return lines


def render(model_path: Path, export_report: dict | None) -> str:
    return render_info(read_model_info(model_path), export_report)


def render_info(info: ModelInfo, export_report: dict | None) -> str:
    """The card's Markdown from a model's metadata (an exported ONNX file or a run folder)."""
    ev = metadata_json(info, "evaluation") or {}
    data = metadata_json(info, "training_data") or {}
    val = metadata_json(info, "validation_metrics") or {}
    arch = metadata_json(info, "architecture") or {}
    train_cfg = metadata_json(info, "train_config") or {}
    fc = info.feature_config
    picked = train_cfg.get("selection", "best_val") != "last"  # early stopping chose the epoch
    val_role = "early stopping, temperature scaling" if picked else "temperature scaling; weights are those at the end of the schedule"
    members = int(train_cfg.get("ensemble", 1))
    member_vals = data.get("member_val_speakers") or [data.get("val", {}).get("speakers", [])]
    rotated = members > 1 and bool(train_cfg.get("rotate_validation"))
    if rotated:
        all_speakers = sorted(set(data.get("train", {}).get("speakers", [])) | set(data.get("val", {}).get("speakers", [])))
        data_line = (
            f"- Training corpora: {', '.join(data.get('corpora', []))}, {len(all_speakers)} speakers. "
            f"Each of the {members} ensemble members trains on all but 2 of them and validates "
            f"({val_role}) on those 2: "
            + "; ".join(f"member {i + 1}: {', '.join(v)}" for i, v in enumerate(member_vals))
            + ". The temperature is fitted on each validation speaker's predictions from the "
            "member that never trained on that speaker."
        )
    else:
        data_line = (
            f"- Training corpora: {', '.join(data.get('corpora', []))}. "
            f"Training speakers: {len(data.get('train', {}).get('speakers', []))} "
            f"({data.get('train', {}).get('clips', '?')} clips); validation speakers ({val_role}): "
            f"{', '.join(data.get('val', {}).get('speakers', []))}."
        )
    if train_cfg.get("architecture", "conv2d") == "conv1d":
        body = (f"1-D convolutions over time (filters {train_cfg.get('conv_filters')}, kernels "
                f"{train_cfg.get('conv_kernels')} frames, the 40 coefficients as channels)")  # fmt: skip
    else:
        body = f"2-D convolutions ({train_cfg.get('conv_filters')})"
    body += f" + BiLSTM({train_cfg.get('lstm_units')}) + mean/max pooling + dense"
    model_line = (
        f"- {'An ensemble of ' + str(members) + ' networks (logits averaged), each ' if members > 1 else 'A network: '}"
        f"{body}; {arch.get('total_params', '?'):,} parameters in all; temperature scaling "
        f"(T = {float(metadata_json(info, 'temperature') or 1):.2f})."
    )
    lines = [
        f"# Model card: {info.name} {info.version}",
        "",
        "Speech emotion recognition from 4 s of audio: 8 classes "
        f"({', '.join(LABELS)}), calibrated probabilities.",
        "",
        "## Intended use and limits",
        "- For demos, research and prototyping on short recordings of one speaker.",
        "- Trained on **acted speech** in four languages (see below): actors and volunteers "
        "asked to portray an emotion. Expect lower accuracy on spontaneous speech, on languages "
        "and accents far from these, and on several speakers at once; the leave-one-corpus-out "
        "figures below are the accuracy to expect on an unfamiliar corpus.",
        "- Not for decisions about people (hiring, health, policing, credit). Emotion labels "
        "are the actors' intended emotions, not what the speaker felt.",
        "",
        "## Data and licences",
        data_line,
        *corpus_licence_lines(data.get("corpora", [])),
        "",
        "## Features and model",
        f"- Audio decoded, downmixed to mono, resampled to {fc.sample_rate} Hz; {fc.n_mfcc} MFCCs from "
        f"{fc.n_mels} mel bands, n_fft {fc.n_fft}, hop {fc.hop_length}, {fc.n_frames} frames = "
        f"{fc.clip_seconds} s. Shorter clips: {fc.short_clip} (training crops of 0.5-4 s are fitted "
        "the same way); longer clips are cut into 4 s windows every 2 s and the window probabilities are averaged.",
        f"- Normalisation: {normalisation_text(metadata_json(info, 'normalisation') or {})}; "
        "inside the ONNX graph.",
        model_line,
        "",
    ]
    cv = ev.get("speaker_cv")
    if not cv:
        lines += [
            "## Accuracy on speakers never seen in training",
            "Not measured for this model: run `python -m training.evaluate` (k folds by speaker) "
            "for the estimate to quote. The validation figures below are optimistic.",
            "",
        ]
    else:
        s = cv["summary"]
        lines += [
            "## Accuracy on speakers never seen in training",
            f"Protocol: {cv['protocol']}. Same recipe and settings as this model; "
            f"{len(cv['folds'])} folds.",
            "",
            "| metric | mean ± std over folds (%) |",
            "|---|---|",
            f"| unweighted accuracy (mean per-class recall) | {_ms(s['unweighted_accuracy'])} |",
            f"| weighted accuracy | {_ms(s['weighted_accuracy'])} |",
            f"| macro-F1 | {_ms(s['macro_f1'])} |",
            f"| expected calibration error, calibrated | {_ms(s['ece'])} |",
            f"| expected calibration error, uncalibrated | {_ms(cv['summary_uncalibrated']['ece'])} |",
            "",
            "Per fold: " + "; ".join(
                f"{_speaker_counts(f['test_speakers'])}: UA {_pct(f['test']['unweighted_accuracy'])}"
                for f in cv["folds"]
            ) + ".",
            "",
            "Per class, pooled over the folds' test speakers:",
            "",
            "| class | precision | recall | F1 | clips |",
            "|---|---|---|---|---|",
        ]
        for label in LABELS:
            r = cv["per_class"][label]
            lines.append(f"| {label} | {_pct(r['precision'])} | {_pct(r['recall'])} | "
                         f"{_pct(r['f1-score'])} | {int(r['support'])} |")  # fmt: skip
        lines += ["", "![confusion matrix](confusion_matrix.png)", ""]
        lines += robustness_lines(cv.get("by_view") or {})
    loco = ev.get("leave_one_corpus_out") or {}
    if loco:
        lines += [
            "## A corpus never heard (leave one corpus out)",
            "Trained on every other corpus (same recipe), tested on all of the left-out one; the "
            "8-way answer is scored on the classes that corpus has.",
            "",
            "| left out | classes | UA % | WA % | macro-F1 % | ECE % | UA, pink noise % | UA, phone % | UA, 1 s crops % |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, part in sorted(loco.items()):
            v = part["views"]
            clean = v["clean"][name]
            extra = [_pct(v[k][name]["unweighted_accuracy"]) if k in v else "-" for k in ("cond:noise", "cond:phone", "len:1.0")]
            lines.append(f"| {name} | {len(part['classes'])} (chance {_pct(1 / len(part['classes']))}) | "
                         f"{_pct(clean['unweighted_accuracy'])} | {_pct(clean['weighted_accuracy'])} | "
                         f"{_pct(clean['macro_f1'])} | {_pct(clean['ece'])} | " + " | ".join(extra) + " |")  # fmt: skip
        lines.append("")
    rnd = ev.get("random_split")
    if rnd:
        lines += [
            "## Random clip split (not speaker-independent)",
            f"{rnd['protocol']}: UA {_pct(rnd['test']['unweighted_accuracy'])} %, WA "
            f"{_pct(rnd['test']['weighted_accuracy'])} %. Shown only because published figures "
            "often use this protocol; the same speakers are on both sides.",
            "",
        ]
    cc = ev.get("cross_corpus")
    if cc:
        r = cc["restricted_to_shared_classes"]
        lines += [
            "## Cross-corpus",
            ("This model, trained on " if "trained run" in cc.get("protocol", "") else "Trained on ")
            + f"{', '.join(ev.get('corpora', []))}, tested on all "
            f"{', '.join(cc.get('test_corpora', []))} clips in the classes both share "
            f"({', '.join(cc['test_corpus_classes'])}; German speech): UA "
            f"{_pct(cc['all_8_outputs']['unweighted_accuracy'])} % taking the top of all 8 outputs, "
            f"{_pct(r['unweighted_accuracy'])} % restricted to the shared classes "
            f"(chance {_pct(1 / len(cc['test_corpus_classes']))} %). Recording conditions and language "
            "differ; this is the accuracy to expect on unfamiliar audio.",
            "",
        ]
    if val:
        epochs = val.get("member_best_epoch") or [val["best_epoch"]]
        lines += [
            "## This model's own validation speakers",
            ("Each speaker scored by the member that never trained on it: " if rotated else "")
            + f"UA {_pct(val['val']['unweighted_accuracy'])} %; ECE "
            f"{_pct(val['val_uncalibrated']['ece'])} % before and {_pct(val['val']['ece'])} % after "
            f"temperature scaling; epochs kept: {', '.join(map(str, epochs))}. "
            + ("These speakers chose the epochs and the temperature, so this figure is optimistic. "
               if picked else "These speakers fitted the temperature only. ")
            + ("The cross-validation above is the estimate to quote. " if cv else "")
            + f"Training took {val['train_seconds']:.0f} s on this 2-core machine with "
            f"{val.get('tf_threads') or 2} TensorFlow thread(s).",
            "",
        ]
    notes = info.metadata.get("card_notes")
    if notes:
        lines += ["## Notes", notes.strip(), ""]
    if export_report:
        p = export_report["parity"]
        lines += [
            "## Export",
            f"ONNX opset {export_report['opset']}, shipped as {export_report['shipped']}. Parity with "
            f"Keras on {p['windows']} real windows: max |Δp| = {p['max_abs_diff']:.1e} (tolerance "
            f"{p['atol']:g}), top class identical on every window.",
        ]
        q = export_report.get("quantization")
        if q:
            lines.append(
                f"int8 dynamic quantization: {q['fp32_ms']:.2f} ms → {q['int8_ms']:.2f} ms per window, "
                f"UA loss {q['ua_loss_points']:.1f} points at most ({q['protocol']}); top class "
                f"agrees with fp32 on {100 * q.get('int8_vs_fp32_top_class_agreement', float('nan')):.1f} % "
                f"of the parity windows (max |Δp| {q.get('int8_vs_fp32_max_abs_diff', float('nan')):.3f}); "
                f"{'shipped' if q['ship_int8'] else 'not shipped'} (rule: faster and ≤ 0.5 points lost)."
            )
        lines.append("")
    lines += [
        "## Reproduce",
        "```",
        "scripts/train_default.sh DATA_DIR   # cache, 5 speaker folds, leave-one-corpus-out, the model",
        "python -m export.export_onnx --run runs/default --evaluation runs/eval/evaluation.json \\",
        "    --parity-corpus ravdess=DATA_DIR/ravdess --quantize-check --ua-corpus ravdess=DATA_DIR/ravdess \\",
        "    --card-notes export/default_model_notes.md --out model_store",
        "```",
        "",
    ]
    return "\n".join(lines)


def write_model_card(folder: Path, model_path: Path | None = None) -> Path:
    model_path = model_path or folder / BUNDLED_MODEL.name
    report_path = folder / "export_report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    out = folder / "MODEL_CARD.md"
    out.write_text(render(model_path, report))
    return out


if __name__ == "__main__":
    print(write_model_card(Path(sys.argv[1] if len(sys.argv) > 1 else "model_store")))
