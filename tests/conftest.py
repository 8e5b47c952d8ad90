"""Shared fixtures: real speech from SER_DATA_DIR, and a real `bentoml serve` process."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from loadtests.servers import Server, start_service

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("SER_DATA_DIR", REPO.parent / "shared" / "data"))
RAVDESS = DATA_DIR / "ravdess"
EMODB = DATA_DIR / "emodb"


def need(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"real speech not found at {path} (set SER_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def ravdess_root() -> Path:
    return need(RAVDESS)


@pytest.fixture(scope="session")
def emodb_root() -> Path:
    return need(EMODB)


@pytest.fixture(scope="session")
def speech_clip(ravdess_root: Path) -> Path:
    """A 3.9 s angry RAVDESS clip (actor 01), 24 kHz FLAC."""
    return ravdess_root / "Actor_01" / "03-01-05-01-01-01-01.flac"


@pytest.fixture(scope="session")
def sure_and_unsure_clips(server: Server, ravdess_root: Path) -> tuple[Path, Path]:
    """Two of actor 01's clips, as the served model answers them: the first not flagged
    `uncertain`, the second flagged. Chosen by asking, so that a retrained model (whose
    confidences move) still gives the tests one of each."""
    import requests

    answers = {}
    for clip in sorted((ravdess_root / "Actor_01").glob("*.flac"))[::4]:
        r = requests.post(f"{server.url}/predict", files={"audio": (clip.name, clip.read_bytes())}, timeout=60)
        assert r.status_code == 200, r.text
        answers[clip] = r.json()["uncertain"]
    sure = [c for c, flagged in answers.items() if not flagged]
    unsure = [c for c, flagged in answers.items() if flagged]
    assert sure and unsure, f"the model is sure of {len(sure)} of {len(answers)} clips: expected some of each"
    return sure[0], unsure[0]


def start_server(tmp: Path, env_extra: dict[str, str] | None = None) -> Server:
    return start_service(tmp, env_extra)


def stop_server(server: Server) -> None:
    server.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    tmp = tmp_path_factory.mktemp("server")
    srv = start_server(tmp)
    yield srv
    stop_server(srv)
    shutil.rmtree(tmp / "bentoml", ignore_errors=True)
