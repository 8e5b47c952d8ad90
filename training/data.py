"""Features for training: clean windows for every clip, augmented ones for training clips.

Augmentation runs on the waveform of a clip only when that clip is in a training split
(`FeatureStore.training_set`), so validation and test speakers are never augmented, and
the clean features come from exactly the serving code (`ser.audio`, `ser.features`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import soxr
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from ser.audio import load_audio
from ser.config import LABELS, SAMPLE_RATE
from ser.datasets import Clip
from ser.features import clip_features
from training.config import TrainConfig

LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}


@dataclass
class WindowSet:
    """Feature windows with their labels and the clip each window came from."""

    x: np.ndarray  # (n, N_FRAMES, N_MFCC) float32
    y: np.ndarray  # (n,) int class index
    clip: np.ndarray  # (n,) int index into the clip list


def augment_waveform(samples: np.ndarray, rng: np.random.Generator, cfg: TrainConfig) -> np.ndarray:
    """Speed perturbation, gain, additive noise and a random start offset."""
    speed = rng.uniform(1 - cfg.speed_range, 1 + cfg.speed_range)
    # resampling to rate/speed and playing at `rate` changes speed and pitch together
    out = soxr.resample(samples, SAMPLE_RATE, int(SAMPLE_RATE / speed), quality="QQ")
    out = out * np.float32(10 ** (rng.uniform(-cfg.gain_db, cfg.gain_db) / 20))
    snr_db = rng.uniform(*cfg.noise_snr_db)
    power = float(np.mean(out**2)) + 1e-12
    out = out + rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), out.shape)
    shift = int(rng.uniform(-cfg.shift_seconds, cfg.shift_seconds) * SAMPLE_RATE)
    out = np.concatenate([np.zeros(shift, out.dtype), out]) if shift > 0 else out[-shift:]
    return np.clip(out, -1, 1).astype(np.float32)


def spec_augment(batch: np.ndarray, rng: np.random.Generator, cfg: TrainConfig) -> np.ndarray:
    """SpecAugment-style time and coefficient masks, filled with each window's mean."""
    out = batch.copy()
    n, frames, coeffs = out.shape
    fill = out.mean(axis=(1, 2))
    for i in range(n):
        for _ in range(cfg.spec_time_masks):
            w = rng.integers(0, cfg.spec_time_width + 1)
            t = rng.integers(0, frames - w + 1)
            out[i, t : t + w, :] = fill[i]
        for _ in range(cfg.spec_freq_masks):
            w = rng.integers(0, cfg.spec_freq_width + 1)
            f = rng.integers(1, coeffs - w + 1)  # keep MFCC-0 (energy) unmasked
            out[i, :, f : f + w] = fill[i]
    return out


class FeatureStore:
    """Caches clean and augmented features per clip across folds of one process."""

    def __init__(self, clips: Sequence[Clip], cfg: TrainConfig, workers: int = 2) -> None:
        # One BLAS thread per extraction thread: OpenBLAS threads spin-wait, and nested
        # pools on 2 cores made extraction 20x slower when two runs shared the machine.
        threadpool_limits(1, user_api="blas")
        self.clips = list(clips)
        self.cfg = cfg
        self.workers = workers
        self._clean: dict[int, np.ndarray] = {}
        self._augmented: dict[int, list[np.ndarray]] = {}

    def _load(self, i: int) -> np.ndarray:
        return load_audio(self.clips[i].path)

    def _extract_clean(self, i: int) -> np.ndarray:
        return clip_features(self._load(i))[0]

    def _extract_augmented(self, i: int) -> list[np.ndarray]:
        samples = self._load(i)
        rng = np.random.default_rng([self.cfg.seed, i])  # same copies whichever fold asks
        return [
            clip_features(augment_waveform(samples, rng, self.cfg))[0]
            for _ in range(self.cfg.augment_copies)
        ]

    def _fill(self, cache: dict, indices: Sequence[int], fn, desc: str) -> None:
        todo = [i for i in indices if i not in cache]
        if not todo:
            return
        with ThreadPoolExecutor(self.workers) as pool:  # numpy, soxr, libsndfile drop the GIL
            for i, feats in tqdm(zip(todo, pool.map(fn, todo), strict=True), total=len(todo), desc=desc):
                cache[i] = feats

    def clean_set(self, indices: Sequence[int]) -> WindowSet:
        self._fill(self._clean, indices, self._extract_clean, "features")
        return self._stack([(i, self._clean[i]) for i in indices])

    def training_set(self, indices: Sequence[int]) -> WindowSet:
        """Clean windows plus `augment_copies` augmented versions of each training clip."""
        self._fill(self._clean, indices, self._extract_clean, "features")
        self._fill(self._augmented, indices, self._extract_augmented, "augmenting")
        parts = [(i, self._clean[i]) for i in indices]
        parts += [(i, copy) for i in indices for copy in self._augmented[i]]
        return self._stack(parts)

    def _stack(self, parts: list[tuple[int, np.ndarray]]) -> WindowSet:
        x = np.concatenate([f for _, f in parts])
        y = np.concatenate([np.full(len(f), LABEL_INDEX[self.clips[i].label]) for i, f in parts])
        clip = np.concatenate([np.full(len(f), i) for i, f in parts])
        return WindowSet(x.astype(np.float32), y, clip)
