"""MFCC features with numpy alone, shared by training and serving.

The mel filterbank and DCT matrix ship in `assets/mfcc_filters.npz`, written by
`python -m training.make_filterbank` from `librosa.filters.mel` (Slaney mel scale, Slaney
area normalisation) and an orthonormal DCT-II, so the server needs no librosa.
`tests/test_features.py` checks the result against `librosa.feature.mfcc` on real speech.

Where the time goes (one 4 s window, one core): the 173 FFTs are about half of it; the
rest is kept small by reusing per-thread buffers (no page faults on fresh arrays), folding
|X|^2 into the mel product, and multiplying only the mel matrix's non-zero diagonal blocks.

Clips shorter than 4 s are tiled (looped) to fill 4 s; longer clips are cut into 4 s windows
about every 2 s from the clip's start to its end, and the model's probabilities are
averaged over windows (see `ser.inference`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
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
    N_MELS,
    N_MFCC,
    N_SAMPLES,
    SAMPLE_RATE,
    TOP_DB,
    WINDOW_HOP_SECONDS,
)

FILTERS_PATH = Path(__file__).parent / "assets" / "mfcc_filters.npz"
MEL_BLOCKS = 4  # diagonal blocks of the sparse mel matrix (4x fewer multiply-adds than dense)
WINDOW_HOP = int(WINDOW_HOP_SECONDS * SAMPLE_RATE)  # 44100 samples between window starts
TAIL_SLACK = 0.25  # of a hop: how much of a clip's tail may go without its own window


@dataclass(frozen=True)
class MelBlock:
    """One diagonal block of the mel matrix: spectrum columns [lo, hi) -> bands [b0, b1).

    Columns index the rfft output viewed as interleaved float32 (re, im, re, im, ...):
    squared in place, each weight row doubled, re^2 + im^2 folds into the product.
    """

    lo: int
    hi: int
    b0: int
    b1: int
    weights: np.ndarray  # (hi - lo, b1 - b0) float32


@dataclass(frozen=True)
class Filterbank:
    dct: np.ndarray  # (n_mels, n_mfcc) float32, orthonormal DCT-II
    window: np.ndarray  # (n_fft,) float32, periodic Hann
    blocks: tuple[MelBlock, ...]


@lru_cache(maxsize=1)
def filterbank() -> Filterbank:
    """The matrices behind `mfcc`, loaded once and checked against `FEATURE_CONFIG`."""
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
    window = (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32)
    return Filterbank(dct_t, window, _mel_blocks(mel_t, MEL_BLOCKS))


def _mel_blocks(mel_t: np.ndarray, n_blocks: int) -> tuple[MelBlock, ...]:
    """Cut the mel matrix into diagonal blocks that hold all its non-zero weights.

    Each triangular filter spans a few neighbouring FFT bins, so 97 % of the dense
    (257 x 64) matrix is zeros; equal runs of bands keep the blocks small.
    """
    edges = np.linspace(0, mel_t.shape[1], n_blocks + 1).round().astype(int)
    blocks = []
    for b0, b1 in zip(edges[:-1], edges[1:], strict=True):
        rows = np.flatnonzero(mel_t[:, b0:b1].any(axis=1))
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        weights = np.ascontiguousarray(np.repeat(mel_t[lo:hi, b0:b1], 2, axis=0))
        blocks.append(MelBlock(2 * lo, 2 * hi, int(b0), int(b1), weights))
    covered = sum(np.count_nonzero(b.weights) for b in blocks) // 2
    assert covered == np.count_nonzero(mel_t), "mel blocks must hold every non-zero weight"
    return tuple(blocks)


class _Workspace(threading.local):
    """Per-thread buffers reused across calls: fresh arrays of this size cost more in page
    faults than the arithmetic done in them."""

    def __init__(self) -> None:
        self.padded = np.zeros(N_SAMPLES + N_FFT, dtype=np.float32)  # centred, zero ends
        self.frames = sliding_window_view(self.padded, N_FFT)[::HOP_LENGTH]  # a view
        self.windowed = np.empty((N_FRAMES, N_FFT), dtype=np.float32)
        self.mel = np.empty((N_FRAMES, N_MELS), dtype=np.float32)


_workspace = _Workspace()


def window_starts(n_samples: int) -> list[int]:
    """Start sample of each 4 s window covering a clip of `n_samples`.

    Windows about every 2 s, spread evenly from the clip's start to its end; a tail shorter
    than a quarter hop (0.5 s) gets no window of its own (a 30.02 s clip has 14 windows
    2.0015 s apart, not a 15th at 26.02 s beside the one at 26.0 s), and a clip under
    4.5 s has one window, centred.
    """
    if n_samples <= N_SAMPLES:
        return [0]
    span = n_samples - N_SAMPLES
    count = 1 + math.ceil(span / WINDOW_HOP - TAIL_SLACK)
    if count == 1:
        return [span // 2]
    return [round(i * span / (count - 1)) for i in range(count)]


def split_windows(samples: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Cut mono samples into 4 s windows.

    Returns (windows (n_windows, N_SAMPLES) float32, spans [(start_s, end_s)]). A clip
    shorter than 4 s is repeated end to end until it fills the window (`fit_window`):
    zero padding made most 1 s clips look like 3 s of digital silence, whose frames then
    dominated the per-window normalisation, and the model answered "surprised" to most of
    them. Training builds its short crops with this same function.
    """
    n = samples.shape[0]
    starts = window_starts(n)
    out = np.empty((len(starts), N_SAMPLES), dtype=np.float32)
    spans = []
    for i, start in enumerate(starts):
        chunk = samples[start : start + N_SAMPLES]
        out[i] = fit_window(chunk)
        spans.append((start / SAMPLE_RATE, (start + chunk.shape[0]) / SAMPLE_RATE))
    return out, spans


