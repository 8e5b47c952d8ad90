"""Decode any supported upload into mono float32 at the model's sample rate.

One function, `load_audio`, used by training, the command line and the server, so a clip
is turned into samples the same way everywhere. Every refusal is an `AudioError` whose
code, HTTP status and message say what was wrong with the input.

Two decoders, chosen by the container the bytes actually are (never by a file name or a
declared type): libsndfile for WAV, FLAC, AIFF, Ogg (Vorbis, Opus) and MP3, which it reads
about twice as fast as FFmpeg; FFmpeg (PyAV, whose wheels bundle it) for what browsers and
phones record: WebM/Matroska (Opus, Vorbis), MP4/M4A (AAC, ALAC) and raw AAC. Every other
container or codec either library could parse is refused, to keep the parsing surface to
what users have. Both decoders run through the same limits: duration, and the samples x
channels actually decoded, so a small file can't make the server decode hours of audio.
The commonest upload, a complete 16-bit PCM WAV, is read by the standard library's `wave`
instead of libsndfile: the same samples, without its per-file set-up (`_pcm16_wav`).
"""

from __future__ import annotations

import io
import os
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import BinaryIO

import av
import numpy as np
import soundfile as sf
import soxr

from ser.config import SAMPLE_RATE
from ser.errors import InputError, WorkLimit

MIN_INPUT_RATE = 8_000  # Hz: telephone speech; below this there is no usable spectrum
MAX_INPUT_RATE = 192_000  # Hz: studio ceiling
MAX_CHANNELS = 32  # more than any real recording; larger counts are lying headers
MIN_SECONDS = 0.5  # shorter clips carry too little prosody to classify
DEFAULT_MAX_SECONDS = 600.0  # 10 minutes
# Decoding work allowed per second of the duration limit: samples x channels of 48 kHz
# stereo. 10 minutes of it decode in about a second here; a legal 600 s, 192 kHz,
# 32-channel file (3.7 G samples, 44 s of CPU) is refused before decoding.
DECODE_SAMPLES_PER_SECOND = 48_000 * 2
SILENCE_PEAK = 1e-4  # peak |sample| below -80 dBFS counts as silence
RESAMPLE_QUALITY = "HQ"  # soxr quality; VHQ costs 2x for no measurable feature change
ACCEPTED = "WAV, FLAC, AIFF, MP3, Ogg (Vorbis, Opus), WebM (Opus, Vorbis), MP4/M4A (AAC, ALAC) or AAC"


class AudioError(InputError):
    """Audio that can't be analysed: empty, undecodable, unsupported, too long or short, silent."""


Source = str | os.PathLike[str] | bytes | bytearray | BinaryIO

BLOCK_FRAMES = 65_536  # frames decoded at a time: bounds memory for 32-channel, 192 kHz input
ONE_SHOT_SAMPLES = 4_000_000  # frames x channels (16 MB float32) decoded in one read
# libsndfile's names for the containers it may open, and FFmpeg's demuxers and codecs
LIBSNDFILE_FORMATS = {"WAV", "WAVEX", "RF64", "FLAC", "AIFF", "OGG", "MP3", "MPEG"}
LIBSNDFILE_CODECS = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW",
                     "IMA_ADPCM", "MS_ADPCM", "VORBIS", "OPUS", "MPEG_LAYER_I", "MPEG_LAYER_II",
                     "MPEG_LAYER_III"}  # fmt: skip
FFMPEG_DEMUXERS = {"webm": "matroska", "mp4": "mov", "aac": "aac"}
FFMPEG_CODECS = {"opus", "vorbis", "aac", "alac", "flac", "mp3", "mp3float"}


def sniff(head: bytes) -> str | None:
    """The container the first bytes say this is: wav, flac, aiff, ogg, mp3, webm, mp4,
    aac, or None for anything else."""
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:  # ADTS: sync, layer 00
            return "aac"
        if head[1] & 0xE0 == 0xE0 and head[1] & 0x06:  # MPEG audio frame sync, layer I-III
            return "mp3"
    return None


