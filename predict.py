"""Classify recordings without a server, with the same code the server runs.

    .venv/bin/python predict.py clip.wav other.m4a folder/         # a table
    .venv/bin/python predict.py folder/ --format csv -o emotions.csv  # or --format jsonl
    .venv/bin/python predict.py folder/ -j 4 --top-k 3 --model path/to/model.onnx

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


def expand(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            yield path  # missing files too: each is reported as missing


def analyse(model: EmotionModel, path: Path, max_seconds: float, top_k: int) -> dict:
    """One file's result, or {"error": {"code", "message"}}: the API's shapes."""
    try:
        if not path.is_file():
            raise InputError("missing_file", "no such file" if not path.exists() else "not a file")
        return model.analyse(path, max_seconds, top_k)
    except InputError as e:
        return {"error": {"code": e.code, "message": e.message}}
    except OSError as e:
        return {"error": {"code": "unreadable", "message": e.strerror or str(e)}}


class Output:
    """Rows in the chosen format, to stdout or a file."""

    def __init__(self, fmt: str, out: TextIO, labels: list[str], top_k: int) -> None:
        self.fmt, self.out, self.labels, self.top_k = fmt, out, labels, top_k
        if fmt == "csv":
            self.csv = csv.writer(out)
            self.csv.writerow(["path", "emotion", "confidence", "uncertain", "duration_s", *self.labels, "error"])
        elif fmt == "table":
            print(f"{'emotion':<10} {'conf':>5} {'secs':>6}  path", file=out)

    def write(self, path: Path, result: dict) -> None:
        error = result.get("error")
        if self.fmt == "jsonl":
            print(json.dumps({"path": str(path), **result}), file=self.out)
        elif self.fmt == "csv":
            if error:
                self.csv.writerow([path, "", "", "", "", *[""] * len(self.labels), f"{error['code']}: {error['message']}"])
            else:
                self.csv.writerow([path, result["emotion"], result["confidence"], result["uncertain"], result["duration_s"],
                                   *[result["probabilities"][k] for k in self.labels], ""])  # fmt: skip
        elif error:
            print(f"{'error':<10} {'':>5} {'':>6}  {path}: {error['message']} ({error['code']})", file=self.out)
        else:
            ranked = ", ".join(f"{t['emotion']} {t['probability']:.2f}" for t in result["top_k"][1:])
            unsure = " (uncertain" + (f"; then {ranked})" if ranked else ")") if result["uncertain"] else ""
            line = f"{result['emotion']:<10} {result['confidence']:>5.2f} {result['duration_s']:>6.1f}  {path}{unsure}"
            print(line, file=self.out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", type=Path, help="audio files or folders")
    p.add_argument("--format", choices=["table", "csv", "jsonl"], default="table")
    p.add_argument("-o", "--output", type=Path, help="write the results to this file instead of stdout")
    p.add_argument("--top-k", type=int, default=3, help="likeliest emotions listed per file (jsonl, table)")
    p.add_argument("-j", "--workers", type=int, default=1, help="files analysed in parallel")
    p.add_argument("--model", type=Path, default=BUNDLED_MODEL)
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS)
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
        writer = Output(args.format, out, list(model.labels), args.top_k)
        with ThreadPoolExecutor(args.workers) as pool, tqdm(total=len(files), unit="file", file=sys.stderr,
                                                           disable=None, leave=False) as bar:  # fmt: skip
            # map keeps the input order; onnxruntime, soxr and FFmpeg release the GIL
            for path, result in zip(files, pool.map(lambda f: analyse(model, f, args.max_seconds, args.top_k), files), strict=True):
                failed += "error" in result
                writer.write(path, result)
                bar.update()
    finally:
        if args.output:
            out.close()
    if args.output:
        print(f"{len(files) - failed} of {len(files)} files analysed; results in {args.output}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
