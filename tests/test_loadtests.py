"""Load-test tooling: a short locust run, and the benchmark's own building blocks."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA_DIR, REPO

pytestmark = pytest.mark.slow


def test_locust_smoke_run_has_no_failures(server, ravdess_root, tmp_path):
    locust = Path(sys.executable).parent / "locust"
    prefix = tmp_path / "stats"
    out = subprocess.run(
        [str(locust), "-f", "loadtests/locustfile.py", "--headless", "-u", "4", "-r", "4", "-t", "10s",
         "--host", server.url, "--csv", str(prefix), "--only-summary", "--stop-timeout", "10"],
        cwd=REPO, env={**os.environ, "SER_DATA_DIR": str(DATA_DIR)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = {r["Name"]: r for r in csv.DictReader((tmp_path / "stats_stats.csv").open())}
    total = rows["Aggregated"]
    assert int(total["Request Count"]) > 0 and int(total["Failure Count"]) == 0
    assert len([n for n in rows if n.startswith("/predict")]) >= 3  # several formats were sent


def test_server_timing_headers_are_read_as_milliseconds_per_stage():
    from loadtests.load import LoadResult, parse_server_timing

    assert parse_server_timing("read;dur=0.40, decode;desc=\"x\";dur=1.25,model;dur=2") == {
        "read": 0.4, "decode": 1.25, "model": 2.0}
    summary = LoadResult(1, 2, 0, 1.0, [5.0, 7.0], ["model;dur=1", "model;dur=3, handler;dur=4"]).summary()
    assert summary["server_timing_p50_ms"] == {"model": 2.0, "handler": 4.0}


def test_model_flop_count_is_plausible():
    from loadtests.benchmark import model_gflop
    from ser.inference import EmotionModel

    gflop = model_gflop(EmotionModel())
    assert 0.005 < gflop < 1.0


def test_gpu_benchmark_refuses_plainly_without_cuda():
    """Run by hand on a GPU machine; elsewhere it says what is missing instead of measuring
    the CPU under a GPU label."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    out = subprocess.run([sys.executable, "-m", "loadtests.gpu_benchmark", "--part", "model"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode != 0 and "no CUDA execution provider" in out.stderr


def test_gpu_benchmark_names_the_servings_it_knows():
    out = subprocess.run([sys.executable, "-m", "loadtests.gpu_benchmark", "--servings", "cpu direct,gpu turbo"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2 and "unknown servings ['gpu turbo']" in out.stderr and "cpu direct" in out.stderr
