"""Training settings: one frozen dataclass, every default with its reason.

Overrides come as `key=value` strings (`--set epochs=2`); unknown keys are rejected so a
typo can't silently train with a default. The resolved config is saved in each run folder.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    seed: int = 1337
    # model
    architecture: str = "conv1d"  # "conv1d": convolutions over time; "conv2d": over (time, coefficient)
    # one block each; time pooled by 2 in the first two. Wider than the RAVDESS-only model
    # (64, 128, 128 / LSTM 64): four corpora need the capacity. Fold 0 of 5, all corpora:
    # UA 0.572 against 0.560, RAVDESS 0.555 against 0.465 (runs/exp_e).
    conv_filters: tuple[int, ...] = (128, 128, 128)
    conv_kernels: tuple[int, ...] = (5, 5, 3)  # frames (conv1d only)
    lstm_units: int = 128  # per direction
    dense_units: int = 64
    # Three members, logits averaged: against one network of this recipe, the same 5
    # folds, UA all/RAVDESS/EmoDB (see the model card's notes; runs/exp_g), for 3x the
    # model's serving and training time.
    ensemble: int = 3
    # With ensemble > 1, each member validates on other speakers (the folds); the shipped
    # model turns it off (scripts/train_default.sh) so that its members share 2 validation
    # speakers per corpus that none of them learned: tests and measurements need them.
    rotate_validation: bool = True
    # With rotate_validation: draw each member's validation speakers from split.train only
    # (one per corpus), so that no member trains on split.val either. Such an ensemble can
    # teach a student that calibrates on split.val (a rotated teacher is otherwise refused);
    # each member learns one speaker per corpus fewer than the shared recipe's.
    rotate_within_train: bool = False
    # 0.1 with one SpecAugment mask of each kind (runs/exp_i/lowreg, folds 0 and 1): training
    # loss 0.69 instead of ~1.0, pooled UA 54.8 / 62.7 against 55.7 / 66.6 %: it fits the
    # training speakers better, not the unseen ones.
    dropout: float = 0.3
    utterance_cmn: bool = True  # subtract each window's mean MFCC: removes channel/level offsets
    # mean-subtract only the first k MFCCs (1 = level only). 1 (one network, folds 0 and 1,
    # runs/exp_cmn): clean 61.9 against 61.0 % pooled (nEMO +3.2) and 1 s crops 46.2 against
    # 44.4, but RAVDESS 57.0 against 61.1, EmoDB 39.5 against 58.0, telephone 54.8 against 56.9.
    cmn_coefficients: int = 40
    utterance_cvn: bool = False  # also divide by each window's std per coefficient
    # optimisation
    # length of the cosine schedule (an upper bound with early stopping). 60 on fold 0
    # (runs/exp_i/long): RAVDESS 57.0 against 53.5 %, pooled 54.9 against 55.7, 1 s crops
    # 42.7 against 43.5, for twice the time; one fold, not adopted.
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4  # AdamW
    # Which weights to keep: "last" keeps the end of the cosine schedule; "val_nll" keeps
    # the epoch with the lowest validation log-loss (mean over corpora) and stops after
    # `patience` epochs without a new low; "best_val" does the same on UA. Measured on
    # fold 0 of 5 (all corpora): val_nll stopped at epoch 12 of 30 with test UA 0.563
    # while test UA was still rising (0.579 at epoch 17): the few validation speakers per
    # corpus make the log-loss too noisy to stop on, so the schedule runs to its end.
    selection: str = "last"
    patience: int = 6  # epochs
    # mixup of training pairs (0 = off). Off: on fold 0, with mixup 0.2 the model stopped at
    # test UA 0.510 (train accuracy 0.54), without it 0.563: with this much augmentation
    # the network underfits, and mixup only adds to that.
    mixup_alpha: float = 0.0
    label_smoothing: float = 0.05
    # data: each epoch draws `draws_per_clip` windows per training clip (with replacement,
    # weighted), from `train_copies` cached crops of 0.5-4 s, most through a device/room chain
    train_copies: int = 6
    draws_per_clip: int = 3  # 1 underfit on fold 0 (UA 0.489, train accuracy 0.45)
    p_augment: float = 0.85  # share of cached crops that go through the device/room chain
    # Each clip's clean window (the whole clip as recorded, as test and validation see it)
    # joins its cached crops this many times, so a draw takes it with probability
    # clean_copies / (train_copies + clean_copies). Changes no cache. 2 (one network, folds
    # 0 and 1, runs/exp_l): RAVDESS 54.7 / 55.1 against 53.5 / 58.6 %, pooled 55.1 / 62.7
    # against 55.7 / 66.6: whole clean clips do not buy back clean accuracy. Off.
    clean_copies: int = 0
    # Short crops added to each clip's cached crops: this many of 0.5 s to
    # `training.data.SHORT_MAX_SECONDS` around the speech, through the same device/room chain
    # (the cache's `short` view; the `train` view is untouched). 0 = off: about 19 % of drawn
    # windows are then at most 1.5 s long (0.65 of crops are 0.5-4 s, uniform); 2 makes it ~40 %.
    # 2 (one network, folds 0 and 1, runs/exp_short): 1 s crops 47.0 against 44.4 % pooled
    # but RAVDESS 38.9 against 37.3, nEMO 34.5 against 33.4, clean 60.2 against 61.0, EmoDB
    # clean 49.6 against 58.0 (both folds), telephone 54.9 against 56.9. Off.
    short_copies: int = 0
    p_whole_clip: float = 0.35  # share of crops that are the whole clip (else 0.5-4 s of it)
    # Mixing corpora of very different sizes: a corpus's share of each epoch grows as
    # size^corpus_power (0 equal shares, 1 proportional to size); inside a corpus every
    # class it has gets an equal share; then classes few corpora have (calm, disgust) are
    # drawn more often, by (target share / share)^class_power, towards equal classes.
    corpus_power: float = 0.5
    # Then each named corpus's share is multiplied by its weight ("ravdess=2"; unnamed: 1),
    # e.g. to draw more of the one corpus that has all eight classes. Empty: off. One network,
    # 5 folds: ravdess=2 gave RAVDESS 62.0 against 58.4 %, EmoDB 51.9 against 54.7, pooled
    # 62.4 against 63.2, 1 s crops 45.3 against 45.5 (runs/exp_w2, README): not yet the recipe.
    corpus_weights: tuple[str, ...] = ()
    # Corpora whose clips train and validate (empty: every corpus given). The folds are still
    # dealt over every corpus, so a model trained on one corpus is tested on the same speakers
    # as one trained on all: the fair "does mixing corpora cost RAVDESS accuracy?" baseline.
    train_corpora: tuple[str, ...] = ()
    class_power: float = 0.5
    spec_time_masks: int = 2  # SpecAugment masks applied on the fly, training only
    spec_time_width: int = 12  # frames
    spec_freq_masks: int = 2
    spec_freq_width: int = 4  # MFCC coefficients
    # A channel's pass band imposed on this share of training windows at the feature level
    # (training.data.band_limit): top edge log-uniform in band_high_hz, a low cut in
    # band_low_hz on p_band_low of them. One network, 5 folds, against the same without (runs/exp_h
    # vs runs/wide): telephone UA 58.9 against 48.8 % (better in every fold), clean 62.7
    # against 62.1, 1 s crops 44.1 against 45.5, ASED 84.5 against 85.7.
    p_band_limit: float = 0.4
    band_high_hz: tuple[float, float] = (2800.0, 8000.0)
    band_low_hz: tuple[float, float] = (150.0, 450.0)
    # Of the telephone's parts, its 300 Hz low cut costs most (fold 0 of the shipped recipe,
    # docs/EXPERIMENTS.md: pooled UA 60.2 clean, 55.8 high-passed, 57.9 low-passed at 3.4 kHz),
    # but a low cut on every band-limited window did not help (1.0, one network, fold 0,
    # runs/exp_lowcut: telephone 47.4 against 51.9 %, clean 55.3 against 56.9).
    p_band_low: float = 0.5
    # Vocal tract length perturbation on this share of training windows, at the feature level
    # (training.data.freq_warp): log-mel bands moved from f to alpha x f, alpha in 1 +- range.
    # 0.5 (one network, 5 folds, runs/exp_k) against 0: 1 s crops 45.5 against 44.1 %
    # (RAVDESS 1 s 38.0 against 34.4, better in all 5 folds), pooled 63.2 against 62.7,
    # RAVDESS 58.4 both, telephone 59.3 against 58.9. On since the model 20261127-5491ccfb85.
    p_freq_warp: float = 0.5
    freq_warp_range: float = 0.1
    # Knowledge distillation: a trained run folder whose model (normally the three-network
    # ensemble) gives soft targets for every cached training window; each window's target is
    # (1 - distill_weight) x its label + distill_weight x the teacher's calibrated
    # probabilities for that window before the on-the-fly pass band and masks, so the
    # student also learns to answer a band-limited window as the teacher answers the full
    # one. The teacher must not have trained on the student's test speakers, nor on its
    # validation speakers where the split has no test speakers (the shipped model: they
    # are then the only unseen ones), checked against its data.json. "" = no teacher.
    distill_from: str = ""
    distill_weight: float = 0.7
    # Corpus-adversarial training (a domain-adversarial network): a small head learns to tell
    # the training corpora apart from the body's last hidden layer (the 64 units the logits
    # read), and its gradient reaches the network reversed and scaled by this weight, pushing
    # the network towards features that do not say which corpus (room, microphone, language,
    # actors) a window came from, the hope for a corpus it has never heard. Training only:
    # the exported model has no head.
    # 0.5 (one network of the shipped recipe, runs/exp_dann, docs/EXPERIMENTS.md): EmoDB never
    # heard 48.8 % against 37.4-40.6 for three runs without, but ASED never heard 29.8 against
    # 31.2 and 34.7, and the folds' test speakers 55.8 / 59.9 against 56.9 / 65.1 pooled
    # (telephone 47.1 / 55.5 against 51.9 / 62.0). 0 = off.
    adversary_weight: float = 0.0
    # validation (early stopping, temperature) also scores 1 s crops of the validation
    # speakers' clips, so calibration holds for short uploads too
    val_short_seconds: float = 1.0
    # The served `uncertain` flag: answers below the confidence at which the validation
    # speakers' answers are right this often are flagged (metrics.confident_threshold):
    # "uncertain" = more likely wrong than right. 0.7 was tried first: on the shipped
    # model's validation speakers even its 10 % most confident answers were right only
    # 62 % of the time, so every answer would have been flagged.
    confident_accuracy: float = 0.5

    @classmethod
    def with_overrides(cls, overrides: list[str] | dict[str, Any] | None = None) -> TrainConfig:
        base = cls()
        if not overrides:
            return base
        if isinstance(overrides, list):
            pairs = {}
            for item in overrides:
                key, sep, value = item.partition("=")
                if not sep:
                    raise ValueError(f"override {item!r} is not key=value")
                pairs[key] = _json_or_text(value)
            overrides = pairs
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(overrides) - set(fields)
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(fields)}")
        typed = {}
        for key, value in overrides.items():
            default = getattr(base, key)
            if isinstance(default, bool):
                typed[key] = _as_bool(key, value)
            elif isinstance(default, tuple):  # a JSON list, or "a,b" for a tuple of names
                typed[key] = tuple(value.split(",") if isinstance(value, str) else value)
            else:
                typed[key] = type(default)(value)
        return dataclasses.replace(base, **typed)

    @classmethod
    def from_record(cls, recorded: dict[str, Any]) -> TrainConfig:
        """A run's settings from its config.json. A setting newer than the run takes what
        the run did before it existed (`BEFORE_SETTING`), not today's default: a run from
        before the pass band trained without one, whatever the default is now."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls.with_overrides({**BEFORE_SETTING, **{k: v for k, v in recorded.items() if k in known}})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# What runs did before these settings existed (their config.json lacks them).
BEFORE_SETTING: dict[str, Any] = {
    "p_band_limit": 0.0,
    "distill_from": "",
    "distill_weight": 0.7,
    "p_freq_warp": 0.0,
    "clean_copies": 0,
    "train_corpora": (),
    "corpus_weights": (),
    "p_band_low": 0.5,
    "short_copies": 0,
    "adversary_weight": 0.0,
}


def _json_or_text(value: str) -> Any:
    """A number, list or true/false as JSON; anything else (a path, "tess=2") as text."""
    if value[:1] not in "[{0123456789-tf":
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _as_bool(key: str, value: Any) -> bool:
    """true/false/1/0 in any case: bool("False") would be True."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise ValueError(f"{key} must be true or false, not {value!r}")
