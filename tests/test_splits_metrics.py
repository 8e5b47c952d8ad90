"""Speaker-independent splits and the calibration maths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ser.datasets import Clip
from training.metrics import expected_calibration_error, fit_temperature, summary
from training.splits import (
    fold_split,
    holdout_split,
    member_splits,
    random_split,
    restrict_corpora,
    speaker_folds,
)


def fake_clips(n_speakers=20, per=10):
    return [Clip(Path(f"{s}_{i}.wav"), "angry" if i % 2 else "sad", f"ravdess:{s:02d}", "ravdess",
                 "male" if s % 2 else "female") for s in range(1, n_speakers + 1) for i in range(per)]  # fmt: skip


def test_folds_partition_speakers_with_gender_balance():
    clips = fake_clips()
    folds = speaker_folds(clips, 5, seed=0)
    assert sorted(s for f in folds for s in f) == sorted({c.speaker for c in clips})
    for fold in folds:
        assert len(fold) == 4
        genders = [int(s.split(":")[1]) % 2 for s in fold]
        assert sum(genders) == 2  # two male, two female


@pytest.mark.parametrize("test_fold", range(5))
def test_no_speaker_on_two_sides(test_fold):
    clips = fake_clips()
    split = fold_split(clips, speaker_folds(clips, 5, seed=1), test_fold)
    sides = [{clips[i].speaker for i in idx} for idx in (split.train, split.val, split.test)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert len(split.train) + len(split.val) + len(split.test) == len(clips)


def test_holdout_split_checks_speakers():
    clips = fake_clips(4)
    split = holdout_split(clips, ["ravdess:01"])
    assert {clips[i].speaker for i in split.val} == {"ravdess:01"}
    with pytest.raises(ValueError):
        holdout_split(clips, ["ravdess:99"])


def test_rotated_validation_keeps_test_out_and_each_members_val_unseen():
    clips = fake_clips()
    split = fold_split(clips, speaker_folds(clips, 5, seed=1), 0, n_val=2)
    plans = member_splits(clips, split, members=3, rotate=True, seed=0)
    speakers = [({clips[i].speaker for i in t}, {clips[i].speaker for i in v}) for t, v in plans]
    test = set(split.test_speakers)
    assert speakers[0][1] == set(split.val_speakers)  # the first member validates as usual
    for train, val in speakers:
        assert len(val) == 2 and not train & val and not (train | val) & test
        assert train | val == {clips[i].speaker for i in split.train + split.val}
        assert {int(s[-2:]) % 2 for s in val} == {0, 1}  # one female, one male
    vals = [v for _, v in speakers]
    assert not (vals[0] & vals[1]) and not (vals[0] & vals[2]) and not (vals[1] & vals[2])
    shared = member_splits(clips, split, members=3, rotate=False, seed=0)
    assert all(t == split.train and v == split.val for t, v in shared)
    rand = random_split(len(clips), seed=0)  # clips, not speakers: nothing to rotate
    assert member_splits(clips, rand, members=3, rotate=True, seed=0) == [(rand.train, rand.val)] * 3
    with pytest.raises(ValueError, match="too few"):
        member_splits(fake_clips(4), fold_split(fake_clips(4), speaker_folds(fake_clips(4), 4, 0), 0, 1), 5, True, 0)


def test_rotation_within_training_speakers_leaves_the_validation_speakers_to_no_member():
    """A teacher for a student that calibrates on split.val: members rotate one training
    speaker per corpus each, and none trains on split.val or the test speakers."""
    clips = [Clip(Path(f"{c}{s}_{i}"), "angry", f"{c}:{s}", c, ["female", "male"][s % 2])
             for c in ("a", "b") for s in range(10) for i in range(2)]  # fmt: skip
    split = fold_split(clips, speaker_folds(clips, 5, seed=1), 0, n_val=2)
    plans = member_splits(clips, split, 3, True, seed=0, within_train=True)
    held = set(split.val_speakers) | set(split.test_speakers)
    vals = []
    for train, val in plans:
        train_s, val_s = {clips[i].speaker for i in train}, {clips[i].speaker for i in val}
        assert sorted(s[0] for s in val_s) == ["a", "b"] and not train_s & val_s and not (train_s | val_s) & held
        assert train_s | val_s == {clips[i].speaker for i in split.train}
        vals.append(val_s)
    assert len(set().union(*vals)) == 6  # no two members validate on the same speaker
    with pytest.raises(ValueError, match="too few"):
        member_splits(clips, split, 8, True, seed=0, within_train=True)


def test_temperature_scaling_fixes_overconfidence():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 8, 4000)
    logits = rng.normal(0, 1, (4000, 8))
    logits[np.arange(4000), y] += 1.5  # informative but ...
    logits *= 4  # ... far too confident
    t = fit_temperature(logits, y)
    assert 2 < t < 6  # the overconfidence factor was 4
    p_before = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    p_after = np.exp(logits / t) / np.exp(logits / t).sum(1, keepdims=True)
    assert expected_calibration_error(y, p_after) < expected_calibration_error(y, p_before) / 3


def test_summary_metrics():
    y = np.array([0, 0, 0, 1])
    probs = np.eye(8)[[0, 0, 1, 1]]
    s = summary(y, probs)
    assert s["weighted_accuracy"] == 0.75
    assert s["unweighted_accuracy"] == pytest.approx((2 / 3 + 1) / 2)


def test_rotated_validation_on_several_corpora_takes_as_many_speakers_per_corpus():
    clips = [Clip(Path(f"{c}{s}_{i}"), "angry", f"{c}:{s}", c, ["female", "male"][s % 2])
             for c in ("a", "b") for s in range(10) for i in range(2)]  # fmt: skip
    split = holdout_split(clips, ["a:0", "a:1", "b:0", "b:1"])
    plans = member_splits(clips, split, 3, True, seed=1)
    for train, val in plans:
        val_speakers = {clips[i].speaker for i in val}
        assert sorted(s[0] for s in val_speakers) == ["a", "a", "b", "b"]  # 2 per corpus, as split.val
        assert not val_speakers & {clips[i].speaker for i in train}


def test_training_on_one_corpus_keeps_every_corpus_test_speakers():
    clips = [Clip(Path(f"{c}{s}_{i}"), "angry", f"{c}:{s}", c, ["female", "male"][s % 2])
             for c in ("a", "b") for s in range(10) for i in range(2)]  # fmt: skip
    split = fold_split(clips, speaker_folds(clips, 5, seed=1), 0, n_val=1)
    only_a = restrict_corpora(clips, split, ["a"])
    assert {clips[i].corpus for i in only_a.train + only_a.val} == {"a"}
    assert set(only_a.train) < set(split.train) and only_a.test == split.test  # same test speakers, both corpora
    assert {clips[i].corpus for i in only_a.test} == {"a", "b"}
    assert only_a.val_speakers == tuple(s for s in split.val_speakers if s.startswith("a:"))
    assert restrict_corpora(clips, split, []) is split
    with pytest.raises(ValueError, match="not given"):
        restrict_corpora(clips, split, ["c"])


def test_confident_threshold_meets_its_target_and_refuses_to_invent_one():
    from training.metrics import confident_threshold, risk_coverage

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(8, 0.5), size=400)
    # answers right with probability equal to their confidence: a calibrated model
    y = np.where(rng.random(400) < probs.max(1), probs.argmax(1), (probs.argmax(1) + 1) % 8)
    t = confident_threshold(y, probs, 0.7)
    rc = risk_coverage(y, probs, t)
    assert abs(t - 0.7) < 0.1  # calibrated: an answer at confidence c is right c of the time
    assert 0 < rc["coverage"] < 1 and rc["accuracy_confident"] >= 0.7 > rc["accuracy_all"]
    assert rc["curve"][-1]["accuracy"] == rc["accuracy_all"] and len(rc["curve"]) == 10
    # a model that is always wrong never earns a threshold: everything is uncertain
    wrong = (probs.argmax(1) + 1) % 8
    assert confident_threshold(wrong, probs, 0.7) == 1.0


def test_a_corpus_balanced_temperature_weighs_a_small_corpus_as_much_as_a_large_one():
    from training.metrics import corpus_balanced

    rng = np.random.default_rng(0)

    def corpus(n, scale):  # windows whose logits are `scale` times too confident
        y = rng.integers(0, 4, n)
        return scale * (rng.normal(size=(n, 4)) + 1.5 * np.eye(4)[y]), y

    big, small = corpus(900, 4.0), corpus(100, 1.0)
    logits, y = np.concatenate([big[0], small[0]]), np.concatenate([big[1], small[1]])
    names = np.array(["big"] * 900 + ["small"] * 100)
    by_clip, by_corpus = fit_temperature(logits, y), fit_temperature(logits, y, corpus_balanced(names))
    alone = fit_temperature(*small), fit_temperature(*big)
    assert 0.6 < alone[0] < 1.4 and 2.2 < alone[1] < 5.5  # each corpus's own temperature
    assert abs(by_clip - alone[1]) < 0.6  # the large corpus decides a clip-weighted fit
    assert alone[0] + 0.5 < by_corpus < by_clip - 0.5  # both count in a balanced one
