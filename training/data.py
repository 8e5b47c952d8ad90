"""Features for training and evaluation, computed once per clip and cached on disk.

Views of a clip, each a stack of (173, 40) MFCC windows made by the serving code
(`ser.audio.load_audio`, `ser.features`):
- `clean`: the whole clip, windowed as the server windows it (validation, test).
- `train`: `train_copies` crops of the clip, each of a random length from 0.5 s to 4 s
  (or the whole clip), most of them through a random device/room chain
  (`training.augment`), each fitted into one window by `ser.features.fit_window`, the
  function the server uses for short clips. Only training clips' copies are ever read by
  a training run: a fold's test and validation speakers are never augmented into it.
- `short`: `short_copies` more crops, 0.5 s to `SHORT_MAX_SECONDS` long, made the same way:
  short uploads' share of the training windows, raised without rebuilding `train`.
- `cond:<name>`: the whole clip through an evaluation degradation (`training.degrade`).
- `len:<seconds>`: a crop of that length around the speech (`training.degrade.length_crop`).

A clip's views depend only on the clip and the recipe, never on the split, so one cache
serves every fold and the final model. The cache lives in `SER_CACHE_DIR` (default
`runs/cache`), one file per corpus and view, keyed by the file list and the recipe.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ser.audio import load_audio
from ser.config import FEATURE_CONFIG, LABELS, N_FFT, SAMPLE_RATE, TOP_DB
from ser.datasets import Clip
from ser.features import FILTERS_PATH, clip_features, filterbank, fit_window, mfcc
from training.augment import AugmentConfig, augment
from training.degrade import DEGRADE, length_crop, speech_bounds

LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}
DEFAULT_AUGMENT = AugmentConfig()
SHORT_MAX_SECONDS = 1.5  # the `short` view's crops: 0.5 s to this, never the whole clip


@dataclass(frozen=True)
class CropConfig:
    """How training windows are cut from clips: lengths as users send them."""

    p_whole: float = 0.35  # the clip as recorded (a random 4 s of it when longer)
    min_seconds: float = 0.5  # the shortest upload the server accepts
    max_seconds: float = 4.0
    margin_seconds: float = 0.3  # crops start and end within this of the speech
    p_augment: float = 0.85  # the rest are clean crops


@dataclass
class WindowSet:
    """Feature windows with their labels and the clip each window came from."""

    x: np.ndarray  # (n, N_FRAMES, N_MFCC) float32
    y: np.ndarray  # (n,) int class index
    clip: np.ndarray  # (n,) int index into the clip list


def training_crop(x: np.ndarray, rng: np.random.Generator, cfg: CropConfig) -> np.ndarray:
    """A random stretch of a clip, as a user might have recorded it."""
    n = x.shape[0]
    window = int(cfg.max_seconds * SAMPLE_RATE)
    if rng.random() < cfg.p_whole:
        if n <= window:
            return x
        start = int(rng.integers(0, n - window + 1))
        return x[start : start + window]
    lo, hi = speech_bounds(x)
    margin = int(cfg.margin_seconds * SAMPLE_RATE)
    lo, hi = max(0, lo - margin), min(n, hi + margin)
    length = int(rng.uniform(cfg.min_seconds, cfg.max_seconds) * SAMPLE_RATE)
    length = max(int(cfg.min_seconds * SAMPLE_RATE), min(length, hi - lo))
    length = min(length, n)
    start = int(rng.integers(lo, max(lo, hi - length) + 1)) if hi - length >= lo else max(0, min(lo, n - length))
    return x[start : start + length]


def _clip_seed(path: Path, view: str, seed: int) -> list[int]:
    return [seed, zlib.crc32(path.name.encode()), zlib.crc32(view.encode())]


def _compute_view(args: tuple) -> np.ndarray:
    """One clip's windows for one view (runs in a worker process)."""
    path, view, seed, copies, crop_cfg, aug_cfg = args
    samples = load_audio(path)
    rng = np.random.default_rng(_clip_seed(Path(path), view, seed))
    if view == "clean":
        feats = clip_features(samples)[0]
    elif view in ("train", "short"):
        windows = []
        for _ in range(copies):
            x = training_crop(samples, rng, crop_cfg)
            if rng.random() < crop_cfg.p_augment:
                x = augment(x, rng, aug_cfg)
            windows.append(fit_window(x))
        feats = mfcc(np.stack(windows))
    elif view.startswith("cond:"):
        feats = clip_features(DEGRADE[view[5:]](samples, rng))[0]
    elif view.startswith("len:"):
        feats = clip_features(length_crop(samples, float(view[4:]), rng))[0]
    else:
        raise ValueError(f"unknown view {view!r}")
    return feats.astype(np.float16)  # 0.05 % relative precision: far below augmentation noise


