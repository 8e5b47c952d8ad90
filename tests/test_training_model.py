"""The in-graph normalisation: what it removes, and that training statistics mirror it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from training.config import TrainConfig  # noqa: E402
from training.model import build_body, build_classifier, normalisation_stats  # noqa: E402


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(0, 20, (6, 173, 40)).astype(np.float32) + np.linspace(-200, 50, 40, dtype=np.float32)


@pytest.mark.parametrize("k", [1, 40])
def test_mean_subtraction_of_first_k_coefficients(features, k):
    cfg = TrainConfig.with_overrides([f"cmn_coefficients={k}"])
    model = build_classifier(cfg, *normalisation_stats(features, cfg))
    cmn = model.get_layer("cmn")
    out = np.asarray(cmn(features))
    assert np.abs(out[..., :k].mean(axis=1)).max() < 1e-3  # removed per window
    np.testing.assert_allclose(out[..., k:], features[..., k:], atol=1e-4)  # kept as is
    louder = features.copy()
    louder[..., 0] += 40.0  # a gain change moves c0 only
    np.testing.assert_allclose(model.predict(louder, verbose=0), model.predict(features, verbose=0), atol=1e-4)
    if k == 1:
        brighter = features.copy()
        brighter[..., 1] += 40.0  # spectral tilt is information the level-only model keeps
        assert np.abs(model.predict(brighter, verbose=0) - model.predict(features, verbose=0)).max() > 1e-3


def test_statistics_describe_what_the_network_sees(features):
    cfg = TrainConfig.with_overrides(["cmn_coefficients=1"])
    mean, var = normalisation_stats(features, cfg)
    model = build_classifier(cfg, mean, var)
    standardised = np.asarray(model.get_layer("standardise")(model.get_layer("cmn")(features)))
    np.testing.assert_allclose(standardised.mean(axis=(0, 1)), 0, atol=1e-3)
    np.testing.assert_allclose(standardised.std(axis=(0, 1)), 1, atol=1e-3)


def test_ensemble_averages_its_members_logits(features):
    cfg = TrainConfig()
    mean, var = normalisation_stats(features, cfg)
    bodies = [build_body(cfg, name=f"member{i}") for i in range(3)]
    ensemble = build_classifier(cfg, mean, var, bodies)
    singles = [build_classifier(cfg, mean, var, [b]) for b in bodies]  # the same weights
    expected = np.mean([m.predict(features, verbose=0) for m in singles], axis=0)
    np.testing.assert_allclose(ensemble.predict(features, verbose=0), expected, atol=1e-5)
    assert len({float(np.abs(m.predict(features, verbose=0)).sum()) for m in singles}) == 3  # distinct


@pytest.mark.parametrize("architecture", ["conv1d", "conv2d"])
def test_architectures_take_the_feature_shape(features, architecture):
    cfg = TrainConfig.with_overrides({"architecture": architecture, "conv_filters": [8, 8, 8]})
    model = build_classifier(cfg, *normalisation_stats(features, cfg))
    assert model.predict(features, verbose=0).shape == (6, 8)
