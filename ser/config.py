"""Constants that training, export and serving must agree on.

Base values first, derived values computed from them, units in comments. The exported
ONNX model records `FeatureConfig` in its metadata and the server refuses to start if the
model's values differ from these, so the two sides can't drift apart silently.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

# the model's name: its ONNX file, its metadata and its tag in BentoML's store
MODEL_NAME = "ser_cnn_bilstm"
SAMPLE_RATE = 22_050  # Hz: every clip is resampled to this before features
N_FFT = 512  # samples per STFT frame (23 ms): the usual speech analysis window, 2x cheaper than 1024
HOP_LENGTH = 512  # samples between frames (23 ms)
N_MELS = 64  # mel bands feeding the DCT
N_MFCC = 40  # cepstral coefficients kept
F_MIN = 0.0  # Hz
F_MAX = SAMPLE_RATE / 2  # Hz
TOP_DB = 80.0  # dB: log-mel floor relative to the clip's loudest bin (librosa's default)
AMIN = 1e-10  # power floor before the log (librosa's default)

CLIP_SECONDS = 4  # the model sees 4 s at a time
N_SAMPLES = CLIP_SECONDS * SAMPLE_RATE  # 88200 samples in one window
N_FRAMES = 1 + N_SAMPLES // HOP_LENGTH  # 173 frames (centred STFT)
WINDOW_HOP_SECONDS = 2.0  # stride between windows when a clip is longer than 4 s

# Label order of the model's output. Alphabetical, so it is easy to check by eye.
LABELS: tuple[str, ...] = (
    "angry",
    "calm",
    "disgust",
    "fearful",
    "happy",
    "neutral",
    "sad",
    "surprised",
)
N_CLASSES = len(LABELS)


# Evaluation conditions reported in model cards and pages (see training/degrade.py)
EVALUATION_VIEWS = {
    "clean": "as recorded",
    "cond:reverb": "room reverberation (RT60 0.3-0.7 s)",
    "cond:noise": "pink noise, 5-15 dB SNR",
    "cond:phone": "telephone (300-3400 Hz, 8 kHz, mu-law)",
    "cond:mp3": "MP3, 32 kbit/s",
    "cond:opus": "Opus, 12 kbit/s",
    "len:1.0": "1 s around the speech",
    "len:2.0": "2 s around the speech",
    "len:4.0": "4 s around the speech",
    "len:10.0": "10 s (the clip inside its own room tone)",
}


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Everything a feature extractor must match; serialised into the model's metadata."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = N_FFT
    hop_length: int = HOP_LENGTH
    n_mels: int = N_MELS
    n_mfcc: int = N_MFCC
    f_min: float = F_MIN
    f_max: float = F_MAX
    top_db: float = TOP_DB
    clip_seconds: int = CLIP_SECONDS
    n_frames: int = N_FRAMES
    window: str = "hann"
    center: bool = True
    pad_mode: str = "constant"
    short_clip: str = "tile (loop) to 4 s"
    labels: tuple[str, ...] = LABELS

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureConfig:
        data: dict[str, Any] = json.loads(text)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown feature-config keys: {sorted(unknown)}")
        data["labels"] = tuple(data.get("labels", LABELS))
        return cls(**data)


FEATURE_CONFIG = FeatureConfig()
