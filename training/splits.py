"""Speaker-independent splits: whole speakers go to one side, never both.

Speakers are dealt into folds round-robin within each (corpus, gender) group after a seeded
shuffle, so every fold holds a similar mix of corpora and of female and male voices. All
RAVDESS and EmoDB speakers record every emotion, so speaker folds are stratified by
emotion too; `describe` prints the per-fold label counts to check that on other corpora.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ser.datasets import Clip


@dataclass(frozen=True)
class Split:
    train: list[int]  # clip indices
    val: list[int]
    test: list[int]
    test_speakers: tuple[str, ...]
    val_speakers: tuple[str, ...]


def speaker_folds(clips: Sequence[Clip], k: int, seed: int) -> list[list[str]]:
    """Deal the clips' speakers into k folds, balanced by corpus and gender."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for speaker, corpus, gender in sorted({(c.speaker, c.corpus, c.gender) for c in clips}):
        groups[(corpus, gender)].append(speaker)
    if sum(len(g) for g in groups.values()) < k:
        raise ValueError(f"{k} folds need at least {k} speakers")
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(k)]
    turn = 0
    for key in sorted(groups):
        speakers = list(groups[key])
        rng.shuffle(speakers)
        for speaker in speakers:
            folds[turn % k].append(speaker)
            turn += 1
    return [sorted(f) for f in folds]


def pick_validation(clips: Sequence[Clip], fold: list[str], n: int | None) -> list[str]:
    """n speakers of each corpus in a fold, genders alternating (all of the fold when n is None)."""
    if n is None:
        return list(fold)
    gender = {c.speaker: c.gender for c in clips}
    corpus = {c.speaker: c.corpus for c in clips}
    picked: list[str] = []
    for name in sorted({corpus[s] for s in fold}):
        by_gender: dict[str, list[str]] = defaultdict(list)
        for speaker in fold:
            if corpus[speaker] == name:
                by_gender[gender[speaker]].append(speaker)
        queues = [by_gender[g] for g in sorted(by_gender)]
        taken = 0
        while taken < n and any(queues):
            for q in queues:
                if q and taken < n:
                    picked.append(q.pop(0))
                    taken += 1
    return sorted(picked)


def fold_split(clips: Sequence[Clip], folds: list[list[str]], test_fold: int, n_val: int | None = None) -> Split:
    """Fold `test_fold` tests; `n_val` speakers of the next fold validate; the rest train."""
    val_fold = (test_fold + 1) % len(folds)
    test, val = set(folds[test_fold]), set(pick_validation(clips, folds[val_fold], n_val))
    side = {"test": [], "val": [], "train": []}
    for i, clip in enumerate(clips):
        key = "test" if clip.speaker in test else "val" if clip.speaker in val else "train"
        side[key].append(i)
    return Split(side["train"], side["val"], side["test"], tuple(sorted(test)), tuple(sorted(val)))


def holdout_split(clips: Sequence[Clip], val_speakers: Sequence[str]) -> Split:
    """Train on everyone but `val_speakers` (early stopping, calibration); no test set."""
    val = set(val_speakers)
    missing = val - {c.speaker for c in clips}
    if missing:
        raise ValueError(f"validation speakers not in the data: {sorted(missing)}")
    train = [i for i, c in enumerate(clips) if c.speaker not in val]
    val_idx = [i for i, c in enumerate(clips) if c.speaker in val]
    return Split(train, val_idx, [], (), tuple(sorted(val)))