PCM_CODECS = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"}


def short_pcm_seconds(data: bytes | bytearray, max_seconds: float) -> float | None:
    """The length of uncompressed PCM (WAV, AIFF) of at most `max_seconds`, from its header,
    else None (compressed, longer, or unreadable: the caller takes its general path).

    An uncompressed file's decoding is bounded by its header: `wave` and libsndfile read no
    more frames than the data chunk declares, so this bounds the whole analysis's work.
    """
    kind = sniff(bytes(data[:16]))
    if kind not in ("wav", "aiff"):
        return None
    header = _wave_header(data) if kind == "wav" else None
    if header is not None:
        rate, channels, frames = header[0], header[1], header[3]
    else:
        try:
            info = sf.info(io.BytesIO(data))
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
            return None
        if info.subtype not in PCM_CODECS:
            return None
        rate, channels, frames = info.samplerate, info.channels, info.frames
    if not rate or not 1 <= channels <= MAX_CHANNELS:
        return None
    seconds = frames / rate
    return seconds if 0 < seconds <= max_seconds else None


@dataclass
class _Stream:
    """An opened file: what its header claims, and its decoded blocks (frames, channels)."""

    rate: int
    channels: int
    frames: int  # claimed by the header; 0 when unknown
    blocks: Callable[[int], Iterator[np.ndarray]]  # block size in frames -> float32 blocks
    finite: bool = False  # integer samples: no NaN or infinity to look for


def _read_bytes(source: Source) -> bytes | bytearray:
    if isinstance(source, (bytes, bytearray)):
        return source
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return f.read()
    return source.read()


def _corrupt(e: Exception) -> AudioError:
    return AudioError("corrupt_audio", f"the audio could not be decoded ({e})", 400)


