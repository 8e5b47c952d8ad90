"""The `predict.py` command: same inference code, no server."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

from ser.config import LABELS
from tests.conftest import REPO


def run(*args):
    return subprocess.run([sys.executable, "predict.py", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_folder_to_csv_and_jsonl(ravdess_root, tmp_path):
    for p in sorted((ravdess_root / "Actor_09").glob("*.flac"))[:3]:
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "broken.wav").write_bytes(b"RIFF nonsense")
    out = run(tmp_path, "--format", "csv")
    assert out.returncode == 1  # one file failed
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 4
    good = [r for r in rows if not r["error"]]
    assert len(good) == 3 and all(r["emotion"] in LABELS for r in good)
    assert sum(float(good[0][k]) for k in LABELS) == __import__("pytest").approx(1, abs=1e-4)
    assert [r for r in rows if r["error"]][0]["path"].endswith("broken.wav")

    out = run(*sorted(tmp_path.glob("*.flac")), "--format", "jsonl")
    assert out.returncode == 0
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 3 and all(line["emotion"] in LABELS for line in lines)


def test_table_output(speech_clip):
    out = run(speech_clip)
    assert out.returncode == 0 and speech_clip.name in out.stdout


def test_missing_file_output_file_top_k_and_workers(ravdess_root, tmp_path):
    clips = sorted((ravdess_root / "Actor_09").glob("*.flac"))[:4]
    out_file = tmp_path / "out.jsonl"
    out = run(*clips, tmp_path / "nope.wav", "--format", "jsonl", "-o", out_file, "--top-k", "2", "-j", "2")
    assert out.returncode == 1 and out.stdout == ""
    assert "4 of 5 files analysed" in out.stderr
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [line["path"] for line in lines] == [
        str(p) for p in [*clips, tmp_path / "nope.wav"]
    ]  # input order
    assert all(len(line["top_k"]) == 2 for line in lines[:4])
    assert lines[4]["error"] == {"code": "missing_file", "message": "no such file"}
    # the same answers with one worker
    one = run(*clips, "--format", "jsonl", "--top-k", "2")
    assert [json.loads(line)["probabilities"] for line in one.stdout.splitlines()] == [
        line["probabilities"] for line in lines[:4]
    ]


def test_browser_recording_by_suffix(speech_clip, tmp_path):
    from tests.audio_factory import encode_ffmpeg, read_mono

    (tmp_path / "memo.m4a").write_bytes(encode_ffmpeg(*read_mono(speech_clip), "m4a-aac"))
    (tmp_path / "note.webm").write_bytes(encode_ffmpeg(*read_mono(speech_clip), "webm-opus"))
    out = run(tmp_path, "--format", "csv")
    assert out.returncode == 0 and "memo.m4a" in out.stdout and "note.webm" in out.stdout


def test_timeline_rows_per_segment(ravdess_root, tmp_path):
    import numpy as np

    from tests.audio_factory import encode, long_recording, read_mono

    parts = [read_mono(p) for p in sorted((ravdess_root / "Actor_02").glob("*.flac"))[:2]]
    samples, _ = long_recording([s for s, _ in parts], parts[0][1], [1.0, 1.5, 1.0])
    path = tmp_path / "talk.wav"
    path.write_bytes(encode(samples.astype(np.float32), parts[0][1]))
    rows = list(csv.DictReader(io.StringIO(run(path, "--timeline", "--format", "csv").stdout)))
    assert [r["speech"] for r in rows] == ["False", "True", "False", "True", "False"]
    assert all(r["emotion"] in LABELS for r in rows if r["speech"] == "True")
    assert all(r["emotion"] == "" for r in rows if r["speech"] == "False")
    lines = [
        json.loads(line)
        for line in run(
            path, "--timeline", "--format", "jsonl", "--segmentation", "fixed"
        ).stdout.splitlines()
    ]
    assert len(lines) >= 3 and all(
        line["end"] - line["start"] == __import__("pytest").approx(4.0, abs=1e-3) for line in lines
    )
    table = run(path, "--timeline").stdout
    assert table.count("(silence)") == 3 and "talk.wav" in table
