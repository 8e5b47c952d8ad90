"""Build test recordings in memory from real speech: other formats, rates and channels."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    return data.mean(axis=1), rate


def encode(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = None,
           channels: int = 1) -> bytes:  # fmt: skip
    """samples (mono) at `rate` -> file bytes in `fmt`/`subtype`, duplicated to `channels`."""
    data = np.repeat(samples[:, None], channels, axis=1) if channels > 1 else samples
    buf = io.BytesIO()
    sf.write(buf, data, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def resampled(path: Path, rate: int, fmt: str = "WAV", subtype: str | None = "PCM_16", channels: int = 1) -> bytes:
    samples, src = read_mono(path)
    if rate != src:
        samples = soxr.resample(samples, src, rate, quality="VHQ")
    return encode(np.clip(samples, -1, 1), rate, fmt, subtype, channels)
