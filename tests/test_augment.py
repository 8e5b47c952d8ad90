"""Training augmentation and evaluation degradations on real speech: each effect does what
it says (length kept, finite, the spectrum changed the way the device would change it),
and training crops have the lengths users send."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import scipy.signal
import soxr

from ser.audio import load_audio
from ser.config import N_SAMPLES, SAMPLE_RATE
from ser.datasets import Clip
from ser.features import clip_features, filterbank
from training import augment, data, degrade
from training.config import TrainConfig
from training.data import CropConfig, band_limit, freq_warp, training_crop, warp_matrix


@pytest.fixture(scope="module")
def speech(speech_clip) -> np.ndarray:
    return load_audio(speech_clip)


def band_share(x: np.ndarray, lo: float, hi: float) -> float:
    f, p = scipy.signal.welch(x, SAMPLE_RATE, nperseg=1024)
    return float(p[(f >= lo) & (f < hi)].sum() / p.sum())


def test_each_training_effect(speech):
    rng = np.random.default_rng(0)
    for name, effect in {
        "eq": lambda x: augment.random_eq(x, rng, 8.0),
        "reverb": lambda x: augment.reverb(x, rng, (0.3, 0.8)),
        "channel": lambda x: augment.channel(x, rng),
        "codec": lambda x: augment.codec(x, rng),
        "noise": lambda x: augment.add_noise(x, rng, (0.0, 10.0)),
        "gain": lambda x: augment.gain(x, rng, (-30.0, -20.0)),
    }.items():
        out = effect(speech)
        assert out.shape == speech.shape and out.dtype == np.float32 and np.isfinite(out).all(), name
        assert not np.allclose(out, speech, atol=1e-3), name
    assert np.max(np.abs(augment.gain(speech, rng, (-30.0, -30.0)))) == pytest.approx(10 ** (-30 / 20), rel=1e-3)
    assert np.max(np.abs(augment.gain(speech, rng, (12.0, 12.0)))) == 1.0  # clipped, as a hot input


def test_telephone_channel_removes_the_top_band(speech):
    rng = np.random.default_rng(1)
    phone = next(y for y in (augment.channel(speech, rng) for _ in range(20)) if band_share(y, 4200, 11000) < 0.01)
    assert band_share(speech, 4200, 11000) > 0.01 > band_share(phone, 4200, 11000)
    assert band_share(degrade.phone(speech, rng), 4200, 11000) < 0.01


def test_band_limit_on_features_looks_like_a_telephone_line(speech):
    """The feature-level pass band moves a clip's MFCCs towards its telephone version's
    (after the model's per-window mean removal), and leaves the windows it skips alone."""
    cfg = TrainConfig.with_overrides({"p_band_limit": 1.0, "band_high_hz": (3400.0, 3400.0),
                                      "band_low_hz": (300.0, 300.0), "p_band_low": 1.0})  # fmt: skip
    clean = clip_features(speech)[0][:1]
    phone = clip_features(degrade.phone(speech, np.random.default_rng(3)))[0][:1]
    limited = band_limit(clean, np.random.default_rng(4), cfg)

    def distance(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sqrt(np.mean(((a - a.mean(1, keepdims=True)) - (b - b.mean(1, keepdims=True))) ** 2)))

    assert distance(limited, phone) < 0.75 * distance(clean, phone)
    assert limited.shape == clean.shape and np.isfinite(limited).all()
    off = TrainConfig.with_overrides({"p_band_limit": 0.0})
    assert band_limit(clean, np.random.default_rng(4), off) is clean


def test_band_limit_low_cut_share(speech):
    """`p_band_low` decides whether a band-limited window also loses its lowest bands: at 0
    a pass band reaching past the top band changes nothing, at 1 the bands under the cut
    fall while those well above it keep their level."""
    dct = filterbank().dct
    clean = clip_features(speech)[0][:4]
    centres = data._band_centres()
    edges = {"p_band_limit": 1.0, "band_high_hz": (11025.0, 11025.0), "band_low_hz": (300.0, 300.0)}
    loud = clean[..., 0] > np.median(clean[..., 0])  # the floor also lifts silent frames

    def drop(p_band_low: float) -> np.ndarray:
        """dB lost per mel band on the loud frames, as the kept coefficients describe it."""
        cfg = TrainConfig.with_overrides({**edges, "p_band_low": p_band_low})
        return ((clean - band_limit(clean, np.random.default_rng(5), cfg)) @ dct.T)[loud].mean(axis=0)

    never, always = drop(0.0), drop(1.0)
    assert abs(never[centres < 150].mean()) < 2 and np.abs(never).max() < 3
    assert always[centres < 150].mean() > 10 and abs(always[centres > 1500].mean()) < 2


def test_frequency_warp_on_features_moves_formants_as_a_faster_voice(speech):
    """Warping a clip's features by alpha brings their average spectrum towards that of the
    same clip played alpha times faster (formants alpha times higher), and alpha = 1 changes
    nothing."""
    dct = filterbank().dct
    faster = soxr.resample(speech, SAMPLE_RATE, int(SAMPLE_RATE / 1.12), quality="VHQ").astype(np.float32)
    clean, fast = clip_features(speech)[0][:1], clip_features(faster)[0][:1]
    cfg = TrainConfig.with_overrides({"p_freq_warp": 1.0, "freq_warp_range": 0.0})
    assert np.allclose(freq_warp(clean, np.random.default_rng(0), cfg), clean, atol=1e-3)
    assert np.allclose(warp_matrix(1.0), np.eye(len(dct)), atol=1e-6)

    def spectrum(features: np.ndarray) -> np.ndarray:  # time-averaged log-mel, level removed
        s = (features[0] @ dct.T).mean(axis=0)
        return s - s.mean()

    warped = clean + ((clean[0] @ dct.T) @ warp_matrix(1.12).T - clean[0] @ dct.T) @ dct
    gap_before = np.sqrt(np.mean((spectrum(clean) - spectrum(fast)) ** 2))
    assert np.sqrt(np.mean((spectrum(warped) - spectrum(fast)) ** 2)) < 0.6 * gap_before
    off = TrainConfig.with_overrides({"p_freq_warp": 0.0})
    assert freq_warp(clean, np.random.default_rng(4), off) is clean
    some = freq_warp(clean, np.random.default_rng(4), TrainConfig.with_overrides({"p_freq_warp": 1.0}))
    assert some.shape == clean.shape and np.isfinite(some).all() and not np.allclose(some, clean)


def test_noise_colours_and_snr(speech):
    rng = np.random.default_rng(2)
    white, brown = augment.coloured_noise(SAMPLE_RATE * 4, rng, 0.0), augment.coloured_noise(SAMPLE_RATE * 4, rng, 2.0)
    assert band_share(brown, 0, 500) > 5 * band_share(white, 0, 500)
    noisy = degrade.pink_noise(speech, rng)
    snr = 10 * np.log10(np.mean(speech**2) / np.mean((noisy - speech) ** 2))
    assert 4.5 < snr < 15.5


def test_augment_chain_is_seeded_and_varied(speech):
    a = augment.augment(speech, np.random.default_rng(3))
    b = augment.augment(speech, np.random.default_rng(3))
    c = augment.augment(speech, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[: min(len(a), len(c))], c[: min(len(a), len(c))])


@pytest.mark.parametrize("condition", degrade.CONDITIONS)
def test_degradations_keep_length(speech, condition):
    out = degrade.DEGRADE[condition](speech, np.random.default_rng(5))
    assert out.shape == speech.shape and np.isfinite(out).all()
    if condition != "clean":
        assert np.corrcoef(out, speech)[0, 1] < 0.999


def test_reverb_tail(speech):
    out = degrade.schroeder_reverb(speech, np.random.default_rng(6))
    end = degrade.speech_bounds(speech)[1]
    tail = slice(end, min(len(speech), end + SAMPLE_RATE // 10))
    assert np.mean(out[tail] ** 2) > 5 * np.mean(speech[tail] ** 2)  # the room rings on after the speech


def test_length_crops(speech):
    rng = np.random.default_rng(7)
    assert degrade.length_crop(speech, 1.0, rng).shape == (SAMPLE_RATE,)
    long = degrade.length_crop(speech, 10.0, rng)
    assert long.shape == (10 * SAMPLE_RATE,) and np.min(np.abs(long[:SAMPLE_RATE])) >= 0
    assert 0 < np.abs(long[:SAMPLE_RATE]).max() < 0.05  # the clip's own quiet level, not zeros


def test_training_crops_span_user_lengths(speech):
    rng = np.random.default_rng(8)
    lengths = [training_crop(speech, rng, CropConfig()).shape[0] / SAMPLE_RATE for _ in range(300)]
    assert min(lengths) >= 0.5 - 1e-6 and max(lengths) <= N_SAMPLES / SAMPLE_RATE
    assert np.mean(np.array(lengths) < 1.5) > 0.15 and np.mean(np.array(lengths) > 3.0) > 0.25


def test_sampling_balances_corpora_and_classes(tmp_path):
    from training.train import sampling_probabilities

    clips = [Clip(tmp_path / f"b{i}", ["angry", "sad"][i % 2], f"big:{i % 10}", "big") for i in range(1000)]
    clips += [Clip(tmp_path / f"s{i}", ["angry", "calm"][i % 4 == 0], f"small:{i % 2}", "small") for i in range(100)]
    idx = list(range(len(clips)))
    p = sampling_probabilities(clips, idx, TrainConfig())
    by_corpus, by_class = Counter(), Counter()
    for i, pi in zip(idx, p, strict=True):
        by_corpus[clips[i].corpus] += pi
        by_class[clips[i].label] += pi
    assert p.sum() == pytest.approx(1)
    assert 0.15 < by_corpus["small"] < 0.5  # sqrt of size: 10x fewer clips, about a quarter of draws
    assert by_class["calm"] > 0.1  # 25 calm clips, drawn far more often than their 2 %


def test_corpus_weights_raise_a_corpus_share_and_refuse_typos(tmp_path):
    from training.train import sampling_probabilities

    clips = [Clip(tmp_path / f"a{i}", ["angry", "sad"][i % 2], f"a:{i % 4}", "a") for i in range(400)]
    clips += [Clip(tmp_path / f"b{i}", ["angry", "sad"][i % 2], f"b:{i % 4}", "b") for i in range(400)]
    idx = list(range(len(clips)))

    def share_a(cfg: TrainConfig) -> float:
        p = sampling_probabilities(clips, idx, cfg)
        return float(sum(pi for i, pi in zip(idx, p, strict=True) if clips[i].corpus == "a"))

    assert share_a(TrainConfig()) == pytest.approx(0.5)
    assert share_a(TrainConfig.with_overrides(["corpus_weights=a=3"])) == pytest.approx(0.75)
    for bad in ("c=2", "a=0", "a=x", "a"):
        with pytest.raises(ValueError, match="corpus_weights"):
            sampling_probabilities(clips, idx, TrainConfig.with_overrides([f"corpus_weights={bad}"]))


def test_short_view_adds_short_crops_and_leaves_the_train_cache_alone(speech, speech_clip, tmp_path):
    from ser.config import N_FRAMES, N_MFCC

    clip = Clip(speech_clip, "happy", "x:1", "x")
    plain = data.FeatureStore([clip], train_copies=2, cache_dir=tmp_path, workers=1)
    store = data.FeatureStore([clip], train_copies=2, cache_dir=tmp_path, workers=1, short_copies=3)
    assert store.recipe("train") == plain.recipe("train")  # the cached `train` view is reused
    copies = store.copies([0])
    assert copies.shape == (1, 5, N_FRAMES, N_MFCC) and (copies[:, :2] == plain.copies([0])).all()
    assert not (copies[0, 2:] == copies[0, :1]).all(axis=(1, 2)).any()
    n, crop = store.crop_plan("short")
    rng = np.random.default_rng(9)
    lengths = [training_crop(speech, rng, crop).shape[0] / SAMPLE_RATE for _ in range(200)]
    assert n == 3 and min(lengths) >= 0.5 - 1e-6 and max(lengths) <= data.SHORT_MAX_SECONDS + 1e-6
    assert data.store_for([clip], TrainConfig.with_overrides(["short_copies=2"])).crop_plan("short")[0] == 2
