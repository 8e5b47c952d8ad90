"""Stress, on demand (`./test.sh -m stress`, SER_STRESS_SECONDS, default 60): normal clients
against every attack at once, reporting the normal clients' latency and failures and the
server's resident memory and CPU.

Attackers, all running together: lying-length files (an MP3 claiming 599 s, a WebM
claiming 5 h), expensive legal files (10-minute 48 kHz stereo Opus), large uploads
(24 MiB WAVs), clients that hang up after uploading, bodies trickled a byte at a time,
connections that never finish their headers, random paths, non-UTF-8 headers, long
multipart boundaries and garbage. Passes when every normal request was answered 200,
the normal clients' p99 stayed under 10 s, memory stayed under the Deployment's limit and
the server answers normally afterwards.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import socket
import struct
import time
import uuid

import numpy as np
import psutil
import pytest
import requests

from tests.audio_factory import encode, encode_ffmpeg, read_mono
from tests.conftest import start_server, stop_server
from tests.test_audio import _mp3_claiming
from tests.test_memory import _limit_bytes, _resident

pytestmark = pytest.mark.stress


def _attacks(speech_clip) -> dict[str, bytes]:
    samples, rate = read_mono(speech_clip)
    webm = bytearray(encode_ffmpeg(samples, rate, "webm-opus"))
    i = webm.find(b"\x44\x89\x88")
    webm[i + 3 : i + 11] = struct.pack(">d", 5 * 3600 * 1000.0)
    tone = (0.1 * np.sin(2 * np.pi * 220 * np.arange(600 * 48_000) / 48_000)).astype(np.float32)
    noise = (0.1 * np.random.default_rng(0).standard_normal(24 * 2**20 // 2)).astype(np.float32)
    return {
        "lying mp3": _mp3_claiming(599),
        "lying webm": bytes(webm),
        "10 min opus": encode_ffmpeg(tone, 48_000, "ogg-opus", channels=2),
        "24 MiB wav": encode(noise, 48_000, "WAV", "PCM_16"),
        "garbage": os.urandom(200_000),
    }


def test_normal_clients_survive_every_attack_at_once(tmp_path, speech_clip):
    seconds = float(os.environ.get("SER_STRESS_SECONDS", "60"))
    attacks = _attacks(speech_clip)
    srv = start_server(tmp_path, {"SER_HEADER_TIMEOUT_S": "5", "SER_BODY_TIMEOUT_S": "5"})
    host, port = srv.url.removeprefix("http://").split(":")
    proc = psutil.Process(srv.proc.pid)
    stop = time.monotonic() + seconds
    normal: list[tuple[int, float]] = []
    attack_codes: dict[str, list[int]] = {name: [] for name in [*attacks, "hang-up", "trickle", "slow headers",
                                                                "random path", "non-utf8", "long boundary"]}  # fmt: skip
    samples = {"rss": [], "cpu": []}

    def post(data: bytes, ctype: str = "application/octet-stream", timeout: float = 90) -> int:
        try:
            return requests.post(f"{srv.url}/predict", data=data, headers={"content-type": ctype}, timeout=timeout).status_code
        except requests.RequestException:
            return -1

    def attacker(name: str) -> None:
        while time.monotonic() < stop:
            if name in attacks:
                attack_codes[name].append(post(attacks[name]))
            elif name == "hang-up":
                with socket.create_connection((host, int(port)), timeout=10) as s:
                    body = attacks["10 min opus"]
                    s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/ogg\r\n"
                              b"Content-Length: %d\r\n\r\n" % len(body) + body)  # fmt: skip
                attack_codes[name].append(0)
                time.sleep(0.2)
            elif name in ("trickle", "slow headers"):
                with socket.create_connection((host, int(port)), timeout=30) as s:
                    s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n" + (
                        b"Content-Type: audio/wav\r\nContent-Length: 100000\r\n\r\nRIFF" if name == "trickle" else b"X-Slow: "))
                    try:
                        while time.monotonic() < stop and not s.recv(1, socket.MSG_DONTWAIT):
                            pass
                    except BlockingIOError:
                        for _ in range(30):
                            try:
                                s.sendall(b"a")
                                time.sleep(0.3)
                            except OSError:
                                break
                    except OSError:
                        pass
                attack_codes[name].append(0)
            elif name == "random path":
                attack_codes[name].append(requests.get(f"{srv.url}/{uuid.uuid4().hex}", timeout=10).status_code)
            elif name == "non-utf8":
                attack_codes[name].append(post(b"RIFF", "audio/\xff\xfe".encode("latin-1").decode("latin-1")))
            elif name == "long boundary":
                attack_codes[name].append(post(b"--" + b"b" * 300 + b"\r\n", "multipart/form-data; boundary=" + "b" * 300))

    def watch() -> None:
        procs = [proc, *proc.children(recursive=True)]  # the same objects: cpu_percent is per object
        while time.monotonic() < stop:
            samples["rss"].append(_resident(proc))
            samples["cpu"].append(sum(p.cpu_percent(None) for p in procs))
            time.sleep(0.5)

    def normal_client() -> None:
        data = speech_clip.read_bytes()
        while time.monotonic() < stop:
            t = time.monotonic()
            code = post(data, "audio/flac", timeout=60)
            normal.append((code, time.monotonic() - t))

    try:
        with cf.ThreadPoolExecutor(32) as pool:
            jobs = [pool.submit(watch), *(pool.submit(normal_client) for _ in range(4))]
            jobs += [pool.submit(attacker, name) for name in attack_codes]
            jobs += [pool.submit(attacker, name) for name in ("slow headers",) * 8 + ("24 MiB wav",) * 3]
            for job in jobs:
                job.result()
        latencies = np.array([s for _, s in normal])
        failures = sum(code != 200 for code, _ in normal)
        report = {
            "normal": {"requests": len(normal), "failures": failures, "p50_ms": round(1000 * np.percentile(latencies, 50)),
                       "p99_ms": round(1000 * np.percentile(latencies, 99)), "max_ms": round(1000 * latencies.max())},
            "attacks": {name: {int(c): codes.count(c) for c in set(codes)} for name, codes in attack_codes.items()},
            "resident_mib": {"max": round(max(samples["rss"]) / 2**20), "last": round(samples["rss"][-1] / 2**20)},
            "cpu_percent_mean": round(float(np.mean(samples["cpu"][1:]))),  # of one core
        }  # fmt: skip
        print(f"stress over {seconds:g} s: {report}")
        assert failures == 0 and report["normal"]["p99_ms"] < 10_000
        assert max(samples["rss"]) < 0.9 * _limit_bytes()
        assert all(-1 not in codes and 500 not in codes and 504 not in codes for codes in attack_codes.values())
        assert post(speech_clip.read_bytes(), "audio/flac") == 200
    finally:
        stop_server(srv)
