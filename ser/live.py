"""Emotion while someone speaks: the state of one live stream, and a step over many.

A `LiveSession` takes audio as it arrives (any rate), keeps only what the next answer
needs (the current utterance, or the last 4 s), runs the VAD incrementally (its state
carries over; no audio is heard twice) and, every `HOP_S` of audio, gives a reading: the
emotion of the most recent speech (up to one 4 s window of it) and whether there is speech
now. An utterance closes at a pause of `VadSettings.min_pause_s` and is classified with
the same windows a file's utterance gets (`ser.segments`).

`advance` steps many sessions at once: their VAD frames in one batched call per 32 ms
of depth, and every window they need (readings and closed utterances) in one model call.
The server runs it for all of a worker's streams; `tests/test_live.py` runs it directly.

What is incremental: the VAD (each 32 ms frame heard once, its state carried), the audio
kept, and, once an utterance is longer than a window, its readings' MFCCs: frames are kept
between readings and each reading computes only the ~22 new ones (measured against one
window's full MFCC in the same run: 12-17x less, 0.14 against 1.6 ms on a busy machine).
A reading of an utterance still under 4 s tiles it (as the file path and training fit short
clips), and tiled windows share no frames, so those are computed afresh. One step of 100
streams (0.5 s of speech each, one core, another busy) took 258 ms before the kept frames:
VAD 83, MFCC 139, model 28.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soxr
from numpy.lib.stride_tricks import sliding_window_view

from ser.config import CLIP_SECONDS, HOP_LENGTH, N_FFT, N_FRAMES, N_MELS, SAMPLE_RATE
from ser.features import fit_window, frame_log_mel, mfcc, window_mfcc
from ser.segments import utterance_windows
from ser.vad import FRAME, FRAME_SECONDS, VAD, VAD_RATE, StreamVad, VadSettings, step_many

HOP_S = 0.5  # a reading every half second of audio
MAX_UTTERANCE_S = 20.0  # a longer stretch without a pause is closed and a new one begun


def _resampler(rate: int, to: int, quality: str) -> soxr.ResampleStream | None:
    return None if rate == to else soxr.ResampleStream(rate, to, 1, dtype="float32", quality=quality)


@dataclass
class Window:
    """A window to classify, and whom its answer goes to: its samples, or its MFCCs when
    they were built from kept frames."""

    samples: np.ndarray | None
    kind: str  # "reading" or "utterance"
    key: int  # the utterance's number, or the reading's hop
    features: np.ndarray | None = None


@dataclass
class LiveSession:
    rate: int
    settings: VadSettings = VAD
    received: int = 0  # input samples
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # model rate
    audio_from: int = 0  # model-rate sample index of audio[0]
    vad: StreamVad = field(default_factory=StreamVad)
    frames_done: int = 0
    hops_done: int = 0
    speaking: bool = False
    start_frame: int = 0
    pause_frame: int | None = None
    last_end_s: float = 0.0
    heard_speech: bool = False  # in the last hop
    last_reading: np.ndarray | None = None
    utterances: int = 0
    finished: bool = False
    pending_utterances: list[tuple[float, float]] = field(default_factory=list)
    # log mel of frames on the stream's own grid (frame k centred on model-rate sample
    # k * HOP_LENGTH), kept while an utterance longer than a window goes on
    mel_cache: np.ndarray = field(default_factory=lambda: np.zeros((0, N_MELS), np.float32))
    mel_from: int = 0  # frame index of mel_cache[0]
    incremental_readings: int = 0

    def __post_init__(self) -> None:
        self._to_model = _resampler(self.rate, SAMPLE_RATE, "HQ")
        self._to_vad = _resampler(self.rate, VAD_RATE, "QQ")

    @property
    def seconds(self) -> float:
        return self.received / self.rate

    def feed(self, samples: np.ndarray, last: bool = False) -> None:
        """Mono float32 samples at `rate`; `last` flushes the resamplers at the stream's end."""
        self.received += samples.shape[0]
        model = self._to_model.resample_chunk(samples, last=last) if self._to_model else samples
        vad = self._to_vad.resample_chunk(samples, last=last) if self._to_vad else samples
        self.audio = np.concatenate([self.audio, model.astype(np.float32, copy=False)])
        self.vad.push(vad)

    def hops_ready(self) -> int:
        """Readings owed: whole hops received and not yet answered; once finished, one more
        until the last frame is heard and the last utterance closed."""
        due = int(self.seconds / HOP_S + 1e-9) - self.hops_done
        return max(due, 1 if self.finished and not self.done() else 0)

    def done(self) -> bool:
        return self.finished and not self.vad.ready() and not self.speaking and not self.pending_utterances

    def finish(self) -> None:
        """The stream ended: flush the resamplers; the next hops hear the rest."""
        self.finished = True
        self.feed(np.zeros(0, np.float32), last=True)

    # -- segmentation, frame by frame (the offline `speech_regions`, online) --------------
    def _frame(self, i: int, p: float) -> None:
        s = self.settings
        if not self.speaking:
            if p >= s.threshold:
                self.speaking, self.start_frame, self.pause_frame = True, i, None
            return
        if p >= s.threshold or (self.pause_frame is None and p >= s.neg_threshold):
            self.pause_frame = None  # speech goes on (a short pause is bridged)
        elif self.pause_frame is None:
            self.pause_frame = i
        if self.pause_frame is not None and (i + 1 - self.pause_frame) * FRAME_SECONDS >= s.min_pause_s:
            self._close(self.pause_frame)
        elif self.pause_frame is None and (i + 1 - self.start_frame) * FRAME_SECONDS >= MAX_UTTERANCE_S:
            self._close(i + 1)
            self.speaking, self.start_frame = True, i + 1

    def _close(self, end_frame: int) -> None:
        self.speaking = False
        start_s, end_s = self.start_frame * FRAME_SECONDS, end_frame * FRAME_SECONDS
        if end_s - start_s < self.settings.min_speech_s:
            return  # a click or a breath
        lo = max(start_s - self.settings.pad_s, self.last_end_s)
        hi = min(end_s + self.settings.pad_s, self.audio_seconds_end())
        self.last_end_s = hi
        self.pending_utterances.append((round(lo, 3), round(hi, 3)))

    def audio_seconds_end(self) -> float:
        return (self.audio_from + self.audio.shape[0]) / SAMPLE_RATE

    def _slice(self, start_s: float, end_s: float) -> np.ndarray:
        a = max(0, int(start_s * SAMPLE_RATE) - self.audio_from)
        b = max(a, int(end_s * SAMPLE_RATE) - self.audio_from)
        return self.audio[a:b]

    def trim(self, now_s: float) -> None:
        """Drop audio no later answer needs: before the open utterance, or the last 4 s."""
        keep_from = now_s - CLIP_SECONDS  # outside an utterance, one window is kept
        if self.speaking:
            keep_from = min(keep_from, self.start_frame * FRAME_SECONDS - self.settings.pad_s)
        drop = int(max(0.0, keep_from) * SAMPLE_RATE) - self.audio_from
        if drop > 0:
            self.audio, self.audio_from = self.audio[drop:], self.audio_from + drop

    def windows_for_hop(
        self, probs: np.ndarray
    ) -> tuple[list[Window], list[tuple[int, float, float]], float]:
        """Take this hop's VAD frames. Returns the windows the hop needs, the utterances it
        closed (number, start s, end s) and the hop's end (s)."""
        first = self.frames_done
        self.heard_speech = bool(np.any(probs >= self.settings.threshold))
        for j, p in enumerate(probs):
            self._frame(first + j, float(p))
        self.frames_done += probs.shape[0]
        if self.finished and self.speaking and not self.vad.ready():
            self._close(self.pause_frame if self.pause_frame is not None else self.frames_done)
        self.hops_done += 1
        now = min(self.hops_done * HOP_S, self.seconds)
        windows, closed = [], []
        for start_s, end_s in self.pending_utterances:
            chunk = self._slice(start_s, end_s)
            if chunk.shape[0] < FRAME:
                continue
            self.utterances += 1
            closed.append((self.utterances, start_s, end_s))
            for _, window in utterance_windows(chunk):
                windows.append(Window(window, "utterance", self.utterances))
        self.pending_utterances.clear()
        if self.speaking:
            start = self.start_frame * FRAME_SECONDS - self.settings.pad_s
            kept = self._kept_frames_window(now) if now - start >= CLIP_SECONDS else None
            if kept is not None:  # a whole window of speech: its MFCCs from kept frames
                windows.append(Window(None, "reading", self.hops_done, window_mfcc(kept)))
                self.incremental_readings += 1
            else:  # a short utterance so far: tiled, as files and training fit short clips
                recent = self._slice(max(start, now - CLIP_SECONDS), now)
                if recent.shape[0] >= FRAME:
                    windows.append(Window(fit_window(recent), "reading", self.hops_done))
        else:
            self.mel_cache = self.mel_cache[:0]
        return windows, closed, now

    def _kept_frames_window(self, now: float) -> np.ndarray | None:
        """The log mel of the N_FRAMES frames ending at `now`, computing only the frames
        not kept from earlier readings (about 22 per hop instead of 173); None when the
        audio kept doesn't reach back a whole window."""
        half = N_FFT // 2
        end = min(int(now * SAMPLE_RATE), self.audio_from + self.audio.shape[0])
        last = (end - half) // HOP_LENGTH  # the last frame whose samples have all arrived
        first = last - N_FRAMES + 1
        if first < 0 or first * HOP_LENGTH - half < self.audio_from:
            return None
        have_to = self.mel_from + self.mel_cache.shape[0]
        if not self.mel_cache.shape[0] or not self.mel_from <= first <= have_to:
            self.mel_cache, self.mel_from, have_to = self.mel_cache[:0], first, first
        if have_to <= last:
            a = have_to * HOP_LENGTH - half - self.audio_from
            b = last * HOP_LENGTH + half - self.audio_from
            frames = sliding_window_view(self.audio[a:b], N_FFT)[::HOP_LENGTH]
            self.mel_cache = np.concatenate([self.mel_cache, frame_log_mel(frames)])
        self.mel_cache, self.mel_from = self.mel_cache[first - self.mel_from :], first
        return self.mel_cache[:N_FRAMES]

    def speech_now(self) -> bool:
        """Speech in the last hop, or an utterance still open and not pausing."""
        return self.heard_speech or (self.speaking and self.pause_frame is None)

    def vad_budget(self) -> int:
        """VAD frames that end inside the next hop (all that are left once finished)."""
        if self.finished:
            return self.vad.ready()
        boundary = int((self.hops_done + 1) * HOP_S * VAD_RATE) // FRAME
        return max(0, min(self.vad.ready(), boundary - self.frames_done))


