"""A closed-loop load generator: N clients, each sending its next request when the last returns.

Used by the benchmark for both servers, so they meet the same client. Bounded in time
and count, loopback only.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np


@dataclass
class LoadResult:
    clients: int
    requests: int
    failures: int
    seconds: float
    latencies_ms: list[float]
    server_timings: list[str] = field(default_factory=list)  # each answer's Server-Timing header

    def summary(self) -> dict:
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.array([np.nan])
        stages: dict[str, list[float]] = {}
        for header in self.server_timings:
            for name, ms in parse_server_timing(header).items():
                stages.setdefault(name, []).append(ms)
        return {
            "clients": self.clients,
            "requests": self.requests,
            "failures": self.failures,
            "rps": self.requests / self.seconds,
            "p50_ms": float(np.percentile(lat, 50)),
            "p95_ms": float(np.percentile(lat, 95)),
            "p99_ms": float(np.percentile(lat, 99)),
            # the server's own account of the same requests (median ms per stage), where it gives one
            "server_timing_p50_ms": {name: float(np.median(v)) for name, v in stages.items()},
        }


def parse_server_timing(header: str) -> dict[str, float]:
    """`decode;dur=1.2, model;dur=1.8` -> {"decode": 1.2, "model": 1.8}."""
    out = {}
    for item in filter(None, (part.strip() for part in header.split(","))):
        name, _, params = item.partition(";")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur":
                out[name.strip()] = float(value)
    return out


def multipart(payload: tuple[str, bytes, str], field: str = "audio") -> tuple[bytes, str]:
    """The form a browser or curl -F sends, encoded once: (body, content type)."""
    from urllib3 import encode_multipart_formdata

    return encode_multipart_formdata({field: payload})


def closed_loop(url: str, payload: tuple[str, bytes, str], clients: int, seconds: float,
                warmup: int = 5, max_requests: int = 200_000) -> LoadResult:  # fmt: skip
    """POST `payload` as multipart field `audio` from `clients` threads for `seconds`.

    Each client keeps one HTTP/1.1 connection (http.client, far less client CPU per
    request than requests, which matters when client and server share two cores) and sends
    the same pre-encoded form, byte for byte what `curl -F` sends; both servers meet the
    same client.
    """
    body, ctype = multipart(payload)
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": ctype, "Content-Length": str(len(body))}

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def post(conn: http.client.HTTPConnection) -> bool:
        conn.request("POST", target, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        timing = response.getheader("server-timing")
        if timing:
            with lock:
                timings.append(timing)
        return response.status == 200

    timings: list[str] = []
    lock = threading.Lock()
    conn = connect()
    for _ in range(warmup):
        if not post(conn):
            raise RuntimeError(f"warm-up request to {url} failed")
    conn.close()
    timings.clear()
    latencies: list[float] = []
    failures = 0
    stop_at = time.perf_counter() + seconds

    def client() -> None:
        nonlocal failures
        conn = connect()
        while time.perf_counter() < stop_at and len(latencies) < max_requests:
            t = time.perf_counter()
            try:
                ok = post(conn)
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = connect()
            elapsed = (time.perf_counter() - t) * 1000
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    failures += 1
        conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return LoadResult(clients, len(latencies), failures, time.perf_counter() - start, latencies, timings)
