"""Test recordings for load tests and benchmarks, made from real speech at run time.

Users bring their own corpus copy (SER_DATA_DIR or --data); nothing is copied into the
project. The mix: the original 24 kHz FLAC, 48 kHz and 16 kHz stereo WAV, 44.1 kHz MP3
and OGG, and a 12 s WAV that the server cuts into windows.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("SER_DATA_DIR", REPO.parent / "shared" / "data"))
BENCH_CLIP = "ravdess/Actor_01/03-01-05-01-01-01-01.flac"  # 3.87 s, angry


def _encode(samples: np.ndarray, rate: int, fmt: str, subtype: str | None, channels: int = 1) -> bytes:
    data = np.repeat(samples[:, None], channels, axis=1) if channels > 1 else samples
    buf = io.BytesIO()
    sf.write(buf, np.clip(data, -1, 1), rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _resample(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    return samples if src == dst else soxr.resample(samples, src, dst, quality="HQ")


def bench_wav(data_dir: Path = DEFAULT_DATA) -> bytes:
    """The benchmark clip as a 3.9 s, 48 kHz, 16-bit WAV, like an original RAVDESS file."""
    samples, rate = sf.read(data_dir / BENCH_CLIP, dtype="float32")
    return _encode(_resample(samples, rate, 48_000), 48_000, "WAV", "PCM_16")


def mixed_clips(data_dir: Path = DEFAULT_DATA) -> list[tuple[str, bytes, str]]:
    """(file name, bytes, content type) for a mix of formats, rates and lengths."""
    paths = sorted((data_dir / "ravdess").glob("Actor_1[0-2]/*.flac"))[::9][:6]
    if not paths:
        raise FileNotFoundError(f"no RAVDESS clips under {data_dir}; set SER_DATA_DIR or --data")
    out = []
    for i, path in enumerate(paths):
        samples, rate = sf.read(path, dtype="float32", always_2d=True)
        mono = samples.mean(axis=1)
        kind = i % 5
        if kind == 0:
            out.append((path.name, path.read_bytes(), "audio/flac"))
        elif kind == 1:
            out.append(("clip48k.wav", _encode(_resample(mono, rate, 48_000), 48_000, "WAV", "PCM_16"), "audio/wav"))
        elif kind == 2:
            out.append(("clip16k.wav", _encode(_resample(mono, rate, 16_000), 16_000, "WAV", "PCM_16", 2), "audio/wav"))
        elif kind == 3:
            out.append(("clip.mp3", _encode(_resample(mono, rate, 44_100), 44_100, "MP3", "MPEG_LAYER_III"), "audio/mpeg"))
        else:
            out.append(("clip.ogg", _encode(_resample(mono, rate, 44_100), 44_100, "OGG", "VORBIS"), "audio/ogg"))
    long = np.concatenate([sf.read(p, dtype="float32", always_2d=True)[0].mean(axis=1) for p in paths[:3]])
    out.append(("long.wav", _encode(long, 24_000, "WAV", "PCM_16"), "audio/wav"))
    return out
