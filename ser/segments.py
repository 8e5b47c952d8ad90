"""Which 4 s windows the model hears for a recording, and how their answers combine.

A recording up to one window long is one window (the whole clip, as in training). A longer
one is split where the speech is (`speech`, the default): the VAD finds utterances
separated by pauses, each utterance becomes one window (a short one tiled, as short clips
are in training) or several inside it, and silence is reported as silence, never
classified. `fixed` keeps the older layout: 4 s windows about every 2 s over everything.
One home for this, used by the server, the command line, `EmotionModel` and the live
stream's final utterances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from ser.config import N_SAMPLES, SAMPLE_RATE
from ser.features import fit_window, split_windows, window_starts
from ser.vad import speech_probabilities, speech_regions

Segmentation = Literal["speech", "fixed"]
SEGMENTATIONS: tuple[str, ...] = get_args(Segmentation)
MIN_GAP_S = 0.05  # shorter gaps between utterances are not listed as silence


@dataclass(frozen=True)
class Plan:
    """The windows to classify and what each belongs to."""

    mode: str  # "whole" (one window), "speech" or "fixed"
    windows: np.ndarray  # (n, N_SAMPLES) float32
    spans: list[tuple[float, float]]  # each window's place in the recording, seconds
    utterances: list[tuple[float, float]]  # speech mode: the utterances, seconds
    owner: list[int]  # speech mode: the utterance of each window


def uses_vad(seconds: float, segmentation: Segmentation) -> bool:
    """Whether a recording this long is cut where the speech is: the VAD, about 2 ms per
    second of audio, is then most of its analysis."""
    return segmentation != "fixed" and seconds > N_SAMPLES / SAMPLE_RATE


def plan_windows(samples: np.ndarray, segmentation: Segmentation = "speech") -> Plan:
    """Cut a recording into the model's windows (see the module docstring)."""
    if not uses_vad(samples.shape[0] / SAMPLE_RATE, segmentation):
        windows, spans = split_windows(samples)
        return Plan("whole" if len(spans) == 1 else "fixed", windows, spans, [], [])
    utterances = speech_regions(speech_probabilities(samples))
    if not utterances:  # nothing the VAD calls speech: classify everything rather than nothing
        windows, spans = split_windows(samples)
        return Plan("fixed", windows, spans, [], [])
    chunks, spans, owner = [], [], []
    for u, (start_s, end_s) in enumerate(utterances):
        a, b = int(start_s * SAMPLE_RATE), min(samples.shape[0], int(end_s * SAMPLE_RATE))
        for start, window in utterance_windows(samples[a:b]):
            chunks.append(window)
            spans.append(((a + start) / SAMPLE_RATE, (a + min(b - a, start + N_SAMPLES)) / SAMPLE_RATE))
            owner.append(u)
    return Plan("speech", np.stack(chunks), spans, utterances, owner)


def utterance_windows(audio: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """An utterance's windows, (start sample, samples): one, tiled, up to 4 s; else 4 s
    windows about every 2 s inside it. Files and live streams classify utterances so."""
    return [(start, fit_window(audio[start : start + N_SAMPLES])) for start in window_starts(audio.shape[0])]


def utterance_probabilities(plan: Plan, window_probs: np.ndarray) -> np.ndarray:
    """(n_utterances, n_labels): the mean of each utterance's windows."""
    owner = np.asarray(plan.owner)
    return np.stack([window_probs[owner == u].mean(axis=0) for u in range(len(plan.utterances))])


def clip_probabilities(plan: Plan, window_probs: np.ndarray) -> np.ndarray:
    """The whole recording's probabilities: speech only, each utterance weighted by its
    length; without utterances, the mean over windows."""
    if plan.mode != "speech":
        return window_probs.mean(axis=0)
    weights = np.array([end - start for start, end in plan.utterances])
    return weights @ utterance_probabilities(plan, window_probs) / weights.sum()


def silences(utterances: list[tuple[float, float]], duration_s: float) -> list[tuple[float, float]]:
    """The gaps around and between utterances, at least MIN_GAP_S long."""
    edges = [0.0] + [x for u in utterances for x in u] + [duration_s]
    gaps = zip(edges[0::2], edges[1::2], strict=True)
    return [(round(a, 3), round(b, 3)) for a, b in gaps if b - a >= MIN_GAP_S]
