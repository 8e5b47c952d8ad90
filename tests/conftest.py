"""Shared fixtures: real speech from SER_DATA_DIR, and a real `bentoml serve` process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("SER_DATA_DIR", REPO.parent / "shared" / "data"))
RAVDESS = DATA_DIR / "ravdess"
EMODB = DATA_DIR / "emodb"


def need(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"real speech not found at {path} (set SER_DATA_DIR)")
    return path


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url: str, proc: subprocess.Popen, log: Path) -> None:
        self.url, self.proc, self.log = url, proc, log

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_server(tmp: Path, env_extra: dict[str, str] | None = None, timeout: float = 90) -> Server:
    """`bentoml serve` in a child process, with its own model store under `tmp`."""
    import requests

    env = {**os.environ, "BENTOML_HOME": str(tmp / "bentoml"), "BENTOML_DO_NOT_TRACK": "True",
           **(env_extra or {})}  # fmt: skip
    subprocess.run([sys.executable, "-m", "serving.model_import"], cwd=REPO, env=env, check=True,
                   capture_output=True)  # fmt: skip
    port = free_port()
    log = tmp / "server.log"
    bentoml = Path(sys.executable).parent / "bentoml"
    proc = subprocess.Popen(
        [str(bentoml), "serve", "service:SpeechEmotion", "--port", str(port), "--host", "127.0.0.1"],
        cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                return Server(url, proc, log)
        except requests.RequestException:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"server not ready in {timeout} s:\n{log.read_text()[-3000:]}")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(15)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    tmp = tmp_path_factory.mktemp("server")
    srv = start_server(tmp)
    yield srv
    stop_server(srv)
    shutil.rmtree(tmp / "bentoml", ignore_errors=True)
