"""Features: the numpy MFCC equals librosa's, on real speech, and is stable across rates."""

from __future__ import annotations

import numpy as np
import pytest

from loadtests.benchmark import median_ms
from ser.audio import load_audio
from ser.config import N_FFT, N_FRAMES, N_MELS, N_MFCC, N_SAMPLES, SAMPLE_RATE
from ser.features import clip_features, fit_window, mfcc, split_windows, window_starts
from ser.inference import BUNDLED_MODEL, metadata_json, read_model_info
from tests.audio_factory import resampled

librosa = pytest.importorskip("librosa")


def normalise(features: np.ndarray) -> np.ndarray:
    """The normalisation inside the bundled model, applied in numpy."""
    norm = metadata_json(read_model_info(BUNDLED_MODEL), "normalisation")
    x = features
    if norm["per_clip_mean_subtraction"]:
        x = x - x.mean(axis=-2, keepdims=True)
        if norm.get("per_clip_variance_scaling"):
            x = x / (x.std(axis=-2, keepdims=True) + 1e-3)
    return (x - np.array(norm["mean"])) / np.sqrt(np.array(norm["variance"]))


def librosa_mfcc(window: np.ndarray) -> np.ndarray:
    return librosa.feature.mfcc(y=window, sr=SAMPLE_RATE, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=512,
                                n_mels=N_MELS).T  # fmt: skip


def real_windows(ravdess_root, n=12):
    paths = sorted(ravdess_root.glob("Actor_*/*.flac"))[:: max(1, 1200 // n)][:n]
    return np.concatenate([split_windows(load_audio(p))[0] for p in paths])


def test_shape_and_finite(speech_clip):
    features, spans = clip_features(load_audio(speech_clip))
    assert features.shape == (1, N_FRAMES, N_MFCC) and features.dtype == np.float32
    assert np.isfinite(features).all()
    assert spans[0][0] == 0 and spans[0][1] == pytest.approx(3.87, abs=0.01)


def test_matches_librosa_after_normalisation(ravdess_root):
    windows = real_windows(ravdess_root)
    ours = normalise(mfcc(windows))
    theirs = normalise(np.stack([librosa_mfcc(w) for w in windows]))
    diff = np.abs(ours - theirs).max()
    print(f"max |numpy - librosa| after normalisation over {len(windows)} real windows: {diff:.2e}")
    assert diff < 1e-3


def test_batch_equals_single(ravdess_root):
    windows = real_windows(ravdess_root, 4)
    batch = mfcc(windows)
    for i, w in enumerate(windows):
        np.testing.assert_allclose(mfcc(w), batch[i], atol=1e-4)


@pytest.mark.parametrize("rate", [16_000, 44_100, 48_000])
def test_stable_across_sample_rates(speech_clip, rate):
    reference = normalise(clip_features(load_audio(speech_clip))[0])
    other = normalise(clip_features(load_audio(resampled(speech_clip, rate, subtype="FLOAT")))[0])
    corr = np.corrcoef(reference.ravel(), other.ravel())[0, 1]
    print(f"{rate} Hz: correlation with the 24 kHz original {corr:.4f}")
    # a 16 kHz copy has nothing above 8 kHz, so the top mel bands (8-11 kHz) differ; higher
    # rates hold everything the 24 kHz original has and must give the same features
    assert corr > (0.85 if rate == 16_000 else 0.999)


def test_window_layout():
    assert window_starts(N_SAMPLES) == [0]
    assert window_starts(N_SAMPLES - 1000) == [0]
    starts = window_starts(10 * SAMPLE_RATE)  # 10 s: windows at 0, 2, 4 and 6 s
    assert starts == [0, 2 * SAMPLE_RATE, 4 * SAMPLE_RATE, 6 * SAMPLE_RATE]
    starts = window_starts(int(9 * SAMPLE_RATE))
    assert starts[-1] + N_SAMPLES == int(9 * SAMPLE_RATE)
    # a tail under a quarter hop gets no window of its own (#14: 26.0-30.0 beside 26.02-30.02)
    starts = window_starts(int(30.02 * SAMPLE_RATE))
    assert len(starts) == 14 and starts[-1] + N_SAMPLES == int(30.02 * SAMPLE_RATE)
    assert min(np.diff(starts)) > 1.9 * SAMPLE_RATE
    assert window_starts(int(4.37 * SAMPLE_RATE)) == [int(0.37 * SAMPLE_RATE) // 2]  # one window, centred
    ramp = np.linspace(-1, 1, SAMPLE_RATE, dtype=np.float32)
    windows, spans = split_windows(ramp)
    # a 1 s clip is tiled, not zero-padded: no digital silence for the normalisation to average
    assert windows.shape == (1, N_SAMPLES) and spans == [(0.0, 1.0)]
    np.testing.assert_array_equal(windows[0, :SAMPLE_RATE], ramp)
    np.testing.assert_array_equal(windows[0, 3 * SAMPLE_RATE : 4 * SAMPLE_RATE], ramp)
    np.testing.assert_array_equal(fit_window(np.arange(N_SAMPLES + 5, dtype=np.float32))[-1], N_SAMPLES - 1)
    with pytest.raises(ValueError):
        fit_window(np.zeros(0, np.float32))


def test_speed_is_printed(speech_clip):
    """Timing is printed, not asserted: see loadtests/bench_features.py for the benchmark."""
    window = split_windows(load_audio(speech_clip))[0][0]

    ours, theirs = median_ms(lambda: mfcc(window)), median_ms(lambda: librosa_mfcc(window))
    print(f"numpy MFCC {ours:.2f} ms, librosa {theirs:.2f} ms, ratio {theirs / ours:.1f}x")
    assert ours > 0 and theirs > 0
