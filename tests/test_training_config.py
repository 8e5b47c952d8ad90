"""`--set key=value` overrides of the training recipe: typed as the field they set."""

from __future__ import annotations

import json

import pytest

from training.config import TrainConfig


@pytest.mark.parametrize("text, value", [("false", False), ("False", False), ("0", False), ("true", True), ("True", True)])
def test_boolean_overrides_mean_what_they_say(text, value):
    # bool("False") is True: a run once trained with rotated validation it was told to turn off
    assert TrainConfig.with_overrides([f"rotate_validation={text}"]).rotate_validation is value


def test_bad_overrides_are_refused():
    with pytest.raises(ValueError, match="true or false"):
        TrainConfig.with_overrides(["rotate_validation=maybe"])
    with pytest.raises(ValueError, match="unknown config keys"):
        TrainConfig.with_overrides(["no_such_key=1"])


def test_other_types_follow_their_field():
    cfg = TrainConfig.with_overrides(["ensemble=1", "conv_filters=[8, 8, 8]", "architecture=conv2d", "dropout=0.2"])
    assert (cfg.ensemble, cfg.conv_filters, cfg.architecture, cfg.dropout) == (1, (8, 8, 8), "conv2d", 0.2)


def test_a_tuple_of_names_from_the_command_line():
    assert TrainConfig.with_overrides(["train_corpora=ravdess"]).train_corpora == ("ravdess",)
    assert TrainConfig.with_overrides(["train_corpora=ravdess,emodb"]).train_corpora == ("ravdess", "emodb")
    assert TrainConfig.with_overrides(['train_corpora=["emodb"]']).train_corpora == ("emodb",)
    assert TrainConfig().train_corpora == ()
    # a name starting like JSON ("t", "f") is still a name
    weights = TrainConfig.with_overrides(["corpus_weights=tess=2,ravdess=1.5"]).corpus_weights
    assert weights == ("tess=2", "ravdess=1.5")


def test_a_run_from_before_a_setting_reads_as_without_it():
    # p_freq_warp is on by default now; a run whose config.json predates it trained without it
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("p_freq_warp", "clean_copies")}
    assert TrainConfig.from_record(old).p_freq_warp == 0.0
    assert TrainConfig.from_record({**old, "p_freq_warp": 0.5}).p_freq_warp == 0.5


def _part(path, config):
    path.write_text(json.dumps({"config": config, "test": {}, "held_out_corpus": "x",
                                "clip_predictions": {"test_logits": [[0.5, -0.5]]}}))


def test_evaluation_parts_merge_across_a_setting_added_later(tmp_path):
    """Folds recorded before `clean_copies` existed merge with a part recording its old value;
    a part trained another way is refused."""
    from training.evaluate import merge

    now = TrainConfig.with_overrides({"p_freq_warp": 0.5}).to_dict()
    before = {k: v for k, v in now.items() if k != "clean_copies"}
    _part(tmp_path / "loco_a.json", before)
    _part(tmp_path / "loco_b.json", json.loads(json.dumps(now)))
    merged = merge(tmp_path, 5, None, {})
    assert set(merged["leave_one_corpus_out"]) == {"a", "b"} and merged["config"]["clean_copies"] == 0
    # window predictions stay in each part's file: evaluation.json goes into a model's metadata
    assert all("clip_predictions" not in part and "config" not in part for part in merged["leave_one_corpus_out"].values())
    _part(tmp_path / "loco_c.json", {**now, "clean_copies": 2})
    with pytest.raises(SystemExit, match="different settings"):
        merge(tmp_path, 5, None, {})
