"""Degradations for the robustness table: held-out clips as a room, a noisy place, a phone
call or a low-bitrate codec would deliver them.

These are deliberately *other implementations* than the training augmentation
(`training.augment`), with their own seeds: a Schroeder reverberator instead of noise-tail
impulse responses, pink noise from Kellet's IIR filter instead of FFT shaping, FFmpeg
(PyAV) for the telephone's resampling and G.711 mu-law and for the MP3/Opus encoders
instead of soxr and libsndfile. A model that only memorised the training effects would not
gain here.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import av
import numpy as np
import scipy.signal

from ser.config import SAMPLE_RATE

CONDITIONS = ("clean", "reverb", "noise", "phone", "mp3", "opus")
DESCRIPTIONS = {
    "clean": "the clip as recorded",
    "reverb": "Schroeder reverberator (4 combs, 2 all-passes), RT60 0.3-0.7 s",
    "noise": "pink noise (Kellet IIR) at 5-15 dB SNR",
    "phone": "300-3400 Hz Chebyshev band-pass, FFmpeg resampling to 8 kHz, G.711 mu-law",
    "mp3": "FFmpeg libmp3lame at 32 kbit/s",
    "opus": "FFmpeg libopus at 12 kbit/s",
}
LENGTHS_S = (1.0, 2.0, 4.0, 10.0)


def _delay_recursion(x: np.ndarray, d: int, g: float, allpass: bool) -> np.ndarray:
    """y[n] = x[n] + g y[n-d] (comb) or -g x[n] + x[n-d] + g y[n-d] (all-pass), in
    blocks of d samples: every sample depends only on the block before it."""
    n = x.shape[0]
    src = x
    if allpass:
        delayed = np.concatenate([np.zeros(d), x[:-d]]) if n > d else np.zeros(n)
        src = -g * x + delayed
    y = np.empty(n)
    for start in range(0, n, d):
        stop = min(n, start + d)
        prev = y[start - d : stop - d] if start >= d else 0.0
        y[start:stop] = src[start:stop] + g * prev
    return y


def schroeder_reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rt60 = rng.uniform(0.3, 0.7)
    x64 = x.astype(np.float64)
    wet = np.zeros_like(x64)
    for delay_ms in (29.7, 37.1, 41.1, 43.7):
        d = int(delay_ms * SAMPLE_RATE / 1000)
        wet += _delay_recursion(x64, d, 10 ** (-3 * d / (rt60 * SAMPLE_RATE)), allpass=False)
    for delay_ms, g in ((5.0, 0.7), (1.7, 0.7)):
        wet = _delay_recursion(wet, int(delay_ms * SAMPLE_RATE / 1000), g, allpass=True)
    wet *= np.sqrt(np.sum(x64**2) / (np.sum(wet**2) + 1e-12))
    out = x64 + 0.8 * wet
    return (out * (np.max(np.abs(x)) / (np.max(np.abs(out)) + 1e-9))).astype(np.float32)


def kellet_pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """n samples of pink noise: white noise through Kellet's filter, its start-up dropped."""
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1.0, -2.494956002, 2.017265875, -0.522189400]
    return scipy.signal.lfilter(b, a, rng.standard_normal(n + 2000))[2000:]


def pink_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = kellet_pink(x.shape[0], rng)
    snr = rng.uniform(5.0, 15.0)
    scale = np.sqrt(np.mean(x**2) / (10 ** (snr / 10) * np.mean(noise**2) + 1e-20))
    out = x + scale * noise
    return np.clip(out, -1, 1).astype(np.float32)


def _ffmpeg_round_trip(x: np.ndarray, codec: str, container: str, rate: int, bitrate: int | None) -> np.ndarray:
    """Encode mono float32 at SAMPLE_RATE with FFmpeg, decode, resample back with FFmpeg."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        if bitrate:
            stream.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(np.clip(x, -1, 1)[None, :].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    parts = []
    with av.open(buf) as inp:
        for frame in inp.decode(audio=0):
            parts += [f.to_ndarray()[0] for f in resampler.resample(frame)]
    parts += [f.to_ndarray()[0] for f in resampler.resample(None)]
    y = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    out_x = np.zeros_like(x, dtype=np.float32)
    out_x[: min(len(x), len(y))] = y[: len(x)]
    return out_x


PHONE_BAND_HZ = (300.0, 3400.0)


def peak(y: np.ndarray) -> np.ndarray:
    """Scaled to a 0.7 peak, as the telephone line leaves its input."""
    return (y * (0.7 / (np.max(np.abs(y)) + 1e-9))).astype(np.float32)


def phone_filter(x: np.ndarray, kind: str = "bandpass") -> np.ndarray:
    """The telephone line's 6th-order Chebyshev band-pass, or one of its two edges alone
    (`highpass`, `lowpass`: `scripts/probe_fold_model.py phone` weighs each), peak-scaled."""
    low, high = PHONE_BAND_HZ
    edges = {"bandpass": [low, high], "highpass": low, "lowpass": high}[kind]
    return peak(scipy.signal.sosfilt(scipy.signal.cheby1(6, 0.5, edges, kind, fs=SAMPLE_RATE, output="sos"), x))


def mulaw_8k(x: np.ndarray) -> np.ndarray:
    """FFmpeg's resampling to 8 kHz, G.711 mu-law, and back."""
    return _ffmpeg_round_trip(x, "pcm_mulaw", "wav", 8000, None)


def phone(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return mulaw_8k(phone_filter(x))


def mp3(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _ffmpeg_round_trip(x, "libmp3lame", "mp3", SAMPLE_RATE, 32_000)


def opus(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _ffmpeg_round_trip(x, "libopus", "ogg", 48_000, 12_000)


DEGRADE: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "clean": lambda x, rng: x,
    "reverb": schroeder_reverb,
    "noise": pink_noise,
    "phone": phone,
    "mp3": mp3,
    "opus": opus,
}


def speech_bounds(x: np.ndarray, floor_db: float = 35.0, frame: int = 512) -> tuple[int, int]:
    """First and last sample of frames within `floor_db` of the loudest frame."""
    n = max(1, x.shape[0] // frame)
    energy = np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12
    db = 10 * np.log10(energy)
    active = np.flatnonzero(db > db.max() - floor_db)
    return int(active[0] * frame), int(min(x.shape[0], (active[-1] + 1) * frame))


def length_crop(x: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """`seconds` centred on the speech: a crop of it when shorter, or the clip set in the
    middle of its own quietest level (not digital zeros) when longer."""
    n = int(seconds * SAMPLE_RATE)
    lo, hi = speech_bounds(x)
    centre = (lo + hi) // 2
    if n <= x.shape[0]:
        start = int(np.clip(centre - n // 2, 0, x.shape[0] - n))
        return x[start : start + n].astype(np.float32)
    frame = 512
    k = max(1, x.shape[0] // frame)
    rms = np.sqrt(np.mean(x[: k * frame].reshape(k, frame) ** 2, axis=1))
    floor = max(float(np.percentile(rms, 10)), 1e-5)
    out = (rng.standard_normal(n) * floor).astype(np.float32)
    start = (n - x.shape[0]) // 2
    out[start : start + x.shape[0]] = x
    return out
