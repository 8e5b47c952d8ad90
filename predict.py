"""Classify recordings without a server, with the same code the server runs.

    .venv/bin/python predict.py clip.wav other.m4a folder/         # a table
    .venv/bin/python predict.py folder/ --format csv -o emotions.csv  # or --format jsonl
    .venv/bin/python predict.py folder/ -j 4 --top-k 3 --model path/to/model.onnx
    .venv/bin/python predict.py meeting.m4a --timeline --format csv   # a row per segment

Recordings longer than 4 s are split into utterances where the speech is (silence is
listed, not classified); `--segmentation fixed` cuts them into 4 s windows every 2 s.
`--timeline` writes one row per segment (an utterance, a silence or a fixed window)
instead of one per file.

Folders are searched recursively for audio files (WAV, FLAC, AIFF, MP3, Ogg, Opus, WebM,
M4A/MP4, AAC). Files that can't be analysed (missing, unreadable, not audio, too short...)
are reported with the reason and don't stop the run; the exit status is 1 if any failed.
A progress bar runs on stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from ser.audio import DEFAULT_MAX_SECONDS
from ser.datasets import AUDIO_SUFFIXES
from ser.errors import InputError
from ser.inference import BUNDLED_MODEL, EmotionModel
from ser.segments import SEGMENTATIONS, Segmentation


def expand(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            yield path  # missing files too: each is reported as missing


def analyse(
    model: EmotionModel, path: Path, max_seconds: float, top_k: int, segmentation: Segmentation
) -> dict:
    """One file's result, or {"error": {"code", "message"}}: the API's shapes."""
    try:
        if not path.is_file():
            raise InputError("missing_file", "no such file" if not path.exists() else "not a file")
        return model.analyse(path, max_seconds, top_k, segmentation=segmentation)
    except InputError as e:
        return {"error": {"code": e.code, "message": e.message}}
    except OSError as e:
        return {"error": {"code": "unreadable", "message": e.strerror or str(e)}}


def timeline(result: dict) -> list[dict]:
    """A result's segments, or one segment spanning a one-window recording."""
    if "segments" in result:
        return result["segments"]
    whole = {k: result[k] for k in ("emotion", "confidence", "probabilities")}
    return [{"start": 0.0, "end": result["duration_s"], "speech": None, **whole}]


class Output:
    """Rows in the chosen format, to stdout or a file: one per file, or with `per_segment`
    one per segment of each file's timeline."""

    def __init__(self, fmt: str, out: TextIO, labels: list[str], per_segment: bool = False) -> None:
        self.fmt, self.out, self.labels, self.per_segment = fmt, out, labels, per_segment
        if fmt == "csv":
            self.csv = csv.writer(out)
            head = ["start", "end", "speech", "emotion", "confidence"] if per_segment else \
                ["emotion", "confidence", "uncertain", "duration_s"]  # fmt: skip
            self.csv.writerow(["path", *head, *self.labels, "error"])
        elif fmt == "table":
            print(f"{'emotion':<10} {'conf':>5} {'secs':>6}  path", file=out)

    def write(self, path: Path, result: dict) -> None:
        error = result.get("error")
        if self.fmt == "jsonl":
            if self.per_segment and not error:
                for seg in timeline(result):
                    print(json.dumps({"path": str(path), **seg}), file=self.out)
            else:
                print(json.dumps({"path": str(path), **result}), file=self.out)
        elif self.fmt == "csv":
            if error:
                blank = 5 if self.per_segment else 4
                self.csv.writerow(
                    [path, *[""] * blank, *[""] * len(self.labels), f"{error['code']}: {error['message']}"]
                )
            elif self.per_segment:
                for seg in timeline(result):
                    probs = seg.get("probabilities") or {}
                    self.csv.writerow([path, seg["start"], seg["end"], "" if seg.get("speech") is None else seg["speech"],
                                       seg.get("emotion", ""), seg.get("confidence", ""),
                                       *[probs.get(k, "") for k in self.labels], ""])  # fmt: skip
            else:
                self.csv.writerow([path, result["emotion"], result["confidence"], result["uncertain"], result["duration_s"],
                                   *[result["probabilities"][k] for k in self.labels], ""])  # fmt: skip
        elif error:
            print(
                f"{'error':<10} {'':>5} {'':>6}  {path}: {error['message']} ({error['code']})", file=self.out
            )
        else:
            ranked = ", ".join(f"{t['emotion']} {t['probability']:.2f}" for t in result["top_k"][1:])
            unsure = " (uncertain" + (f"; then {ranked})" if ranked else ")") if result["uncertain"] else ""
            line = f"{result['emotion']:<10} {result['confidence']:>5.2f} {result['duration_s']:>6.1f}  {path}{unsure}"
            print(line, file=self.out)
            if self.per_segment:
                for seg in timeline(result):
                    what = (
                        f"{seg['emotion']:<10} {seg['confidence']:>5.2f}"
                        if seg.get("emotion")
                        else f"{'(silence)':<16}"
                    )
                    print(f"  {what} {seg['start']:>7.2f}-{seg['end']:.2f} s", file=self.out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", type=Path, help="audio files or folders")
    p.add_argument("--format", choices=["table", "csv", "jsonl"], default="table")
    p.add_argument("-o", "--output", type=Path, help="write the results to this file instead of stdout")
    p.add_argument("--top-k", type=int, default=3, help="likeliest emotions listed per file (jsonl, table)")
    p.add_argument("-j", "--workers", type=int, default=1, help="files analysed in parallel")
    p.add_argument("--model", type=Path, default=BUNDLED_MODEL)
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS)
    p.add_argument(
        "--segmentation",
        choices=SEGMENTATIONS,
        default="speech",
        help="recordings longer than 4 s: split where the speech is (default) or every 2 s",
    )
    p.add_argument(
        "--timeline", action="store_true", help="one row per segment (utterance, silence or window)"
    )
    args = p.parse_args(argv)
    if not 1 <= args.top_k <= 8 or args.workers < 1:
        p.error("--top-k takes 1 to 8 and --workers at least 1")

    model = EmotionModel(args.model)
    files = list(expand(args.paths))
    if not files:
        print("no audio files found", file=sys.stderr)
        return 1
    out = args.output.open("w", newline="") if args.output else sys.stdout
    failed = 0
    try:
        writer = Output(args.format, out, list(model.labels), args.timeline)
        with ThreadPoolExecutor(args.workers) as pool, tqdm(total=len(files), unit="file", file=sys.stderr,
                                                           disable=None, leave=False) as bar:  # fmt: skip
            # map keeps the input order; onnxruntime, soxr and FFmpeg release the GIL
            for path, result in zip(
                files,
                pool.map(lambda f: analyse(model, f, args.max_seconds, args.top_k, args.segmentation), files),
                strict=True,
            ):
                failed += "error" in result
                writer.write(path, result)
                bar.update()
    finally:
        if args.output:
            out.close()
    if args.output:
        print(
            f"{len(files) - failed} of {len(files)} files analysed; results in {args.output}", file=sys.stderr
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