def random_split(n: int, seed: int, test_fraction: float = 0.2) -> Split:
    """Clips shuffled without regard to speaker: ONLY for comparison with published figures."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_test = int(n * test_fraction)
    return Split(order[2 * n_test :], order[n_test : 2 * n_test], order[:n_test], (), ())


def describe(clips: Sequence[Clip], split: Split) -> str:
    lines = []
    for name in ("train", "val", "test"):
        idx = getattr(split, name)
        labels = Counter(clips[i].label for i in idx)
        speakers = len({clips[i].speaker for i in idx})
        lines.append(f"{name}: {len(idx)} clips, {speakers} speakers, {dict(sorted(labels.items()))}")
    return "\n".join(lines)


def restrict_corpora(clips: Sequence[Clip], split: Split, corpora: Sequence[str]) -> Split:
    """The split with training and validation clips of `corpora` only (all when empty);
    the test side is kept whole, so other corpora's test speakers become unseen corpora."""
    if not corpora:
        return split
    unknown = set(corpora) - {c.corpus for c in clips}
    if unknown:
        raise ValueError(f"train_corpora names corpora not given: {sorted(unknown)}")
    keep = set(corpora)
    train = [i for i in split.train if clips[i].corpus in keep]
    val = [i for i in split.val if clips[i].corpus in keep]
    val_speakers = tuple(sorted({clips[i].speaker for i in val}))
    return Split(train, val, split.test, split.test_speakers, val_speakers)


def member_splits(
    clips: Sequence[Clip], split: Split, members: int, rotate: bool, seed: int, within_train: bool = False
) -> list[tuple[list[int], list[int]]]:
    """(train, validation) clip indices for each member of an ensemble.

    Shared: every member trains on split.train and validates on split.val. Rotated: member
    0 validates on split.val; each further member validates on as many other speakers,
    drawn from split.train (genders alternating), and trains on the rest of split.train
    and split.val. The ensemble then learns from every non-test speaker while each
    member's validation speakers stay unseen by that member. Rotated `within_train`: each
    member validates on one speaker per corpus of split.train (no two members the same)
    and trains on the rest of split.train: split.val stays unseen by every member. Test
    speakers are never in either list.
    """
    if not rotate or members == 1 or not split.val_speakers:  # a random split has no speakers to rotate
        return [(list(split.train), list(split.val))] * members
    if within_train:
        return _rotate_within_train(clips, split, members, seed)
    corpus_of = {c.speaker: c.corpus for c in clips}
    n_val = len(split.val_speakers)
    per_corpus = max(Counter(corpus_of[s] for s in split.val_speakers).values())  # pick_validation counts per corpus
    remaining = sorted({clips[i].speaker for i in split.train})
    np.random.default_rng(seed).shuffle(remaining)
    val_sets = [set(split.val_speakers)]
    for _ in range(1, members):
        picked = pick_validation(clips, remaining, per_corpus)
        if len(picked) < n_val or len(remaining) - len(picked) < 1:
            raise ValueError(f"too few training speakers to rotate {n_val} validation speakers over {members} members")
        remaining = [s for s in remaining if s not in picked]
        val_sets.append(set(picked))
    pool = sorted(split.train + split.val)
    return [
        ([i for i in pool if clips[i].speaker not in v], [i for i in pool if clips[i].speaker in v])
        for v in val_sets
    ]


def _rotate_within_train(clips: Sequence[Clip], split: Split, members: int, seed: int) -> list[tuple[list[int], list[int]]]:
    remaining = sorted({clips[i].speaker for i in split.train})
    np.random.default_rng(seed).shuffle(remaining)
    corpora = {clips[i].corpus for i in split.train}
    plans = []
    for _ in range(members):
        picked = set(pick_validation(clips, remaining, 1))
        if len(picked) < len(corpora) or len(remaining) - len(picked) < 1:
            raise ValueError(f"too few training speakers to rotate one per corpus over {members} members")
        remaining = [s for s in remaining if s not in picked]
        plans.append(([i for i in split.train if clips[i].speaker not in picked],
                      [i for i in split.train if clips[i].speaker in picked]))  # fmt: skip
    return plans


def speakers_taught(data: dict) -> set[str]:
    """Every speaker some member of a run trained on, from its data.json: a rotated
    ensemble's members also train on each other's validation speakers."""
    if "member_train_speakers" in data:  # runs since the members' own lists are kept
        return set().union(*map(set, data["member_train_speakers"]))
    pool = set(data["train"]["speakers"]) | set(data["val"]["speakers"])
    member_val = data.get("member_val_speakers") or [data["val"]["speakers"]]
    return set().union(*(pool - set(v) for v in member_val))
