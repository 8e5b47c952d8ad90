"""Exported models side by side on the speakers none of them trained on, as a user sends them.

    python scripts/held_out_views.py DATA MODEL.onnx [MODEL.onnx ...]

The speakers: the first model's validation speakers (its data.json in the ONNX metadata);
every model given must have left them out too (checked). Each clip goes through the
served path (`EmotionModel.analyse` on the file's bytes) as recorded, through the
evaluation's telephone line (`training.degrade.phone`) and as 1 s around its speech
(`training.degrade.length_crop`), with fixed seeds. Prints unweighted accuracy per corpus
and view, and each model's milliseconds per clip.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser.audio import load_audio  # noqa: E402
from ser.config import SAMPLE_RATE  # noqa: E402
from ser.datasets import scan_corpus  # noqa: E402
from ser.inference import EmotionModel, metadata_json  # noqa: E402
from training.degrade import length_crop, phone  # noqa: E402
from training.splits import speakers_taught  # noqa: E402

CORPORA = ("ravdess", "emodb", "nemo", "ased")


def unweighted_accuracy(truth: list[str], answers: list[str]) -> float:
    """Mean recall over the classes the clips have."""
    return float(np.mean([np.mean([a == c for t, a in zip(truth, answers, strict=True) if t == c]) for c in set(truth)]))


def validation_clips(data: Path, info) -> list:
    """Every clip in DATA/<corpus> of the speakers the model (its `info`) validated on and never learned."""
    held = set(metadata_json(info, "training_data")["val"]["speakers"])
    return [c for corpus in CORPORA if (data / corpus).is_dir()
            for c in scan_corpus(corpus, data / corpus).clips if c.speaker in held]  # fmt: skip


def wav(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path)
    p.add_argument("models", type=Path, nargs="+")
    args = p.parse_args(argv)
    models = [EmotionModel(m, providers=["CPUExecutionProvider"], intra_op_threads=1) for m in args.models]
    held = set(metadata_json(models[0].info, "training_data")["val"]["speakers"])
    for path, model in zip(args.models, models, strict=True):
        learned = speakers_taught(metadata_json(model.info, "training_data"))
        if learned & held:
            raise SystemExit(f"{path} trained on {sorted(learned & held)}")
    views = {"clean": lambda x, rng: x, "phone": phone, "1 s": lambda x, rng: length_crop(x, 1.0, rng)}
    every = validation_clips(args.data, models[0].info)
    for corpus in CORPORA:
        clips = [c for c in every if c.corpus == corpus]
        if not clips:
            continue
        truth = [c.label for c in clips]
        for name, view in views.items():
            rng = np.random.default_rng(0)
            inputs = [wav(view(load_audio(c.path), rng)) for c in clips]
            cells = []
            for model in models:
                start = time.perf_counter()
                answers = [model.analyse(x)["emotion"] for x in inputs]
                ms = 1000 * (time.perf_counter() - start) / len(inputs)
                cells.append(f"{100 * unweighted_accuracy(truth, answers):5.1f} ({ms:.1f} ms)")
            print(f"{corpus:8} {name:6} {len(clips):5} clips  " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