class FeatureStore:
    """Views of every clip, computed in worker processes and cached per corpus on disk."""

    def __init__(
        self,
        clips: Sequence[Clip],
        seed: int = 1337,
        train_copies: int = 6,
        crop: CropConfig = CropConfig(),
        aug: AugmentConfig = DEFAULT_AUGMENT,
        cache_dir: Path | None = None,
        workers: int | None = None,
        short_copies: int = 0,
    ) -> None:
        self.clips = list(clips)
        self.seed, self.train_copies, self.crop, self.aug = seed, train_copies, crop, aug
        self.short_copies = short_copies
        self.cache_dir = cache_dir or Path(os.environ.get("SER_CACHE_DIR", "runs/cache"))
        self.workers = workers or int(os.environ.get("SER_DATA_WORKERS", os.cpu_count() or 2))
        self._views: dict[str, list[np.ndarray]] = {}

    def recipe(self, view: str) -> dict:
        recipe = {"view": view, "seed": self.seed, "features": FEATURE_CONFIG.to_json(), "version": 1}
        if view in ("train", "short"):
            copies, crop = self.crop_plan(view)
            recipe |= {"copies": copies, "crop": asdict(crop), "augment": asdict(self.aug)}
        return recipe

    def crop_plan(self, view: str) -> tuple[int, CropConfig]:
        """How many crops a clip gets in a training view, and how they are cut."""
        if view == "short":
            return self.short_copies, replace(self.crop, p_whole=0.0, max_seconds=SHORT_MAX_SECONDS)
        return self.train_copies, self.crop

    def view(self, name: str) -> list[np.ndarray]:
        """Every clip's windows for one view, float16, in clip order."""
        if name not in self._views:
            out: list[np.ndarray | None] = [None] * len(self.clips)
            by_corpus: dict[str, list[int]] = {}
            for i, c in enumerate(self.clips):
                by_corpus.setdefault(c.corpus, []).append(i)
            for corpus, idx in sorted(by_corpus.items()):
                for i, feats in zip(idx, self._corpus_view(corpus, idx, name), strict=True):
                    out[i] = feats
            self._views[name] = out  # type: ignore[assignment]
        return self._views[name]

    def _corpus_view(self, corpus: str, idx: list[int], name: str) -> list[np.ndarray]:
        paths = [self.clips[i].path for i in idx]
        key = hashlib.sha1(json.dumps(
            [self.recipe(name), [(str(p), p.stat().st_size) for p in paths]]).encode()).hexdigest()[:16]  # fmt: skip
        file = self.cache_dir / f"{corpus}-{name.replace(':', '_')}-{key}.npz" if self.cache_dir else None
        if file and file.exists():
            with np.load(file) as data:
                flat, offsets = data["x"], data["offsets"]
            return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        copies, crop = self.crop_plan(name)
        jobs = [(str(p), name, self.seed, copies, crop, self.aug) for p in paths]
        with ProcessPoolExecutor(self.workers) as pool:
            feats = list(tqdm(pool.map(_compute_view, jobs, chunksize=8), total=len(jobs), desc=f"{corpus} {name}"))
        if file:
            file.parent.mkdir(parents=True, exist_ok=True)
            offsets = np.cumsum([0] + [f.shape[0] for f in feats])
            tmp = file.with_suffix(".tmp.npz")
            np.savez(tmp, x=np.concatenate(feats), offsets=offsets)
            tmp.replace(file)
        return feats

    def window_set(self, indices: Sequence[int], view: str = "clean") -> WindowSet:
        feats = self.view(view)
        x = np.concatenate([feats[i] for i in indices]).astype(np.float32)
        y = np.concatenate([np.full(len(feats[i]), LABEL_INDEX[self.clips[i].label]) for i in indices])
        clip = np.concatenate([np.full(len(feats[i]), i) for i in indices])
        return WindowSet(x, y, clip)

    def clean_set(self, indices: Sequence[int]) -> WindowSet:
        return self.window_set(indices, "clean")

    def copies(self, indices: Sequence[int], clean: int = 0) -> np.ndarray:
        """(len(indices), train_copies + short_copies + clean, N_FRAMES, N_MFCC) float16
        training windows: the cached crops, the short ones, then `clean` repeats of the
        clip's clean window (its middle one)."""
        crops = self.view("train")
        short = self.view("short") if self.short_copies else None
        whole = self.view("clean") if clean else None

        def windows(i: int) -> np.ndarray:
            parts = [crops[i]]
            if short is not None:
                parts.append(short[i])
            if whole is not None:
                parts.append(np.repeat(whole[i][len(whole[i]) // 2][None], clean, 0))
            return np.concatenate(parts)

        return np.stack([windows(i) for i in indices])


def store_for(clips: Sequence[Clip], cfg) -> FeatureStore:
    """The feature store a TrainConfig asks for (crop lengths, augmentation share, copies)."""
    crop = CropConfig(p_whole=cfg.p_whole_clip, p_augment=cfg.p_augment)
    return FeatureStore(clips, cfg.seed, cfg.train_copies, crop, short_copies=cfg.short_copies)


@lru_cache(maxsize=1)
def _band_centres() -> np.ndarray:
    """Centre frequency (Hz) of each mel band of the features' filterbank."""
    with np.load(FILTERS_PATH) as data:
        mel = data["mel"]  # (n_mels, 1 + n_fft/2)
    freqs = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE)
    return ((mel * freqs).sum(axis=1) / mel.sum(axis=1)).astype(np.float32)


def band_limit(batch: np.ndarray, rng: np.random.Generator, cfg) -> np.ndarray:
    """A random channel's pass band, imposed on cached MFCCs (dB): bands beyond the cut-offs
    fall by a random slope per octave, down to the window's floor (its loudest band - TOP_DB).

    Why on features: the cached copies hold a telephone band in ~15 % of crops, too few to
    teach the network that a missing top octave is not a sign of low arousal (on the unseen
    speakers of the model before it, 20261126-88fe9f93a1, `training.degrade.phone` turned
    RAVDESS calm recall 0.62 -> 0.25 and EmoDB sad 1.0 -> 0.0). Done here, every batch draws fresh edges at no cache cost. The
    log-mel spectrum is rebuilt from the kept coefficients (orthonormal DCT), changed, and the
    change alone is projected back, so what the DCT dropped is untouched.
    """
    if cfg.p_band_limit <= 0:
        return batch
    centres, dct = _band_centres(), filterbank().dct  # dct: (n_mels, n_mfcc), orthonormal
    out = batch.copy()
    for i in np.flatnonzero(rng.random(len(batch)) < cfg.p_band_limit):
        log_mel = out[i] @ dct.T  # (frames, n_mels), dB, smoothed by the dropped coefficients
        high = np.exp(rng.uniform(np.log(cfg.band_high_hz[0]), np.log(cfg.band_high_hz[1])))
        low = rng.uniform(*cfg.band_low_hz) if rng.random() < cfg.p_band_low else 0.0  # one draw either way
        slope = rng.uniform(30.0, 90.0)  # dB per octave
        atten = slope * np.maximum(0.0, np.log2(centres / high))
        if low > 0:
            atten += slope * np.maximum(0.0, np.log2(low / np.maximum(centres, 1.0)))
        limited = np.maximum(log_mel - atten, log_mel.max() - TOP_DB)
        out[i] += (limited - log_mel) @ dct
    return out


def warp_matrix(alpha: float) -> np.ndarray:
    """(n_mels, n_mels) linear interpolation that moves each band's level from f to alpha x f:
    a vocal tract alpha times shorter. Bands whose source lies past the ends copy the end band."""
    centres = _band_centres()
    src = np.interp(centres / alpha, centres, np.arange(len(centres), dtype=np.float64))
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, len(centres) - 1)
    frac = (src - lo).astype(np.float32)
    m = np.zeros((len(centres), len(centres)), np.float32)
    np.add.at(m, (np.arange(len(centres)), lo), 1 - frac)
    np.add.at(m, (np.arange(len(centres)), hi), frac)
    return m


def freq_warp(batch: np.ndarray, rng: np.random.Generator, cfg) -> np.ndarray:
    """Vocal tract length perturbation on cached MFCCs: each chosen window's log-mel
    spectrum is stretched along frequency by a factor in 1 +- freq_warp_range, as another
    speaker's formants would be (VTLP, Jaitly & Hinton 2013), without changing its timing.

    Why on features: the cached copies were sped up (pitch, formants and tempo together) on
    half of the crops, fixed once; here every batch draws fresh factors for more speakers'
    worth of formant positions. As in `band_limit`, only the change is projected back.
    """
    if cfg.p_freq_warp <= 0:
        return batch
    dct = filterbank().dct  # (n_mels, n_mfcc), orthonormal
    out = batch.copy()
    for i in np.flatnonzero(rng.random(len(batch)) < cfg.p_freq_warp):
        log_mel = out[i] @ dct.T
        alpha = rng.uniform(1 - cfg.freq_warp_range, 1 + cfg.freq_warp_range)
        out[i] += (log_mel @ warp_matrix(alpha).T - log_mel) @ dct
    return out


def spec_augment(batch: np.ndarray, rng: np.random.Generator, cfg) -> np.ndarray:
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


def main(argv: list[str] | None = None) -> None:
    """Fill the cache ahead of training: `python -m training.data --corpus NAME=PATH ...`."""
    import argparse

    from ser.datasets import parse_corpus_arg, scan_corpora
    from training.degrade import CONDITIONS, LENGTHS_S

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--corpus", action="append", required=True, help="NAME=PATH, repeatable")
    p.add_argument("--views", default="clean,train", help="comma-separated; 'all' adds every degradation and length")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--train-copies", type=int, default=6)
    p.add_argument("--short-copies", type=int, default=0, help="crops per clip in the `short` view")
    args = p.parse_args(argv)
    views = args.views.split(",")
    if views == ["all"]:
        views = ["clean", "train"] + [f"cond:{c}" for c in CONDITIONS[1:]] + [f"len:{s}" for s in LENGTHS_S]
    clips = scan_corpora(parse_corpus_arg(a) for a in args.corpus).clips
    store = FeatureStore(clips, args.seed, args.train_copies, short_copies=args.short_copies)
    for view in views:
        store.view(view)
        print(f"{view}: {sum(f.shape[0] for f in store.view(view))} windows cached in {store.cache_dir}")


if __name__ == "__main__":
    main()