@contextmanager
def _libsndfile(data: bytes) -> Iterator[_Stream]:
    try:
        f = sf.SoundFile(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:  # odd headers, bad chunks
        raise _corrupt(e) from e
    with f:
        if f.format not in LIBSNDFILE_FORMATS or f.subtype not in LIBSNDFILE_CODECS:
            raise AudioError("unsupported_format", f"{f.format} {f.subtype} audio is not accepted; send {ACCEPTED}", 415)
        frames = f.frames if 0 < f.frames < 2**62 else 0  # unknown (-1 / huge) for streams
        yield _Stream(f.samplerate, f.channels, frames, lambda n: _read_blocks(f, n), f.subtype.startswith("PCM_"))


_WAVE_ERRORS = (wave.Error, EOFError, ValueError, OverflowError)  # what `wave` raises on a bad header


def _wave_header(data: bytes | bytearray) -> tuple[int, int, int, int] | None:
    """(rate, channels, bytes per sample, frames) of a WAV that the standard library's
    `wave` reads (integer PCM in a RIFF file), or None."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
    except _WAVE_ERRORS:
        return None


def _pcm16_wav(data: bytes | bytearray) -> _Stream | None:
    """A complete 16-bit PCM WAV, read by `wave`; None for any other WAV (libsndfile's).

    The commonest upload, without libsndfile's virtual I/O, which sets up five Python
    callbacks per open and calls them for every read: with the header read twice, about
    5 % of a 5 s clip's request under load (py-spy). The same integers, scaled as
    `_read_blocks` scales them: the same floats (tests/test_audio.py). A file whose data
    is shorter than its header says, or anything else unusual, goes to libsndfile.
    """
    try:
        with wave.open(io.BytesIO(data)) as w:
            rate, channels, width, frames = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
            if width != 2 or not rate or not 1 <= channels <= MAX_CHANNELS or frames == 0:
                return None
            raw = w.readframes(frames)
    except (*_WAVE_ERRORS, MemoryError):
        return None
    if len(raw) != frames * channels * 2:
        return None
    samples = np.frombuffer(raw, "<i2").reshape(frames, channels)

    def blocks(block_frames: int) -> Iterator[np.ndarray]:
        for start in range(0, frames, block_frames):
            yield np.multiply(samples[start : start + block_frames], np.float32(1 / 32768), dtype=np.float32)

    return _Stream(rate, channels, frames, blocks, finite=True)


def _read_blocks(f: sf.SoundFile, block_frames: int) -> Iterator[np.ndarray]:
    """Blocks of the frames actually decoded, until the decoder returns none.

    Not `SoundFile.blocks()`: it counts down the header's frame count and yields its whole
    reused buffer each time, so a header that overstates the length (an MP3 Xing frame
    count, an Ogg granule position) yielded stale samples, some from an earlier decode.
    `read` returns only what was decoded.
    16-bit PCM is read as integers and scaled here: the same floats as libsndfile's own
    conversion (x / 32768), a quarter of its time (0.07 against 0.29 ms for 5 s at 48 kHz).
    """
    pcm16 = f.subtype == "PCM_16"
    while True:
        block = f.read(frames=block_frames, dtype="int16" if pcm16 else "float32", always_2d=True)
        if block.shape[0] == 0:
            return
        if pcm16:
            block = np.multiply(block, np.float32(1 / 32768), dtype=np.float32)
        yield block
        if block.shape[0] < block_frames:
            return


@contextmanager
def _ffmpeg(data: bytes, kind: str) -> Iterator[_Stream]:
    try:  # only the demuxer the bytes announced, not FFmpeg's guess among hundreds
        container = av.open(io.BytesIO(data), format=FFMPEG_DEMUXERS[kind], metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as e:
        raise _corrupt(e) from e
    with container:
        if not container.streams.audio:
            raise AudioError("no_audio", "the file has no audio stream", 400)
        stream = container.streams.audio[0]
        codec = stream.codec_context
        if codec.name not in FFMPEG_CODECS and not codec.name.startswith("pcm_"):
            raise AudioError("unsupported_format", f"{codec.name} audio is not accepted; send {ACCEPTED}", 415)
        rate = codec.sample_rate or 0
        if not rate or not codec.channels:  # FFmpeg found no usable stream parameters
            raise AudioError("corrupt_audio", "the audio stream's header is unreadable", 400)
        claimed = int(container.duration * rate / 1e6) if container.duration and container.duration > 0 else 0

        def blocks(_: int) -> Iterator[np.ndarray]:
            # planar float32 at the source rate and layout: downmixing and resampling
            # stay ours, as for libsndfile
            resampler = av.AudioResampler(format="fltp")
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    yield out.to_ndarray().T
            for out in resampler.resample(None):
                yield out.to_ndarray().T

        yield _Stream(rate, codec.channels, claimed, blocks)


def _check_header(s: _Stream, max_seconds: float, budget: int) -> None:
    if not MIN_INPUT_RATE <= s.rate <= MAX_INPUT_RATE:
        raise AudioError(
            "unsupported_sample_rate", f"sample rate {s.rate} Hz is outside {MIN_INPUT_RATE}-{MAX_INPUT_RATE} Hz", 415
        )
    if not 1 <= s.channels <= MAX_CHANNELS:
        raise AudioError("unsupported_channels", f"{s.channels} channels; expected 1 to {MAX_CHANNELS}", 415)
    if s.frames / s.rate > max_seconds:
        raise AudioError("too_long", f"the clip is {s.frames / s.rate:.1f} s long; the limit is {max_seconds:g} s", 413)
    if s.frames * s.channels > budget:
        raise AudioError("too_much_audio", _budget_message(budget), 413)


def _budget_message(budget: int) -> str:
    return (f"decoding this file means more than {budget:,} samples x channels (its rate and channel count "
            f"times its length); send it at 48 kHz stereo or less, or shorter")  # fmt: skip


def load_audio(
    source: Source,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    min_seconds: float = MIN_SECONDS,
    limit: WorkLimit | None = None,
) -> np.ndarray:
    """Decode, downmix and resample to `sample_rate`.

    Long or many-channel files are streamed block by block, which keeps memory at the size
    of the mono output (10 min at 22,050 Hz: 53 MB) whatever the input's rate and channel
    count, and the samples x channels decoded are counted against a budget of
    `max_seconds` of 48 kHz stereo, so a small, highly compressed upload can't expand into
    gigabytes or minutes of CPU. Lengths are counted from what was decoded, never taken
    from a header.
    Returns float32 mono samples, shape (n,), n >= min_seconds * sample_rate.
    Raises AudioError for empty, undecodable, unsupported, too long or too short input,
    non-finite samples and silence; `limit` (the server's) stops decoding when the request's
    deadline passes or its client leaves.
    """
    data = _read_bytes(source)
    if not data:
        raise AudioError("empty_file", "the uploaded file is empty", 400)
    kind = sniff(data[:16])
    if kind is None:
        raise AudioError("unsupported_format", f"the file is not audio in a supported format ({ACCEPTED})", 415)
    budget = int(max_seconds * DECODE_SAMPLES_PER_SECOND)
    if kind in FFMPEG_DEMUXERS:
        opened = _ffmpeg(data, kind)
    else:
        pcm16 = _pcm16_wav(data) if kind == "wav" else None
        opened = nullcontext(pcm16) if pcm16 else _libsndfile(data)
    out: list[np.ndarray] = []
    frames, decoded, peak = 0, 0, 0.0
    with opened as s:
        _check_header(s, max_seconds, budget)
        max_frames = int(max_seconds * s.rate)
        # Short files in one read and one resample (a stream's filter set-up costs ~1 ms a
        # request); long, many-channel or unknown-length files through a resampling stream.
        one_shot = 0 < s.frames * s.channels <= ONE_SHOT_SAMPLES
        stream = None
        if s.rate != sample_rate and not one_shot:
            stream = soxr.ResampleStream(s.rate, sample_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        try:
            for block in s.blocks(s.frames if one_shot else BLOCK_FRAMES):
                if limit is not None:
                    limit.check()
                frames += block.shape[0]
                decoded += block.size
                if frames > max_frames:
                    raise AudioError("too_long", f"the clip is longer than the limit of {max_seconds:g} s", 413)
                if decoded > budget:
                    raise AudioError("too_much_audio", _budget_message(budget), 413)
                # a float64 sum is non-finite exactly when a sample is (no overflow from
                # float32), and unlike isfinite() it allocates nothing the size of the clip
                if not s.finite and not np.isfinite(block.sum(dtype=np.float64)):
                    raise AudioError("invalid_samples", "the audio holds NaN or infinite samples", 422)
                mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
                if mono.size:
                    peak = max(peak, float(mono.max()), -float(mono.min()))
                out.append(stream.resample_chunk(mono) if stream else np.ascontiguousarray(mono))
        except InputError:
            raise
        except (sf.LibsndfileError, av.FFmpegError, RuntimeError, ValueError, MemoryError) as e:
            raise _corrupt(e) from e
    if frames == 0:
        raise AudioError("no_audio", "the file holds no audio samples", 400)
    if frames < min_seconds * s.rate:
        raise AudioError("too_short", f"the clip is {frames / s.rate:.2f} s long; at least {min_seconds:g} s is needed", 422)
    if peak < SILENCE_PEAK:
        raise AudioError("silent_audio", "the clip is silent (peak below -80 dBFS)", 422)
    if stream:
        out.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    samples = np.concatenate(out)
    if not stream and s.rate != sample_rate:
        samples = soxr.resample(samples, s.rate, sample_rate, quality=RESAMPLE_QUALITY)
    return np.ascontiguousarray(samples, dtype=np.float32)
