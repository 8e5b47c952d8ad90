"""The README's commands, run as written (against the test server, on real speech), so
the README stays true: the API examples (curl, BentoML's client), the command line and
the load test."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.audio_factory import encode, encode_ffmpeg, long_recording, read_mono
from tests.conftest import REPO

pytestmark = pytest.mark.slow
README = (REPO / "README.md").read_text()


def blocks(section: str, lang: str) -> list[str]:
    """The fenced `lang` blocks of the README section titled `section`."""
    body = README.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{lang}\n(.*?)```", body, re.S)


def commands(block: str) -> list[str]:
    return [
        line.split("  #", 1)[0].strip()
        for line in block.splitlines()
        if line.strip() and not line.startswith("#")
    ]


@pytest.fixture()
def workdir(tmp_path: Path, speech_clip: Path) -> Path:
    """A folder with the files the README's examples name, and links to .venv and predict.py."""
    samples, rate = read_mono(speech_clip)
    (tmp_path / "clip.wav").write_bytes(encode(samples, rate, "WAV", "PCM_16"))
    (tmp_path / "memo.m4a").write_bytes(encode_ffmpeg(samples, rate, "m4a-aac"))
    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings" / "a.flac").write_bytes(speech_clip.read_bytes())
    talk, _ = long_recording([samples, samples[::-1].copy()], rate, [0.8, 1.5, 0.8])  # speech, pause, speech
    (tmp_path / "talk.wav").write_bytes(encode(talk, rate, "WAV", "PCM_16"))
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (tmp_path / "predict.py").symlink_to(REPO / "predict.py")
    return tmp_path


def run(cmd: str, cwd: Path, server_url: str, timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = cmd.replace("http://localhost:3000", server_url).replace(
        "ws://localhost:3000", server_url.replace("http", "ws")
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_api_examples(server, workdir):
    curl, python = blocks("The API", "bash")[0], blocks("The API", "python")[0]
    for cmd in commands(curl):
        out = run(cmd, workdir, server.url)
        assert out.returncode == 0, (cmd, out.stderr)
        answer = json.loads(out.stdout)
        assert answer["emotion"] and "uncertain" in answer, (cmd, answer)
    out = run(f"{shlex.quote(sys.executable)} -c {shlex.quote(python)}", workdir, server.url)
    assert out.returncode == 0, out.stderr
    emotion, confidence, uncertain = out.stdout.split()
    assert uncertain in ("True", "False") and 0 < float(confidence) <= 1


def test_command_line_examples(server, workdir):
    block = blocks("The API", "bash")[1]
    for cmd in commands(block):
        out = run(cmd, workdir, server.url)
        assert out.returncode == 0, (cmd, out.stdout, out.stderr)
    assert (workdir / "emotions.csv").read_text().count("\n") == 2  # header and the one file


def test_long_recording_and_live_examples(server, workdir):
    curl_speech, curl_fixed, timeline, live = commands(blocks("Long recordings and live streams", "bash")[0])
    answer = json.loads(run(curl_speech, workdir, server.url).stdout)
    assert answer["segmentation"] == "speech" and [s["speech"] for s in answer["segments"]].count(True) == 2
    assert json.loads(run(curl_fixed, workdir, server.url).stdout)["segmentation"] == "fixed"
    rows = run(timeline, workdir, server.url).stdout.splitlines()
    assert rows[0].startswith("path,start,end,speech") and len(rows) == 6
    out = run(live, workdir, server.url)
    assert out.returncode == 0 and "utterance 2" in out.stdout and "end:" in out.stdout, (
        out.stdout + out.stderr
    )


def test_load_test_command(server):
    """./loadtest.sh as the README runs it, shortened to 5 s."""
    out = run(
        f"./loadtest.sh -u 2 -r 2 -t 5s --host {server.url} --only-summary", REPO, server.url, timeout=300
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Aggregated" in out.stdout + out.stderr