def fit_window(chunk: np.ndarray) -> np.ndarray:
    """Exactly N_SAMPLES samples: a longer chunk is cut, a shorter one tiled (looped)."""
    if chunk.shape[0] == 0:
        raise ValueError("cannot fit an empty chunk into a window")
    if chunk.shape[0] >= N_SAMPLES:
        return np.asarray(chunk[:N_SAMPLES], dtype=np.float32)
    return np.resize(np.asarray(chunk, dtype=np.float32), N_SAMPLES)


def mfcc(windows: np.ndarray) -> np.ndarray:
    """MFCCs of 4 s windows, matching `librosa.feature.mfcc` with `FEATURE_CONFIG`.

    windows: (n, N_SAMPLES) or (N_SAMPLES,) float32 at SAMPLE_RATE.
    Returns (n, N_FRAMES, N_MFCC) float32 (frames first, as the model reads them), or
    (N_FRAMES, N_MFCC) for a single window.
    """
    single = windows.ndim == 1
    batch = np.atleast_2d(windows)
    if batch.shape[1] != N_SAMPLES:
        raise ValueError(f"expected windows of {N_SAMPLES} samples, got {batch.shape[1]}")
    fb, ws = filterbank(), _workspace
    out = np.empty((batch.shape[0], N_FRAMES, N_MFCC), dtype=np.float32)
    for i, samples in enumerate(batch):
        ws.padded[N_FFT // 2 : N_FFT // 2 + N_SAMPLES] = samples
        np.multiply(ws.frames, fb.window, out=ws.windowed)
        _cepstra(_log_mel(ws.windowed, ws.mel), out[i])
    out *= 10.0  # 10 log10(power): decibels
    return out[0] if single else out


def _log_mel(windowed: np.ndarray, mel: np.ndarray) -> np.ndarray:
    """log10 mel power of Hann-windowed frames (n, N_FFT), into `mel` (n, N_MELS);
    `windowed` is overwritten."""
    # scipy, not numpy: numpy's float32 rfft is several times slower
    spectrum = scipy.fft.rfft(windowed, axis=-1, overwrite_x=True).view(np.float32)
    np.square(spectrum, out=spectrum)  # (re, im) -> (re^2, im^2), summed by the blocks
    for b in filterbank().blocks:
        np.matmul(spectrum[:, b.lo : b.hi], b.weights, out=mel[:, b.b0 : b.b1])
    return np.log10(np.maximum(mel, AMIN, out=mel), out=mel)


def _cepstra(log_mel: np.ndarray, out: np.ndarray) -> None:
    """One window's log mel (N_FRAMES, N_MELS; floored in place) -> its cepstra in log10
    units, into `out` (N_FRAMES, N_MFCC)."""
    # librosa's top_db floor, in log10 units (the x10 to dB comes after the DCT, which is
    # linear); per window, as librosa computes it per call
    np.maximum(log_mel, log_mel.max() - TOP_DB / 10, out=log_mel)
    np.matmul(log_mel, filterbank().dct, out=out)


def frame_log_mel(frames: np.ndarray) -> np.ndarray:
    """log10 mel power of raw sample frames (n, N_FFT): what one frame contributes to any
    window it is in, for a caller that keeps frames between windows (`ser.live`)."""
    return _log_mel(frames * filterbank().window, np.empty((frames.shape[0], N_MELS), np.float32))


def window_mfcc(log_mel: np.ndarray) -> np.ndarray:
    """A window's MFCCs (N_FRAMES, N_MFCC) from its frames' `frame_log_mel` (not modified)."""
    out = np.empty((N_FRAMES, N_MFCC), np.float32)
    _cepstra(log_mel.copy(), out)
    return out * 10.0


def clip_features(samples: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Samples of any length -> (features (n_windows, N_FRAMES, N_MFCC), window spans)."""
    windows, spans = split_windows(samples)
    return mfcc(windows), spans
