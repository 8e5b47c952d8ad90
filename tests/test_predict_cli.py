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
