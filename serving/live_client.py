"""Stream a recording or the microphone to a running server's /live and print the readings.

    .venv/bin/python -m serving.live_client stream clip.wav                # at real-time rate
    .venv/bin/python -m serving.live_client stream meeting.m4a --speed 0   # as fast as it goes
    .venv/bin/python -m serving.live_client stream --mic                   # the default microphone
    .venv/bin/python -m serving.live_client stream clip.wav --jsonl        # the server's messages

Files are decoded with the server's own decoder (any format /predict takes) and sent as
16-bit PCM at 16 kHz in 0.1 s frames. `--mic` captures with FFmpeg (PyAV): ALSA's
"default" device on Linux, AVFoundation's first on macOS; `--device` and `--device-format`
pick another FFmpeg input (for example `--device-format lavfi --device amovie=clip.wav`
plays a file through the capture path in real time). Each reading's latency is the time
from sending the frame that completed its half second to receiving the reading.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr
from websockets.asyncio.client import connect

from ser.audio import load_audio
from ser.config import SAMPLE_RATE

RATE = 16_000  # sent sample rate: what the VAD hears; the model's features need no more for speech
FRAME_S = 0.1


@dataclass
class StreamResult:
    messages: list[dict[str, Any]] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)  # per reading
    close_code: int | None = None
    close_reason: str = ""


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


async def file_frames(samples: np.ndarray, speed: float = 1.0) -> AsyncIterator[bytes]:
    """16 kHz mono float32 samples as 0.1 s PCM frames, paced at `speed` x real time (0: no pacing)."""
    n = int(FRAME_S * RATE)
    start = time.monotonic()
    for i in range(0, samples.shape[0], n):
        if speed > 0:
            await asyncio.sleep(max(0.0, start + i / RATE / speed - time.monotonic()))
        yield pcm16(samples[i : i + n])


async def device_frames(
    device: str, device_format: str, stop: asyncio.Event | None = None
) -> AsyncIterator[bytes]:
    """Capture from an FFmpeg input device, resampled to 16 kHz mono 16-bit, until the
    input ends or `stop` is set (Ctrl-C)."""
    import av

    container = av.open(device, format=device_format)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    frames = container.decode(audio=0)
    try:
        while stop is None or not stop.is_set():
            frame = await asyncio.to_thread(next, frames, None)
            if frame is None:
                return
            for out in resampler.resample(frame):
                yield bytes(out.planes[0])[: out.samples * 2]
    finally:
        container.close()


async def stream(url: str, frames: AsyncIterator[bytes], on_message: Callable[[dict], None] | None = None,
                 origin: str | None = None) -> StreamResult:  # fmt: skip
    """Stream PCM frames (16 kHz s16le) to /live; collect the server's messages."""
    result = StreamResult()
    sent_at: list[tuple[float, float]] = []  # (audio seconds sent so far, when)
    headers = {"Origin": origin} if origin else None
    async with connect(url, additional_headers=headers, max_size=2**20, open_timeout=30) as ws:
        await ws.send(json.dumps({"type": "start", "format": "s16le", "sample_rate": RATE, "channels": 1}))
        ready = json.loads(await ws.recv())
        result.messages.append(ready)
        if ready.get("type") != "ready":
            await _drain(ws, result)
            return result

        async def send() -> None:
            seconds = 0.0
            async for frame in frames:
                await ws.send(frame)
                seconds += len(frame) / 2 / RATE
                sent_at.append((seconds, time.monotonic()))
            await ws.send(json.dumps({"type": "end"}))

        sender = asyncio.create_task(send())
        try:
            async for raw in ws:
                message = json.loads(raw)
                result.messages.append(message)
                if message.get("type") == "reading":
                    sent = next((when for seconds, when in sent_at if seconds >= message["t"] - 1e-6), None)
                    if sent is not None:
                        result.latencies_s.append(time.monotonic() - sent)
                if on_message:
                    on_message(message)
        finally:
            sender.cancel()
        result.close_code, result.close_reason = ws.close_code, ws.close_reason or ""
    return result


async def _drain(ws: Any, result: StreamResult) -> None:
    try:
        async for raw in ws:
            result.messages.append(json.loads(raw))
    except Exception:  # noqa: BLE001 - the server closed; its code says why
        pass
    result.close_code, result.close_reason = ws.close_code, ws.close_reason or ""


def printer(jsonl: bool) -> Callable[[dict], None]:
    def show(m: dict) -> None:
        if jsonl:
            print(json.dumps(m), flush=True)
        elif m["type"] == "reading":
            what = (
                f"{m['emotion']:<10} {m['confidence']:.2f} {'#' * round(10 * m['confidence'])}"
                if m["emotion"]
                else "-"
            )
            print(f"{m['t']:7.1f} s  {'speech ' if m['speech'] else 'silence'}  {what}", flush=True)
        elif m["type"] == "utterance":
            print(
                f"  utterance {m['index']}: {m['start']:.2f}-{m['end']:.2f} s  {m['emotion']} {m['confidence']:.2f}",
                flush=True,
            )
        elif m["type"] == "error":
            print(f"error: {m['error']['message']} ({m['error']['code']})", file=sys.stderr, flush=True)
        elif m["type"] == "end":
            print(f"end: {m['duration_s']:.1f} s of audio, {m['utterances']} utterances", flush=True)

    return show


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stream", help="stream a file or the microphone to /live")
    s.add_argument("file", nargs="?", type=Path)
    s.add_argument("--mic", action="store_true", help="capture from a microphone instead of a file")
    s.add_argument("--device", help="FFmpeg input device (default: ALSA 'default', AVFoundation ':0')")
    s.add_argument("--device-format", help="FFmpeg input format (alsa, pulse, avfoundation, lavfi, ...)")
    s.add_argument("--url", default="ws://127.0.0.1:3000/live")
    s.add_argument(
        "--speed", type=float, default=1.0, help="x real time for files; 0 sends as fast as it can"
    )
    s.add_argument("--jsonl", action="store_true", help="print the server's messages as JSON lines")
    args = p.parse_args(argv)
    if args.mic == (args.file is not None):
        p.error("give a FILE or --mic")

    async def run() -> StreamResult:
        if args.mic:  # Ctrl-C ends the capture; the server then closes the last utterance
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
            default_format, default_device = (
                ("avfoundation", ":0") if sys.platform == "darwin" else ("alsa", "default")
            )
            frames = device_frames(args.device or default_device, args.device_format or default_format, stop)
        else:
            samples = soxr.resample(load_audio(args.file), SAMPLE_RATE, RATE).astype(np.float32)
            frames = file_frames(samples, args.speed)
        return await stream(args.url, frames, printer(args.jsonl))

    try:
        result = asyncio.run(run())
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        print(f"cannot reach {args.url}: {e}", file=sys.stderr)
        return 1
    if result.latencies_s and not args.jsonl and (args.mic or args.speed > 0):  # sent all at once: no latency
        lat = np.array(result.latencies_s) * 1000
        print(
            f"latency: p50 {np.percentile(lat, 50):.0f} ms, p95 {np.percentile(lat, 95):.0f} ms over {len(lat)} readings"
        )
    return 0 if result.close_code == 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
