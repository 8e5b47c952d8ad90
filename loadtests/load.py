"""A closed-loop load generator: N clients, each sending its next request when the last returns.

Used by the benchmark for both servers, so they meet the same client. Bounded in time
and count, loopback only.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import requests


@dataclass
class LoadResult:
    clients: int
    requests: int
    failures: int
    seconds: float
    latencies_ms: list[float]

    def summary(self) -> dict:
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.array([np.nan])
        return {
            "clients": self.clients,
            "requests": self.requests,
            "failures": self.failures,
            "rps": self.requests / self.seconds,
            "p50_ms": float(np.percentile(lat, 50)),
            "p95_ms": float(np.percentile(lat, 95)),
            "p99_ms": float(np.percentile(lat, 99)),
        }


def closed_loop(url: str, payload: tuple[str, bytes, str], clients: int, seconds: float,
                warmup: int = 5, max_requests: int = 100_000) -> LoadResult:  # fmt: skip
    """POST `payload` as multipart field `audio` from `clients` threads for `seconds`."""
    with requests.Session() as s:
        for _ in range(warmup):
            s.post(url, files={"audio": payload}, timeout=60).raise_for_status()
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client() -> None:
        nonlocal failures
        with requests.Session() as session:
            while time.perf_counter() < stop_at and len(latencies) < max_requests:
                t = time.perf_counter()
                try:
                    ok = session.post(url, files={"audio": payload}, timeout=60).status_code == 200
                except requests.RequestException:
                    ok = False
                elapsed = (time.perf_counter() - t) * 1000
                with lock:
                    if ok:
                        latencies.append(elapsed)
                    else:
                        failures += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return LoadResult(clients, len(latencies), failures, time.perf_counter() - start, latencies)
