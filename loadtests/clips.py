"""Test recordings for load tests and benchmarks, made from real speech at run time.

Users bring their own corpus copy (SER_DATA_DIR or --data); nothing is copied into the
project. The mix: the original 24 kHz FLAC, 48 kHz and 16 kHz stereo WAV, 44.1 kHz MP3
and OGG, and a 12 s WAV that the server cuts into windows. Without a corpus, the same mix
is made from a generated voice (`synthetic_voice`): the server's cost depends on the
recording's length, rate and format, not on what is said, so load figures hold; its
emotions mean nothing.
"""

from __future__ import annotations

import io
import itertools
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


def synthetic_voice(seconds: float, rate: int = 24_000, seed: int = 0) -> np.ndarray:
    """A voice-like signal: a glottal pulse train with a wandering pitch through three
    formant resonances, in syllables of 150-300 ms with short pauses."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * np.arange(n) / rate) + rng.normal(0, 3, n).cumsum() / 50
    phase = np.cumsum(f0 / rate)
    source = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64) + 0.02 * rng.standard_normal(n)
    out = np.zeros(n)
    for formant, bandwidth in ((700, 110), (1220, 120), (2600, 160)):
        r = np.exp(-np.pi * bandwidth / rate)
        out += lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * formant / rate), r * r], source)
    envelope, t = np.zeros(n), 0
    while t < n:
        length = int(rng.uniform(0.15, 0.3) * rate)
        envelope[t : t + length] = np.hanning(length)[: n - t]
        t += length + int(rng.uniform(0.02, 0.12) * rate)
    voice = out * envelope
    return (0.3 * voice / np.abs(voice).max()).astype(np.float32)


def _speech(path: Path) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    return samples.mean(axis=1), rate


def bench_wav(seconds: float = 5.0, data_dir: Path = DEFAULT_DATA) -> bytes:
    """A `seconds`-long 48 kHz 16-bit WAV, like an original RAVDESS file: RAVDESS actor 01's
    clips end to end from the angry one on, over again if needed (they hold 3.5 minutes),
    cut to length (a generated voice without the corpus)."""
    first = data_dir / BENCH_CLIP
    if first.exists():
        paths = [first, *sorted(p for p in first.parent.glob("*.flac") if p != first)]
        parts, total, rate = [], 0, None
        for path in itertools.cycle(paths):
            samples, rate_i = _speech(path)
            if rate is not None and rate_i != rate:
                continue
            rate = rate_i
            parts.append(samples)
            total += samples.shape[0]
            if total >= seconds * rate:
                break
        samples = np.concatenate(parts)[: int(seconds * rate)]
    else:
        samples, rate = synthetic_voice(seconds), 24_000
    return _encode(_resample(samples, rate, 48_000), 48_000, "WAV", "PCM_16")


def mixed_clips(data_dir: Path = DEFAULT_DATA) -> list[tuple[str, bytes, str]]:
    """(file name, bytes, content type) for a mix of formats, rates and lengths."""
    paths = sorted((data_dir / "ravdess").glob("Actor_1[0-2]/*.flac"))[::9][:6]
    voices = [_speech(p) for p in paths] or [(synthetic_voice(3.5, seed=i), 24_000) for i in range(6)]
    out = []
    for i, (mono, rate) in enumerate(voices):
        kind = i % 5
        if kind == 0:
            out.append(("clip.flac", _encode(mono, rate, "FLAC", "PCM_16"), "audio/flac"))
        elif kind == 1:
            out.append(("clip48k.wav", _encode(_resample(mono, rate, 48_000), 48_000, "WAV", "PCM_16"), "audio/wav"))
        elif kind == 2:
            out.append(("clip16k.wav", _encode(_resample(mono, rate, 16_000), 16_000, "WAV", "PCM_16", 2), "audio/wav"))
        elif kind == 3:
            out.append(("clip.mp3", _encode(_resample(mono, rate, 44_100), 44_100, "MP3", "MPEG_LAYER_III"), "audio/mpeg"))
        else:
            out.append(("clip.ogg", _encode(_resample(mono, rate, 44_100), 44_100, "OGG", "VORBIS"), "audio/ogg"))
    long = np.concatenate([mono for mono, _ in voices[:3]])
    out.append(("long.wav", _encode(long, voices[0][1], "WAV", "PCM_16"), "audio/wav"))
    return out
