"""What a user's device and room do to speech, simulated on training clips only.

Each augmented copy of a training clip goes through a random chain of the effects below,
each switched on with its own probability (`AugmentConfig`): speed, microphone colouring
(random EQ), room reverberation (synthetic impulse responses), band limiting through a
telephone or a 16 kHz channel, a lossy codec round trip (MP3 or Opus, encoded and decoded
by libsndfile), additive noise of several colours, and gain from whisper-quiet to clipped.
Evaluation degrades held-out clips with other implementations and seeds
(`training.degrade`), so the robustness figures don't reward memorising these exact
effects.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import scipy.signal
import soundfile as sf
import soxr

from ser.config import SAMPLE_RATE


@dataclass(frozen=True)
class AugmentConfig:
    """Probability of each effect in one augmented copy, and its range."""

    p_speed: float = 0.5
    speed_range: float = 0.1  # 0.9-1.1x, pitch and tempo together
    p_eq: float = 0.5
    eq_db: float = 8.0  # +- per band: laptop and phone microphones, cheap headsets
    p_reverb: float = 0.4
    rt60_s: tuple[float, float] = (0.15, 0.9)
    p_channel: float = 0.3  # telephone (8 kHz, 300-3400 Hz, mu-law) or a 16 kHz channel
    p_codec: float = 0.3  # MP3 or Opus round trip at a low bitrate
    p_noise: float = 0.6
    noise_snr_db: tuple[float, float] = (0.0, 30.0)
    gain_db: tuple[float, float] = (-35.0, 12.0)  # above 0 dBFS peak the signal clips


def _peak_normalise(x: np.ndarray, peak: float = 0.5) -> np.ndarray:
    m = float(np.max(np.abs(x))) + 1e-9
    return (x * (peak / m)).astype(np.float32)


def speed(x: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    factor = rng.uniform(1 - spread, 1 + spread)
    return soxr.resample(x, SAMPLE_RATE, int(SAMPLE_RATE / factor), quality="QQ").astype(np.float32)


def random_eq(x: np.ndarray, rng: np.random.Generator, max_db: float) -> np.ndarray:
    """Two to four peaking bands plus an optional low cut: a microphone's colour."""
    sos = []
    for _ in range(rng.integers(2, 5)):
        f0 = float(np.exp(rng.uniform(np.log(150), np.log(7000))))
        sos.append(_peaking(f0, rng.uniform(-max_db, max_db), rng.uniform(0.5, 2.0)))
    if rng.random() < 0.5:  # small capsules lose the bass
        sos.append(scipy.signal.butter(2, rng.uniform(80, 400), "highpass", fs=SAMPLE_RATE, output="sos")[0])
    return scipy.signal.sosfilt(np.array(sos), x).astype(np.float32)


def _peaking(f0: float, gain_db: float, q: float) -> np.ndarray:
    """RBJ cookbook peaking biquad as one second-order section."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / SAMPLE_RATE
    alpha = np.sin(w0) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a]
    return np.array(b + den) / den[0]


def synthetic_rir(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """Direct path, a few early reflections and an exponentially decaying diffuse tail."""
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: int(0.003 * SAMPLE_RATE)] = 0
    # darker rooms: high frequencies decay faster
    tail = scipy.signal.sosfilt(scipy.signal.butter(1, rng.uniform(2000, 8000), fs=SAMPLE_RATE, output="sos"), tail)
    rir = tail * 10 ** (rng.uniform(-12, 3) / 20) / (np.sqrt(np.sum(tail**2)) + 1e-9)  # direct-to-reverberant ratio
    rir[0] = 1.0
    for _ in range(rng.integers(2, 6)):
        rir[rng.integers(int(0.002 * SAMPLE_RATE), int(0.03 * SAMPLE_RATE))] += rng.uniform(-0.6, 0.6)
    return rir.astype(np.float32)


def reverb(x: np.ndarray, rng: np.random.Generator, rt60_range: tuple[float, float]) -> np.ndarray:
    wet = scipy.signal.fftconvolve(x, synthetic_rir(rng, rng.uniform(*rt60_range)))[: x.shape[0]]
    return _peak_normalise(wet, float(np.max(np.abs(x))) + 1e-6)


def mu_law(x: np.ndarray, mu: float = 255.0) -> np.ndarray:
    """8-bit mu-law companding round trip (G.711)."""
    x = np.clip(x, -1, 1)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    y = np.round(y * 127) / 127
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu).astype(np.float32)


def channel(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A telephone line (300-3400 Hz at 8 kHz, mu-law) or a 16 kHz wideband channel."""
    if rng.random() < 0.6:
        low, high = rng.uniform(200, 400), rng.uniform(3000, 3600)
        sos = scipy.signal.butter(4, [low, high], "bandpass", fs=SAMPLE_RATE, output="sos")
        narrow = soxr.resample(scipy.signal.sosfilt(sos, x), SAMPLE_RATE, 8000, quality="LQ")
        narrow = mu_law(_peak_normalise(narrow, rng.uniform(0.3, 0.9)))
        return soxr.resample(narrow, 8000, SAMPLE_RATE, quality="LQ").astype(np.float32)
    return soxr.resample(soxr.resample(x, SAMPLE_RATE, 16000), 16000, SAMPLE_RATE).astype(np.float32)


