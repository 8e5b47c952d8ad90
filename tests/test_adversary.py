"""Corpus-adversarial training: the reversal flips the gradient, the head trains on the
training corpora, and nothing of it reaches the exported model."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_gradient_reversal_is_identity_forward_and_negates_the_gradient_back():
    tf = pytest.importorskip("tensorflow")
    from training.model import GradientReversal

    x = tf.constant([[1.0, -2.0, 3.0]])
    layer = GradientReversal(0.3)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.constant([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(y.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), [[-0.3, -0.6, -0.9]], rtol=1e-6)
    layer.ramp.assign(0.5)  # early in training the reversal is weaker
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x))
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), [[-0.15, -0.15, -0.15]], rtol=1e-6)

    from training.train import reversal_ramp

    ramp = [reversal_ramp(e, 30) for e in range(30)]
    assert ramp[0] == 0 and ramp == sorted(ramp) and 0.99 < ramp[-1] < 1


def test_the_trainer_shares_the_classifiers_weights_and_only_they_ship():
    pytest.importorskip("tensorflow")
    from training.config import TrainConfig
    from training.model import build_adversarial_trainer, build_body, build_classifier

    cfg = TrainConfig()
    body = build_body(cfg)
    classifier = build_classifier(cfg, np.zeros(40, np.float32), np.ones(40, np.float32), [body])
    trainer = build_adversarial_trainer(classifier, body, 3, 0.5)
    assert {id(v) for v in classifier.trainable_weights} < {id(v) for v in trainer.trainable_weights}
    trainer.compile(optimizer="sgd", loss={"emotion": "categorical_crossentropy", "corpus": "categorical_crossentropy"})
    x = np.random.default_rng(0).normal(size=(4, 173, 40)).astype(np.float32)
    before = classifier.predict(x, verbose=0)
    np.testing.assert_allclose(trainer.predict(x, verbose=0)["emotion"], before, atol=1e-5)
    trainer.train_on_batch(x, {"emotion": np.eye(8, dtype=np.float32)[[0, 1, 2, 3]],
                               "corpus": np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]})  # fmt: skip
    assert not np.allclose(classifier.predict(x, verbose=0), before)


@pytest.mark.slow
def test_an_adversarial_run_trains_its_corpus_head_and_ships_without_it(ravdess_root, emodb_root, tmp_path,
                                                                         monkeypatch):  # fmt: skip
    pytest.importorskip("tensorflow")
    import keras

    from training import train

    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SER_DATA_WORKERS", "1")
    ravdess = tmp_path / "ravdess"
    for actor in ("Actor_01", "Actor_02", "Actor_03", "Actor_04"):
        (ravdess / actor).mkdir(parents=True)
        for path in sorted((ravdess_root / actor).glob("*.flac"))[::12]:
            (ravdess / actor / path.name).symlink_to(path.resolve())
    emodb = tmp_path / "emodb"
    emodb.mkdir()
    for path in sorted(emodb_root.glob("*.flac"))[::5]:
        (emodb / path.name).symlink_to(path.resolve())

    clips = train.load_clips([f"ravdess={ravdess}", f"emodb={emodb}"])
    from training.config import TrainConfig
    from training.data import store_for

    cfg = TrainConfig.with_overrides(["adversary_weight=0.5", "train_copies=1", "ensemble=1"])
    idx = list(range(len(clips)))
    y = np.array([train.LABELS.index(clips[i].label) for i in idx])
    corpus = np.array([sorted({c.corpus for c in clips}).index(clips[i].corpus) for i in idx])
    _, targets = train._Batches(store_for(clips, cfg).copies(idx), y, np.full(len(y), 1 / len(y)), cfg, 0,
                                corpus=corpus)[0]  # fmt: skip
    assert set(targets) == {"emotion", "corpus"} and targets["corpus"].shape[1] == 2
    np.testing.assert_allclose(targets["corpus"].sum(axis=1), 1)

    run = tmp_path / "run"
    train.main(["--corpus", f"ravdess={ravdess}", "--corpus", f"emodb={emodb}", "--folds", "2",
                "--val-speakers", "1", "--out", str(run), "--set", "epochs=2", "--set", "train_copies=1",
                "--set", "ensemble=1", "--set", "adversary_weight=0.5"])  # fmt: skip
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert len(history) == 2 and all(np.isfinite(row["corpus_loss"]) for row in history)
    assert all(0 <= row["train_accuracy"] <= 1 for row in history)
    model = keras.models.load_model(run / "model.keras")
    names = [layer.name for layer in model._flatten_layers()]
    assert "corpus" not in names and "reverse" not in names
    assert model.output_shape == (None, 8)
