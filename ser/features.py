"""MFCC features with numpy alone, shared by training and serving.

The mel filterbank and DCT matrix ship in `assets/mfcc_filters.npz`, written by
`python -m training.make_filterbank` from `librosa.filters.mel` (Slaney mel scale, Slaney
area normalisation) and an orthonormal DCT-II, so the server needs no librosa. `tests/test_features.py` checks the result against `librosa.feature.mfcc` on real
speech.

Clips shorter than 4 s are zero-padded at the end; longer clips are cut into 4 s windows
every 2 s, the last window aligned to the clip's end, and the model's probabilities are
averaged over windows (see `ser.inference`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

from ser.config import (
    AMIN,
    FEATURE_CONFIG,
    HOP_LENGTH,
    N_FFT,
    N_FRAMES,
    N_MFCC,
    N_SAMPLES,
    SAMPLE_RATE,
    TOP_DB,
    WINDOW_HOP_SECONDS,
)

FILTERS_PATH = Path(__file__).parent / "assets" / "mfcc_filters.npz"
FFT_BLOCK = 64  # frames per FFT call (measured best of 8-173 on this machine)
WINDOW_HOP = int(WINDOW_HOP_SECONDS * SAMPLE_RATE)  # 44100 samples between window starts


@lru_cache(maxsize=1)
def filterbank() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mel (n_fft//2+1, n_mels), dct (n_mels, n_mfcc), hann window (n_fft,)), float32.

    Matrices are stored transposed for right-multiplication of (frames, bins) arrays.
    """
    with np.load(FILTERS_PATH) as data:
        config = str(data["feature_config"])
        if config != FEATURE_CONFIG.to_json():
            raise RuntimeError(
                f"{FILTERS_PATH} was made for another feature config; "
                "run `python -m training.make_filterbank`"
            )
        mel_t = np.ascontiguousarray(data["mel"].T, dtype=np.float32)
        dct_t = np.ascontiguousarray(data["dct"].T, dtype=np.float32)
    n = np.arange(N_FFT, dtype=np.float64)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32)  # periodic Hann
    return mel_t, dct_t, window


def window_starts(n_samples: int) -> list[int]:
    """Start sample of each 4 s window covering a clip of `n_samples`."""
    if n_samples <= N_SAMPLES:
        return [0]
    starts = list(range(0, n_samples - N_SAMPLES + 1, WINDOW_HOP))
    if starts[-1] + N_SAMPLES < n_samples:
        starts.append(n_samples - N_SAMPLES)
    return starts


def split_windows(samples: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Cut mono samples into 4 s windows.

    Returns (windows (n_windows, N_SAMPLES) float32, spans [(start_s, end_s)]), the last
    window zero-padded when the clip is shorter than 4 s.
    """
    n = samples.shape[0]
    starts = window_starts(n)
    out = np.zeros((len(starts), N_SAMPLES), dtype=np.float32)
    spans = []
    for i, start in enumerate(starts):
        chunk = samples[start : start + N_SAMPLES]
        out[i, : chunk.shape[0]] = chunk
        spans.append((start / SAMPLE_RATE, (start + chunk.shape[0]) / SAMPLE_RATE))
    return out, spans


def mfcc(windows: np.ndarray) -> np.ndarray:
    """MFCCs of 4 s windows, matching `librosa.feature.mfcc` with `FEATURE_CONFIG`.

    windows: (n, N_SAMPLES) or (N_SAMPLES,) float32 at SAMPLE_RATE.
    Returns (n, N_FRAMES, N_MFCC) float32 (frames first, as the model reads them), or
    (N_FRAMES, N_MFCC) for a single window.
    """
    single = windows.ndim == 1
    batch = np.atleast_2d(windows).astype(np.float32, copy=False)
    if batch.shape[1] != N_SAMPLES:
        raise ValueError(f"expected windows of {N_SAMPLES} samples, got {batch.shape[1]}")
    mel_t, dct_t, window = filterbank()
    padded = np.pad(batch, ((0, 0), (N_FFT // 2, N_FFT // 2)))  # centred frames, zero pad
    frames = sliding_window_view(padded, N_FFT, axis=1)[:, ::HOP_LENGTH]  # views, no copy
    mel_power = np.empty((batch.shape[0], N_FRAMES, mel_t.shape[1]), dtype=np.float32)
    windowed = np.empty((FFT_BLOCK, N_FFT), dtype=np.float32)
    power = np.empty((FFT_BLOCK, N_FFT // 2 + 1), dtype=np.float32)
    # Blocks of frames small enough to stay in L2 cache, and reused buffers: one call over
    # all 173 frames is 2.5x slower, mostly first-touch page faults on fresh arrays.
    # scipy rather than numpy: numpy's float32 rfft is several times slower.
    for w in range(batch.shape[0]):
        for i in range(0, N_FRAMES, FFT_BLOCK):
            n = min(FFT_BLOCK, N_FRAMES - i)
            np.multiply(frames[w, i : i + n], window, out=windowed[:n])
            spectrum = scipy.fft.rfft(windowed[:n], axis=-1, overwrite_x=True).view(np.float32)
            np.square(spectrum, out=spectrum)  # interleaved (re, im) -> re^2, im^2
            np.add(spectrum[:, 0::2], spectrum[:, 1::2], out=power[:n])
            np.matmul(power[:n], mel_t, out=mel_power[w, i : i + n])
    np.log10(np.maximum(mel_power, AMIN, out=mel_power), out=mel_power)
    db = mel_power * 10.0
    floor = db.max(axis=(1, 2), keepdims=True) - TOP_DB  # per window, as librosa per call
    out = np.maximum(db, floor, out=db) @ dct_t
    assert out.shape[1:] == (N_FRAMES, N_MFCC)
    return out[0] if single else out


def clip_features(samples: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Samples of any length -> (features (n_windows, N_FRAMES, N_MFCC), window spans)."""
    windows, spans = split_windows(samples)
    return mfcc(windows), spans
