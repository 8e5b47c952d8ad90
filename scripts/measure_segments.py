"""How well long recordings are segmented and read: utterances, boundaries, emotions.

    .venv/bin/python scripts/measure_segments.py DATA_DIR [--model PATH] [--out FILE.json]

Speakers: the bundled model's validation speakers of each corpus (never trained on; the
model card lists them). Recordings: 8 of their clips at a time, in random order, joined
with 0.6-2.0 s pauses of faint pink noise (50 dB below the speech). Truth per clip: from
its first to its last 10 ms frame within 35 dB of its loudest.

Reports, per corpus: recordings where the VAD found exactly one utterance per clip; the
median onset and offset error of matched utterances; the emotion UA of each clip read
three ways: alone (the clip as one upload), as the utterance segment covering it in the
long recording (segmentation 'speech'), and as the fixed 4 s window nearest its middle
(segmentation 'fixed'); and each clip alone inside 10 s of the same faint noise, answered
for the whole upload with 'speech' against 'fixed' (the evaluation's 10 s view).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ser.audio import load_audio  # noqa: E402
from ser.config import SAMPLE_RATE  # noqa: E402
from ser.datasets import scan_corpus  # noqa: E402
from ser.inference import BUNDLED_MODEL, EmotionModel, metadata_json  # noqa: E402
from tests.audio_factory import encode, speech_span  # noqa: E402  (the tests' truth and WAV writer)
from training.degrade import kellet_pink  # noqa: E402

CORPORA = ("ravdess", "emodb", "nemo", "ased")
PER_RECORDING = 8


def faint(n: int, level: float, rng: np.random.Generator) -> np.ndarray:
    noise = kellet_pink(n, rng)
    return (noise / np.sqrt(np.mean(noise**2)) * level).astype(np.float32)


def ua(pred: list[str], true: list[str]) -> float:
    p, t = np.array(pred), np.array(true)
    return float(np.mean([np.mean(p[t == k] == k) for k in np.unique(t)]))


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def measure(model: EmotionModel, corpus: str, clips: list, rng: np.random.Generator) -> dict:
    order = rng.permutation(len(clips))
    alone, speech, fixed, whole10_speech, whole10_fixed, truth = [], [], [], [], [], []
    exact, onset_err, offset_err, n_rec = 0, [], [], 0
    for lo in range(0, len(order) - PER_RECORDING + 1, PER_RECORDING):
        group = [clips[i] for i in order[lo : lo + PER_RECORDING]]
        audio = [load_audio(c.path) for c in group]
        level = np.sqrt(np.mean(np.concatenate(audio) ** 2)) * 10 ** (-50 / 20)
        parts, spans, t = [], [], 0.0
        for x in audio:
            gap = faint(int(rng.uniform(0.6, 2.0) * SAMPLE_RATE), level, rng)
            parts += [gap, x + faint(len(x), level, rng)]
            a, b = speech_span(x, SAMPLE_RATE)
            t += len(gap) / SAMPLE_RATE
            spans.append((t + a, t + b))
            t += len(x) / SAMPLE_RATE
        parts.append(faint(SAMPLE_RATE, level, rng))
        recording = np.concatenate(parts)
        n_rec += 1
        by_speech = model.analyse(recording_bytes(recording), segmentation="speech")
        by_fixed = model.analyse(recording_bytes(recording), segmentation="fixed")
        utterances = [s for s in by_speech["segments"] if s.get("speech")]
        exact += len(utterances) == len(group)
        for clip, x, span in zip(group, audio, spans, strict=True):
            truth.append(clip.label)
            alone.append(model.analyse(recording_bytes(x))["emotion"])
            best = max(utterances, key=lambda u: overlap((u["start"], u["end"]), span))
            if overlap((best["start"], best["end"]), span) > 0:
                onset_err.append(abs(best["start"] - span[0]))
                offset_err.append(abs(best["end"] - span[1]))
            speech.append(best["emotion"])
            middle = (span[0] + span[1]) / 2
            fixed.append(
                min(by_fixed["segments"], key=lambda w: abs((w["start"] + w["end"]) / 2 - middle))["emotion"]
            )
            pad = max(0, 10 * SAMPLE_RATE - len(x))
            ten = np.concatenate([faint(pad // 2, level, rng), x, faint(pad - pad // 2, level, rng)])
            whole10_speech.append(model.analyse(recording_bytes(ten), segmentation="speech")["emotion"])
            whole10_fixed.append(model.analyse(recording_bytes(ten), segmentation="fixed")["emotion"])
    return {
        "clips": len(truth),
        "recordings": n_rec,
        "one_utterance_per_clip": round(exact / max(n_rec, 1), 3),
        "median_onset_error_s": round(float(np.median(onset_err)), 3),
        "median_offset_error_s": round(float(np.median(offset_err)), 3),
        "ua_clip_alone": round(ua(alone, truth), 4),
        "ua_utterance_segment": round(ua(speech, truth), 4),
        "ua_fixed_window": round(ua(fixed, truth), 4),
        "ua_10s_speech": round(ua(whole10_speech, truth), 4),
        "ua_10s_fixed": round(ua(whole10_fixed, truth), 4),
    }


def recording_bytes(x: np.ndarray) -> bytes:
    return encode(np.clip(x, -1, 1), SAMPLE_RATE, "WAV", "FLOAT")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir", type=Path)
    p.add_argument("--model", type=Path, default=BUNDLED_MODEL)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    model = EmotionModel(args.model)
    held_out = set(metadata_json(model.info, "training_data")["val"]["speakers"])
    rng = np.random.default_rng(14)
    results = {}
    for corpus in CORPORA:
        clips = [c for c in scan_corpus(corpus, args.data_dir / corpus).clips if c.speaker in held_out]
        results[corpus] = measure(model, corpus, clips, rng)
        print(corpus, json.dumps(results[corpus]), flush=True)
    if args.out:
        args.out.write_text(
            json.dumps(
                {"model": model.info.version, "protocol": __doc__.split("\n\n")[2:], **results}, indent=1
            )
        )


if __name__ == "__main__":
    main()