def advance(
    sessions: list[LiveSession], classify: Any, labels: tuple[str, ...]
) -> list[list[dict[str, Any]]]:
    """One hop of every session (each must have one ready): its messages, in order.

    `classify` maps (n, N_FRAMES, N_MFCC) MFCC windows to (n, n_labels) probabilities
    (`EmotionModel.predict_features`).
    """
    probs = step_many([s.vad for s in sessions], [s.vad_budget() for s in sessions])
    plans = [s.windows_for_hop(p) for s, p in zip(sessions, probs, strict=True)]
    windows = [w for plan, _, _ in plans for w in plan]
    fresh = [w for w in windows if w.features is None]
    if fresh:
        for w, features in zip(fresh, mfcc(np.stack([w.samples for w in fresh])), strict=True):
            w.features = features
    answers = classify(np.stack([w.features for w in windows])) if windows else None
    out, offset = [], 0
    for session, (plan, closed, now) in zip(sessions, plans, strict=True):
        mine = answers[offset : offset + len(plan)] if answers is not None else None
        offset += len(plan)
        messages: list[dict[str, Any]] = []
        for number, start_s, end_s in closed:
            rows = [k for k, w in enumerate(plan) if w.kind == "utterance" and w.key == number]
            probs_u = mine[rows].mean(axis=0)
            messages.append({"type": "utterance", "index": number, "start": start_s, "end": end_s,
                             **_answer(probs_u, labels)})  # fmt: skip
            session.last_reading = probs_u  # between utterances, the last one's final answer
        reading = [k for k, w in enumerate(plan) if w.kind == "reading"]
        if reading:
            session.last_reading = mine[reading[0]]
        last = session.last_reading
        messages.append({"type": "reading", "t": round(now, 3), "speech": session.speech_now(),
                         **(_answer(last, labels) if last is not None else {"emotion": None, "confidence": None,
                                                                               "probabilities": None})})  # fmt: skip
        session.trim(now)
        out.append(messages)
    return out


def _answer(probs: np.ndarray, labels: tuple[str, ...]) -> dict[str, Any]:
    best = int(probs.argmax())
    return {"emotion": labels[best], "confidence": round(float(probs[best]), 6),
            "probabilities": {k: round(float(p), 6) for k, p in zip(labels, probs, strict=True)}}  # fmt: skip
