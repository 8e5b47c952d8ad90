"""Classify recordings without a server, with the same code the server runs.

    python predict.py clip.wav other.flac folder/            # a table
    python predict.py folder/ --format csv > emotions.csv     # or --format jsonl
    python predict.py folder/ --model path/to/model.onnx

Folders are searched recursively for .wav, .flac, .ogg and .mp3. Files that can't be
analysed are reported with the reason and don't stop the run; the exit status is 1 if
any failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from ser.audio import DEFAULT_MAX_SECONDS, AudioError
from ser.datasets import AUDIO_SUFFIXES
from ser.inference import BUNDLED_MODEL, EmotionModel


def expand(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            yield path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", type=Path, help="audio files or folders")
    p.add_argument("--format", choices=["table", "csv", "jsonl"], default="table")
    p.add_argument("--model", type=Path, default=BUNDLED_MODEL)
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS)
    args = p.parse_args(argv)

    model = EmotionModel(args.model)
    files = list(expand(args.paths))
    if not files:
        print("no audio files found", file=sys.stderr)
        return 1
    labels = list(model.labels)
    writer = None
    if args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(["path", "emotion", "confidence", "duration_s", *labels, "error"])
    elif args.format == "table":
        print(f"{'emotion':<10} {'conf':>5} {'secs':>6}  path")
    progress = _progress(files) if sys.stderr.isatty() and len(files) > 5 else files
    failed = 0
    for path in progress:
        try:
            result = model.analyse(path, max_seconds=args.max_seconds)
        except (AudioError, OSError) as e:
            failed += 1
            error = e.message if isinstance(e, AudioError) else str(e)
            if writer:
                writer.writerow([path, "", "", "", *[""] * len(labels), error])
            elif args.format == "jsonl":
                print(json.dumps({"path": str(path), "error": error}))
            else:
                print(f"{'error':<10} {'':>5} {'':>6}  {path}: {error}")
            continue
        if writer:
            writer.writerow([path, result["emotion"], result["confidence"], result["duration_s"],
                             *[result["probabilities"][k] for k in labels], ""])  # fmt: skip
        elif args.format == "jsonl":
            print(json.dumps({"path": str(path), **result}))
        else:
            print(f"{result['emotion']:<10} {result['confidence']:>5.2f} {result['duration_s']:>6.1f}  {path}")
    return 1 if failed else 0


def _progress(files: list[Path]):
    try:
        from tqdm import tqdm
    except ImportError:  # serving installs have no tqdm
        return files
    return tqdm(files, unit="file", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
