"""Start and stop real servers as child processes (tests and benchmarks share this)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url: str, proc: subprocess.Popen, log: Path) -> None:
        self.url, self.proc, self.log = url, proc, log

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _wait(url: str, proc: subprocess.Popen, log: Path, health: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url + health, timeout=1).status_code in (200, 405):
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server not ready in {timeout} s:\n{log.read_text()[-3000:]}")


def start_service(tmp: Path, env_extra: dict[str, str] | None = None, timeout: float = 90,
                  model: Path | None = None) -> Server:  # fmt: skip
    """`bentoml serve service:SpeechEmotion` with its own model store under `tmp`, holding
    the bundled model or `model` (an exported .onnx)."""
    env = {**os.environ, "BENTOML_HOME": str(tmp / "bentoml"), "BENTOML_DO_NOT_TRACK": "True",
           **(env_extra or {})}  # fmt: skip
    subprocess.run([sys.executable, "-m", "serving.model_import", *([str(model)] if model else [])], cwd=REPO,
                   env=env, check=True, capture_output=True)  # fmt: skip
    port = free_port()
    log = tmp / f"service-{port}.log"
    proc = subprocess.Popen(  # -m: also where bentoml is installed without its script (pip --target)
        [sys.executable, "-m", "bentoml", "serve", "service:SpeechEmotion", "--port", str(port), "--host", "127.0.0.1"],
        cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    _wait(url, proc, log, "/readyz", timeout)
    return Server(url, proc, log)


def start_baseline(tmp: Path, timeout: float = 120) -> Server:
    """The seed-style Flask server (loadtests/baseline_server.py)."""
    port = free_port()
    log = tmp / f"baseline-{port}.log"
    proc = subprocess.Popen([sys.executable, "-m", "loadtests.baseline_server", "--port", str(port)], cwd=REPO,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    _wait(url, proc, log, "/predict", timeout)
    return Server(url, proc, log)