def codec(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Encode and decode with libsndfile: MP3 (LAME) or Opus, at a low bitrate."""
    buf = io.BytesIO()
    level = rng.uniform(0.6, 0.95)  # libsndfile: higher = lower bitrate (1.0 fails for Opus)
    x = np.clip(x, -1, 1)
    if rng.random() < 0.5:
        sf.write(buf, x, SAMPLE_RATE, format="MP3", subtype="MPEG_LAYER_III", compression_level=level)
        rate = SAMPLE_RATE
    else:
        rate = 16000
        sf.write(buf, soxr.resample(x, SAMPLE_RATE, rate), rate, format="OGG", subtype="OPUS", compression_level=level)
    buf.seek(0)
    y, got = sf.read(buf, dtype="float32")
    y = soxr.resample(y, got, SAMPLE_RATE) if got != SAMPLE_RATE else y
    out = np.zeros_like(x)
    out[: min(len(x), len(y))] = y[: len(x)]
    return out


def coloured_noise(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise with power spectrum 1/f^exponent (0 white, 1 pink, 2 brown), shaped in the FFT."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    noise = np.fft.irfft(spectrum / f ** (exponent / 2), n)
    return (noise / (np.std(noise) + 1e-12)).astype(np.float32)


def add_noise(x: np.ndarray, rng: np.random.Generator, snr_range: tuple[float, float]) -> np.ndarray:
    noise = coloured_noise(x.shape[0], rng, float(rng.choice([0.0, 1.0, 2.0])))
    if rng.random() < 0.3:  # babble-like: noise modulated at syllable rate
        env = np.abs(scipy.signal.sosfilt(scipy.signal.butter(2, 4, fs=SAMPLE_RATE, output="sos"),
                                          rng.standard_normal(x.shape[0])))  # fmt: skip
        noise *= env / (np.std(env) + 1e-9)
    power = float(np.mean(x**2)) + 1e-10
    snr = rng.uniform(*snr_range)
    return (x + noise * np.sqrt(power / 10 ** (snr / 10)) / (np.std(noise) + 1e-9)).astype(np.float32)


def gain(x: np.ndarray, rng: np.random.Generator, db_range: tuple[float, float]) -> np.ndarray:
    """Scale to a random peak level; above full scale the signal clips, as a hot input does."""
    peak_db = rng.uniform(*db_range)
    y = x * (10 ** (peak_db / 20) / (float(np.max(np.abs(x))) + 1e-9))
    return np.clip(y, -1, 1).astype(np.float32)


def augment(x: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """One random device/room chain, in the order sound meets it: talker, room, mic, line."""
    x = x.astype(np.float32)
    if rng.random() < cfg.p_speed:
        x = speed(x, rng, cfg.speed_range)
    if rng.random() < cfg.p_reverb:
        x = reverb(x, rng, cfg.rt60_s)
    if rng.random() < cfg.p_noise:
        x = add_noise(x, rng, cfg.noise_snr_db)
    if rng.random() < cfg.p_eq:
        x = random_eq(x, rng, cfg.eq_db)
    x = gain(x, rng, cfg.gain_db)
    if rng.random() < cfg.p_channel:
        x = channel(x, rng)
    if rng.random() < cfg.p_codec:
        x = codec(x, rng)
    return np.nan_to_num(x).astype(np.float32)
