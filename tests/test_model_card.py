"""The bundled model's card, rendered from the Jinja template and the model's metadata."""

from __future__ import annotations

from ser.inference import BUNDLED_MODEL, metadata_json, read_model_info
from tests.conftest import REPO


def test_card_is_rendered_from_the_model_and_says_when_it_is_unsure():
    from export.model_card import render

    card = render(BUNDLED_MODEL, None)
    info = read_model_info(BUNDLED_MODEL)
    assert card.startswith(f"# Model card: {info.name} {info.version}")
    assert ("Distilled: it learned from a teacher" in card) == ("teacher" in info.metadata)
    # the model names its teacher's run as the repository does, not by one machine's path
    assert not metadata_json(info, "train_config").get("distill_from", "").startswith("/")
    threshold = f"{100 * info.uncertainty_threshold:.1f} %"
    assert f"below {threshold} come with `uncertain: true`" in card
    assert "## When the model says it is unsure" in card and "Risk-coverage" in card
    assert "\n\n\n" not in card
    # the card says how many of the k folds its evaluation holds (a partial set is not the whole)
    cv = (metadata_json(info, "evaluation") or {}).get("speaker_cv") or {}
    if cv.get("folds_run"):
        assert f"{cv['folds_run']} folds run." in card
    # the committed card is this rendering (plus the export report's section)
    assert (REPO / "model_store" / "MODEL_CARD.md").read_text().startswith(card.split("## Reproduce")[0].split("## Export")[0])


def test_card_names_every_setting_in_which_the_folds_differ_from_the_model():
    """A card may only call its folds "the same recipe" when they are: each setting that
    differs (or that the evaluation predates) is named with both values."""
    from export.metadata import recipe_differences
    from training.config import TrainConfig

    model = TrainConfig.with_overrides({"ensemble": 3, "p_band_limit": 0.4})
    same = {"config": model.to_dict()}
    assert recipe_differences(same, model) == {}
    folds = {"config": {**model.to_dict(), "ensemble": 1, "band_high_hz": [2800.0, 8000.0]}}
    assert recipe_differences(folds, model) == {"ensemble": [1, 3]}  # lists and tuples alike
    # an evaluation from before the pass band existed trained without one, and says so
    older = {"config": {k: v for k, v in model.to_dict().items() if k not in ("p_band_limit", "distill_from")}}
    assert recipe_differences(older, model) == {"p_band_limit": [0.0, 0.4]}
    unknown = {"config": {k: v for k, v in model.to_dict().items() if k != "class_power"}}
    assert recipe_differences(unknown, model) == {"class_power": ["not recorded", 0.5]}
    # so does a model's own run folder (export.metadata.run_config)
    assert TrainConfig.from_record(older["config"]).p_band_limit == 0.0


def test_bundled_model_carries_the_notes_in_the_repository():
    """export/default_model_notes.md is what the card says: edit it, then run
    `python -m export.refresh_notes` (the test fails until the two agree)."""
    info = read_model_info(BUNDLED_MODEL)
    assert info.metadata["card_notes"] == (REPO / "export" / "default_model_notes.md").read_text()


def test_refreshing_notes_changes_the_card_and_nothing_the_model_computes(tmp_path):
    import shutil

    import numpy as np
    import onnx

    from export.refresh_notes import main
    from ser.inference import EmotionModel, gpu_graph

    for name in ("ser_cnn_bilstm.onnx", "ser_cnn_bilstm.fp32.onnx", "export_report.json"):
        if (REPO / "model_store" / name).exists():
            shutil.copy(REPO / "model_store" / name, tmp_path / name)
    notes = tmp_path / "notes.md"
    notes.write_text("- **A fold finished after shipping**: 12.3 % on nothing in particular.\n")
    main(["--card-notes", str(notes), "--out", str(tmp_path)])

    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "A fold finished after shipping" in card and "A fold finished after shipping" not in (
        REPO / "model_store" / "MODEL_CARD.md").read_text()
    for path in (tmp_path / "ser_cnn_bilstm.onnx", gpu_graph(tmp_path / "ser_cnn_bilstm.onnx")):
        if not path.exists():
            continue
        before, after = onnx.load(str(REPO / "model_store" / path.name)), onnx.load(str(path))
        assert after.graph.SerializeToString() == before.graph.SerializeToString()
        meta = {p.key: p.value for p in after.metadata_props}
        assert meta["card_notes"] == notes.read_text()
        assert {k: v for k, v in meta.items() if k != "card_notes"} == {
            p.key: p.value for p in before.metadata_props if p.key != "card_notes"}
    windows = np.random.default_rng(0).normal(size=(4, 173, 40)).astype(np.float32)
    np.testing.assert_array_equal(EmotionModel(tmp_path / "ser_cnn_bilstm.onnx").predict_features(windows),
                                  EmotionModel(BUNDLED_MODEL).predict_features(windows))


def test_refreshing_the_evaluation_names_how_its_recipe_differs_and_keeps_the_weights(tmp_path):
    """A full set of folds that finishes after shipping replaces the card's evaluation; the
    card compares it with the model's own recorded settings."""
    import json
    import shutil

    import onnx
    import pytest

    from export.refresh_notes import main

    for name in ("ser_cnn_bilstm.onnx", "ser_cnn_bilstm.fp32.onnx", "export_report.json"):
        if (REPO / "model_store" / name).exists():
            shutil.copy(REPO / "model_store" / name, tmp_path / name)
    info = read_model_info(BUNDLED_MODEL)
    model_cfg = metadata_json(info, "train_config")
    shipped = {k: v for k, v in metadata_json(info, "evaluation").items() if k != "recipe_differences"}
    runs = tmp_path / "eval"
    runs.mkdir()
    (runs / "confusion_matrix.png").write_bytes(b"\x89PNG new folds")
    other = model_cfg["ensemble"] + 1
    (runs / "evaluation.json").write_text(json.dumps({**shipped, "config": {**model_cfg, "ensemble": other}}))
    main(["--evaluation", str(runs / "evaluation.json"), "--out", str(tmp_path)])

    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert f"`ensemble` {other} in the folds, {model_cfg['ensemble']} here" in card
    assert (tmp_path / "confusion_matrix.png").read_bytes() == b"\x89PNG new folds"
    after = onnx.load(str(tmp_path / "ser_cnn_bilstm.onnx"))
    before = onnx.load(str(BUNDLED_MODEL))
    assert after.graph.SerializeToString() == before.graph.SerializeToString()
    meta = {p.key: p.value for p in after.metadata_props}
    assert json.loads(meta["evaluation"])["recipe_differences"] == {"ensemble": [other, model_cfg["ensemble"]]}
    assert meta["card_notes"] == info.metadata["card_notes"] and meta["model_version"] == info.version

    (runs / "evaluation.json").write_text(json.dumps({**shipped, "config": model_cfg}))
    main(["--evaluation", str(runs / "evaluation.json"), "--out", str(tmp_path)])
    assert "Same recipe and settings as this model" in (tmp_path / "MODEL_CARD.md").read_text()
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path)])
