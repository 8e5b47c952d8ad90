"""`--set key=value` overrides of the training recipe: typed as the field they set."""

from __future__ import annotations

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
