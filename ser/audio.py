"""Decode any supported upload into mono float32 at the model's sample rate.

One function, `load_audio`, used by training, the command line and the server, so a clip
is turned into samples the same way everywhere. Every refusal is an `AudioError` whose
code, HTTP status and message say what was wrong with the input.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from ser.config import SAMPLE_RATE

MIN_INPUT_RATE = 8_000  # Hz: telephone speech; below this there is no usable spectrum
MAX_INPUT_RATE = 192_000  # Hz: studio ceiling
MAX_CHANNELS = 32  # more than any real recording; larger counts are lying headers
MIN_SECONDS = 0.5  # shorter clips carry too little prosody to classify
DEFAULT_MAX_SECONDS = 600.0  # 10 minutes
SILENCE_PEAK = 1e-4  # peak |sample| below -80 dBFS counts as silence
RESAMPLE_QUALITY = "HQ"  # soxr quality; VHQ costs 2x for no measurable feature change


@dataclass
class AudioError(ValueError):
    """Input that can't be analysed; `status` is the HTTP status the server answers with."""

    code: str
    message: str
    status: int = 400

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


Source = str | os.PathLike[str] | bytes | BinaryIO


def _open(source: Source) -> sf.SoundFile:
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        return sf.SoundFile(handle)
    except sf.LibsndfileError as e:
        text = str(e).lower()
        if "format not recognised" in text or "unknown format" in text:
            raise AudioError(
                "unsupported_format",
                "the file is not audio in a supported format (WAV, FLAC, OGG/Vorbis, MP3)",
                415,
            ) from e
        raise AudioError("corrupt_audio", f"the audio could not be decoded ({e})", 400) from e
    except (RuntimeError, TypeError) as e:  # libsndfile's other complaints, odd headers
        raise AudioError("corrupt_audio", f"the audio could not be decoded ({e})", 400) from e


def _check_header(f: sf.SoundFile, max_seconds: float) -> None:
    if not MIN_INPUT_RATE <= f.samplerate <= MAX_INPUT_RATE:
        raise AudioError(
            "unsupported_sample_rate",
            f"sample rate {f.samplerate} Hz is outside {MIN_INPUT_RATE}-{MAX_INPUT_RATE} Hz",
            415,
        )
    if not 1 <= f.channels <= MAX_CHANNELS:
        raise AudioError(
            "unsupported_channels", f"{f.channels} channels; expected 1 to {MAX_CHANNELS}", 415
        )
    # frames can be unknown (-1 / huge) for streams; the read below is bounded anyway
    if 0 < f.frames < 2**62 and f.frames / f.samplerate > max_seconds:
        raise AudioError(
            "too_long",
            f"the clip is {f.frames / f.samplerate:.1f} s long; the limit is {max_seconds:g} s",
            413,
        )


BLOCK_FRAMES = 65_536  # frames decoded at a time: bounds memory for 32-channel, 192 kHz input
ONE_SHOT_SAMPLES = 4_000_000  # frames x channels (16 MB float32) decoded in one read


def _read_blocks(f: sf.SoundFile, block_frames: int):
    """Blocks of the frames actually decoded, until the decoder returns none.

    Not `SoundFile.blocks()`: it counts down the header's frame count and yields its whole
    reused buffer each time, so a header that overstates the length (an MP3 Xing frame
    count, an Ogg granule position) yielded stale samples, some from an earlier decode.
    `read` returns only what was decoded.
    """
    while True:
        block = f.read(frames=block_frames, dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            return
        yield block
        if block.shape[0] < block_frames:
            return


def load_audio(
    source: Source,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    min_seconds: float = MIN_SECONDS,
) -> np.ndarray:
    """Decode, downmix and resample to `sample_rate`.

    Files over 4 M samples (frames x channels) are streamed block by block, which keeps
    memory at the size of the mono output (10 min at 22,050 Hz: 53 MB) whatever the
    input's rate and channel count, so a small, highly compressed upload can't expand
    into gigabytes.
    Returns float32 mono samples, shape (n,), n >= min_seconds * sample_rate.
    Raises AudioError for empty, undecodable, unsupported, too long or too short input,
    non-finite samples and silence.
    """
    if isinstance(source, bytes) and not source:
        raise AudioError("empty_file", "the uploaded file is empty", 400)
    out: list[np.ndarray] = []
    frames, peak = 0, 0.0
    with _open(source) as f:
        _check_header(f, max_seconds)
        rate = f.samplerate
        limit = int(max_seconds * rate)
        # Short files in one read and one resample (a stream's filter set-up costs ~1 ms a
        # request); long or many-channel files block by block through a resampling stream.
        one_shot = 0 < f.frames * f.channels <= ONE_SHOT_SAMPLES
        stream = None
        if rate != sample_rate and not one_shot:
            stream = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        try:
            for block in _read_blocks(f, f.frames if one_shot else BLOCK_FRAMES):
                frames += block.shape[0]
                if frames > limit:
                    raise AudioError("too_long", f"the clip is longer than the limit of {max_seconds:g} s", 413)
                # a float64 sum is non-finite exactly when a sample is (no overflow from
                # float32), and unlike isfinite() it allocates nothing the size of the clip
                if not np.isfinite(block.sum(dtype=np.float64)):
                    raise AudioError("invalid_samples", "the audio holds NaN or infinite samples", 422)
                mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
                if mono.size:
                    peak = max(peak, float(mono.max()), -float(mono.min()))
                out.append(stream.resample_chunk(mono) if stream else mono)
        except (sf.LibsndfileError, RuntimeError, MemoryError) as e:
            raise AudioError("corrupt_audio", f"the audio could not be decoded ({e})") from e
    if frames == 0:
        raise AudioError("no_audio", "the file holds no audio samples", 400)
    if frames < min_seconds * rate:
        raise AudioError("too_short", f"the clip is {frames / rate:.2f} s long; at least {min_seconds:g} s is needed", 422)
    if peak < SILENCE_PEAK:
        raise AudioError("silent_audio", "the clip is silent (peak below -80 dBFS)", 422)
    if stream:
        out.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    samples = np.concatenate(out)
    if one_shot and rate != sample_rate:
        samples = soxr.resample(samples, rate, sample_rate, quality=RESAMPLE_QUALITY)
    return np.ascontiguousarray(samples, dtype=np.float32)
