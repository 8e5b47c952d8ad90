"""Concurrent live streams at real-time rate: how many a server keeps up with.

    python -m loadtests.live_benchmark [--counts 1,25,50,100,150] [--seconds 20] [--url ws://...]

Each stream sends 16 kHz 16-bit speech in 0.1 s frames at real-time rate (RAVDESS actor
01's clips end to end, 1.5 s apart, each stream starting at a different clip; a generated
voice without the corpus), for `--seconds` of audio; streams start spread over the first
second. Update latency: from sending the frame that completes a half second of audio to
receiving that half second's reading. Per stream count: readings received against
readings owed, latency p50/p95/p99, and p95 as a ratio of the 1-stream p95 measured in the
same run. Starts its own server (2 workers, as `./serve.sh`) unless `--url` is given.
Writes loadtests/results/live_benchmark.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import soxr

from loadtests.clips import BENCH_CLIP, DEFAULT_DATA, synthetic_voice
from serving.live_client import RATE, file_frames, stream

RESULTS = Path(__file__).resolve().parent / "results" / "live_benchmark.json"


def speech(seconds: float, data_dir: Path) -> np.ndarray:
    """`seconds` of 16 kHz speech with pauses, looped from the corpus or generated."""
    from ser.audio import load_audio

    first = data_dir / BENCH_CLIP
    paths = sorted(first.parent.glob("*.flac")) if first.exists() else []
    gap = np.zeros(int(1.5 * RATE), np.float32)
    if paths:
        parts = [np.concatenate([soxr.resample(load_audio(p), 22_050, RATE), gap]) for p in paths[:12]]
    else:
        parts = [
            np.concatenate([soxr.resample(synthetic_voice(2.5, seed=i), 24_000, RATE), gap]) for i in range(6)
        ]
    audio = np.concatenate(parts).astype(np.float32)
    return np.resize(audio, int(seconds * RATE))


async def run_count(url: str, audio: np.ndarray, count: int) -> dict:
    async def one(i: int) -> dict:
        await asyncio.sleep(i / count)  # spread the starts over a second
        offset = (i * 7 * RATE) % audio.shape[0]
        mine = np.roll(audio, -offset)
        result = await stream(url, file_frames(mine, speed=1.0))
        readings = sum(m.get("type") == "reading" for m in result.messages)
        return {"latencies": result.latencies_s, "readings": readings, "close": result.close_code}

    results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    ok = [r for r in results if isinstance(r, dict)]
    lat = np.array([x for r in ok for x in r["latencies"]]) * 1000
    owed = count * int(np.ceil(audio.shape[0] / RATE / 0.5))
    return {
        "streams": count,
        "failed_streams": count - sum(r["close"] == 1000 for r in ok),
        "readings": sum(r["readings"] for r in ok),
        "readings_owed": owed,
        "latency_ms": {
            q: round(float(np.percentile(lat, int(q[1:]))), 1) if lat.size else None
            for q in ("p50", "p95", "p99")
        },  # fmt: skip
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--counts", default="1,25,50,100,150")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--url")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    audio = speech(args.seconds, args.data)
    server = None
    if args.url is None:
        from loadtests.servers import start_service

        tmp = Path(tempfile.mkdtemp(prefix="live-bench-"))
        server = start_service(tmp)
        url = server.url.replace("http://", "ws://") + "/live"
    else:
        url = args.url
    rows = []
    try:
        for count in counts:
            row = asyncio.run(run_count(url, audio, count))
            rows.append(row)
            base = rows[0]["latency_ms"]["p95"]
            ratio = row["latency_ms"]["p95"] / base if base and row["latency_ms"]["p95"] else float("nan")
            print(f"{count:4d} streams: {row['readings']}/{row['readings_owed']} readings, failed {row['failed_streams']}, "
                  f"latency p50 {row['latency_ms']['p50']} ms, p95 {row['latency_ms']['p95']} ms "
                  f"({ratio:.1f}x the 1-stream p95), p99 {row['latency_ms']['p99']} ms", flush=True)  # fmt: skip
    finally:
        if server is not None:
            server.stop()
    speech_source = (
        "RAVDESS actor 01's clips, 1.5 s apart" if (args.data / BENCH_CLIP).exists() else "a generated voice"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "measured": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "protocol": f"{args.seconds:g} s of {speech_source} per stream at real-time rate, 0.1 s frames of 16 kHz "
                    "s16le; latency: frame completing a 0.5 s hop sent -> its reading received",
        "results": rows,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
