"""Build test recordings in memory from real speech: other formats, rates and channels."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    return data.mean(axis=1), rate


def encode(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = None,
           channels: int = 1) -> bytes:  # fmt: skip
    """samples (mono) at `rate` -> file bytes in `fmt`/`subtype`, duplicated to `channels`."""
    data = np.repeat(samples[:, None], channels, axis=1) if channels > 1 else samples
    buf = io.BytesIO()
    sf.write(buf, data, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def resampled(
    path: Path, rate: int, fmt: str = "WAV", subtype: str | None = "PCM_16", channels: int = 1
) -> bytes:
    samples, src = read_mono(path)
    if rate != src:
        samples = soxr.resample(samples, src, rate, quality="VHQ")
    return encode(np.clip(samples, -1, 1), rate, fmt, subtype, channels)


# (container, codec) as browsers, phones and FFmpeg write them: the tests' real encoders
FFMPEG_FORMATS = {
    "webm-opus": ("webm", "libopus"),  # Chromium's and Firefox's MediaRecorder
    "ogg-opus": ("ogg", "libopus"),  # WhatsApp voice notes, Firefox
    "m4a-aac": ("ipod", "aac"),  # iPhone voice memos, most Android recorders
    "mp4-aac": ("mp4", "aac"),  # Safari's MediaRecorder
    "aac-adts": ("adts", "aac"),
    "mp3-lame": ("mp3", "libmp3lame"),
    "aiff": ("aiff", "pcm_s16be"),
}


def encode_ffmpeg(samples: np.ndarray, rate: int, kind: str, channels: int = 1) -> bytes:
    """samples (mono float32) -> file bytes written by FFmpeg's own muxer and encoder."""
    import av

    container_format, codec = FFMPEG_FORMATS[kind]
    layout = "mono" if channels == 1 else "stereo"
    out_rate = 48_000 if codec == "libopus" else rate  # Opus runs at 48 kHz
    buf = io.BytesIO()
    with av.open(buf, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=out_rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.repeat(samples[None, :], channels, axis=0).astype(np.float32),
                                           format="fltp", layout=layout)  # fmt: skip
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=out_rate)
        for f in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(f):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def speech_span(x: np.ndarray, rate: int) -> tuple[float, float]:
    """Where a clip's speech is: first to last 10 ms frame within 35 dB of its loudest."""
    frame = rate // 100
    n = len(x) // frame
    energy = 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() - 35)
    return loud[0] * frame / rate, (loud[-1] + 1) * frame / rate


def long_recording(
    clips: list[np.ndarray], rate: int, pauses: list[float]
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Clips joined with pauses of faint noise (60 dB below the speech): the recording and
    each clip's speech span in it (seconds). `pauses` has one more entry than `clips`."""
    rng = np.random.default_rng(0)
    level = np.sqrt(np.mean(np.concatenate(clips) ** 2)) * 1e-3
    parts, spans, t = [], [], 0.0
    for pause, x in zip(pauses, [*clips, None], strict=True):
        parts.append((rng.standard_normal(int(pause * rate)) * level).astype(np.float32))
        t += pause
        if x is not None:
            a, b = speech_span(x, rate)
            spans.append((t + a, t + b))
            parts.append(x.astype(np.float32))
            t += len(x) / rate
    return np.concatenate(parts), spans
