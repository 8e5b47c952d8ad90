"""Memory under concurrent large uploads, against the deployment manifest's limit."""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time

import numpy as np
import psutil
import pytest
import requests
import yaml

from tests.audio_factory import encode
from tests.conftest import REPO, start_server, stop_server

pytestmark = pytest.mark.slow


def _limit_bytes() -> int:
    docs = list(yaml.safe_load_all((REPO / "deploy" / "deployment.yaml").read_text()))
    deployment = next(d for d in docs if d and d.get("kind") == "Deployment")
    value = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    units = {"Gi": 2**30, "Mi": 2**20}
    return int(float(value[:-2]) * units[value[-2:]])


def _resident(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def test_concurrent_large_uploads_stay_under_the_manifest_limit(tmp_path, speech_clip):
    """32 clients each upload a 24 MiB WAV (4.4 min of 48 kHz audio) at once, twice: the
    server processes' resident memory stays under the Deployment's limit, and at least half
    of the burst's memory is returned afterwards."""
    rng = np.random.default_rng(0)
    seconds = 24 * 2**20 // (2 * 48_000)
    samples = (0.1 * rng.standard_normal(seconds * 48_000)).astype(np.float32)
    big = encode(samples, 48_000, "WAV", "PCM_16")
    srv = start_server(tmp_path, {"SER_WORKERS": "2"})
    try:
        proc = psutil.Process(srv.proc.pid)
        requests.post(f"{srv.url}/predict", data=speech_clip.read_bytes(), headers={"content-type": "audio/flac"})
        idle = _resident(proc)
        peak, done = idle, threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _resident(proc))
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        codes = []
        for _ in range(2):
            with cf.ThreadPoolExecutor(32) as pool:
                codes += list(pool.map(lambda _: requests.post(
                    f"{srv.url}/predict", data=big, headers={"content-type": "audio/wav"}, timeout=120).status_code,
                    range(32)))  # fmt: skip
        time.sleep(2)
        after = _resident(proc)
        done.set()
        watcher.join()
        limit = _limit_bytes()
        print(f"resident: idle {idle / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB, after {after / 2**20:.0f} MiB "
              f"(limit {limit / 2**20:.0f} MiB); answers {sorted(set(codes))}: {codes.count(200)} of {len(codes)} analysed")  # fmt: skip
        assert set(codes) <= {200, 503} and codes.count(200) >= 8
        assert peak < 0.9 * limit
        # most of it comes back (onnxruntime's arena keeps what its largest batch needed):
        # 2026-11-26 with the three-network model in batches of 32 windows, 497 -> 1649 ->
        # 832 MiB (peak 2.7 GiB when it ran each request's windows at once); before glibc's
        # thresholds were fixed, 482 -> 3167 -> 2055 MiB; with the distilled network, mmap at
        # 2 MiB and trim at 8 MiB (not both 128 KiB), 479 -> 1447 -> 687 MiB; three networks
        # again (2026-12-06), 472 -> 1672 -> 876 MiB in runs of 32 windows (CI: 577 -> 1902,
        # over 90 % of the limit), 457-498 -> 1414-1457 -> 626-637 in runs of 8
        assert after < idle + 0.5 * (peak - idle) + 100 * 2**20
    finally:
        stop_server(srv)
