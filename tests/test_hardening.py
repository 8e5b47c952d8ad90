"""Hostile input, limits and fuzzing against a real server; the soak test is `-m soak`."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ser.audio import AudioError, load_audio
from tests.audio_factory import encode, encode_ffmpeg, read_mono
from tests.conftest import REPO, start_server, stop_server
from tests.test_audio import _mp3_claiming

pytestmark = pytest.mark.slow


def wav(rate=16_000, channels=1, bits=16, data: bytes = b"", data_size: int | None = None, fmt_tag=1) -> bytes:
    block = max(1, channels * bits // 8)
    size = len(data) if data_size is None else data_size
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
    riff = min(36 + size, 0xFFFFFFFF)
    return b"RIFF" + struct.pack("<I", riff) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + \
        struct.pack("<I", size) + data  # fmt: skip


def tone(seconds=2.0, rate=16_000, amp=0.3, dc=0.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (dc + amp * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
    return buf.getvalue()


def mp3_with_garbage(clip: Path) -> bytes:
    samples, rate = read_mono(clip)
    data = bytearray(encode(samples, rate, "MP3", "MPEG_LAYER_III"))
    rng = np.random.default_rng(0)
    for pos in rng.integers(len(data) // 4, len(data), 40):
        data[pos : pos + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    return bytes(data)


def webm_claiming_hours(clip: Path) -> bytes:
    data = bytearray(encode_ffmpeg(*read_mono(clip), "webm-opus"))
    i = data.find(b"\x44\x89\x88")
    data[i + 3 : i + 11] = struct.pack(">d", 5 * 3600 * 1000.0)
    return bytes(data)


def m4a_huge_table(clip: Path) -> bytes:
    data = bytearray(encode_ffmpeg(*read_mono(clip), "m4a-aac"))
    i = data.find(b"stsz")
    data[i + 12 : i + 16] = (1 << 28).to_bytes(4, "big")
    return bytes(data)


def garbled(data: bytes) -> bytes:
    out = bytearray(data)
    rng = np.random.default_rng(1)
    for pos in rng.integers(64, len(out), 30):
        out[pos : pos + 32] = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
    return bytes(out)


# name -> (bytes factory, allowed statuses)
HOSTILE = {
    "wav claims 4 GB of data": (lambda c: wav(data=pcm16(tone(1)), data_size=0xFFFFFFF0), {200, 400, 413, 415, 422}),
    "wav with 0 channels": (lambda c: wav(channels=0, data=pcm16(tone(1))), {400, 415}),
    "wav with 65535 channels": (lambda c: wav(channels=65535, data=pcm16(tone(1))), {400, 415}),
    "wav at 0 Hz": (lambda c: wav(rate=0, data=pcm16(tone(1))), {400, 415}),
    "wav at 1 Hz": (lambda c: wav(rate=1, data=pcm16(tone(1))), {400, 415}),
    "wav at 10 MHz": (lambda c: wav(rate=10_000_000, data=pcm16(tone(1))), {400, 415}),
    "wav with 7-bit samples": (lambda c: wav(bits=7, data=pcm16(tone(1))), {200, 400, 415, 422}),
    "wav with 12-bit samples": (lambda c: wav(bits=12, data=pcm16(tone(1))), {200, 400, 415, 422}),
    "wav with unknown codec": (lambda c: wav(fmt_tag=0x7777, data=pcm16(tone(1))), {400, 415}),
    "wav header only": (lambda c: wav(data=b"", data_size=0), {400, 422}),
    "truncated wav": (lambda c: encode(tone(2), 16_000)[:500], {400, 415, 422}),
    "truncated flac": (lambda c: c.read_bytes()[: len(c.read_bytes()) // 3], {200, 400, 415, 422}),
    "wav of NaN": (lambda c: encode(np.full(16_000, np.nan, np.float32), 16_000, "WAV", "FLOAT"), {422}),
    "wav of +-inf": (lambda c: encode(np.where(tone(1) > 0, np.inf, -np.inf).astype(np.float32), 16_000, "WAV", "FLOAT"), {422}),
    "5 minutes of silence": (lambda c: encode(np.zeros(16_000 * 300, np.float32), 16_000, "WAV", "PCM_16"), {422}),
    "html named .wav": (lambda c: b"<!doctype html><html><body>hello</body></html>", {415}),
    "json named .wav": (lambda c: b'{"audio": [0, 1, 2]}', {415}),
    "zip named .wav": (lambda c: zip_bytes(), {415}),
    "png named .wav": (lambda c: b"\x89PNG\r\n\x1a\n" + b"\0" * 2048, {415}),
    "mp3 with garbage frames": (mp3_with_garbage, {200, 400, 415, 422}),
    "mp3 claiming 599 s": (lambda c: _mp3_claiming(599), {200}),
    "webm claiming 5 hours": (lambda c: webm_claiming_hours(c), {413}),
    "truncated webm": (lambda c: encode_ffmpeg(*read_mono(c), "webm-opus")[:2000], {200, 400, 422}),
    "garbled m4a": (lambda c: garbled(encode_ffmpeg(*read_mono(c), "m4a-aac")), {200, 400, 415, 422}),
    "m4a with a huge sample table": (lambda c: m4a_huge_table(c), {200, 400, 415, 422}),
}
VALID_BUT_ODD = {  # real audio, badly recorded: analysed, not refused
    "dc offset": lambda c: encode(tone(3, amp=0.2, dc=0.5), 16_000),
    "hard clipping": lambda c: encode(np.clip(tone(3, amp=4.0), -1, 1), 16_000),
}


def shape_ok(r: requests.Response) -> dict:
    assert r.headers["content-type"].startswith("application/json"), r.text[:200]
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert len(body["error"]["message"]) > 10
    return body


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_files(server, speech_clip, name):
    make, allowed = HOSTILE[name]
    r = requests.post(f"{server.url}/predict", files={"audio": ("x.wav", make(speech_clip), "audio/wav")}, timeout=60)
    assert r.status_code in allowed, (r.status_code, r.text[:300])
    if r.status_code != 200:
        shape_ok(r)
    ok = requests.post(f"{server.url}/predict", files={"audio": ("a.flac", speech_clip.read_bytes(), "audio/flac")})
    assert ok.status_code == 200 and server.alive()


@pytest.mark.parametrize("name", list(VALID_BUT_ODD))
def test_badly_recorded_audio_is_analysed(server, speech_clip, name):
    r = requests.post(f"{server.url}/predict", files={"audio": ("x.wav", VALID_BUT_ODD[name](speech_clip), "audio/wav")})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("files", "status", "code"),
    [({"audio": (None, "not a file")}, 415, "unsupported_format"),  # a text field named audio
     ({"note": (None, "x")}, 400, "missing_file"),
     ({"file": ("a.wav", b"RIFF", "audio/wav")}, 400, "missing_file")],
)  # fmt: skip
def test_wrong_form_fields(server, files, status, code):
    r = requests.post(f"{server.url}/predict", files=files)
    assert r.status_code == status and shape_ok(r)["error"]["code"] == code


def test_form_with_no_parts(server):
    r = requests.post(f"{server.url}/predict", data=b"--b--\r\n", headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 400 and shape_ok(r)["error"]["code"] in ("missing_file", "bad_multipart")


def test_many_parts_are_refused(server):
    files = [(f"f{i}", (f"{i}.wav", b"x", "audio/wav")) for i in range(20)]
    r = requests.post(f"{server.url}/predict", files=files)
    assert r.status_code == 400 and shape_ok(r)["error"]["code"] == "too_many_parts"


def test_other_errors_share_the_shape(server):
    shape_ok(requests.get(f"{server.url}/no/such/page"))
    shape_ok(requests.post(f"{server.url}/classify_features", json={"features": ["!!"]}))
    shape_ok(requests.post(f"{server.url}/classify_features", data=b"{", headers={"content-type": "application/json"}))


def test_oversized_body_refused_before_reading(server):
    """Content-Length over the limit: answered 413 while the client has sent only headers."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Content-Length: 1073741824\r\n\r\n")  # fmt: skip
        reply = b""
        while chunk := s.recv(4096):  # the server closes after answering
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413") and b'"too_large"' in reply


def test_chunked_oversized_body_is_cut_off(server):
    def chunks():
        block = b"\0" * (1024 * 1024)
        for _ in range(40):  # 40 MB without a Content-Length
            yield block

    r = requests.post(f"{server.url}/predict", data=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413 and shape_ok(r)["error"]["code"] == "too_large"


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    # one worker: the cap is per worker process
    srv = start_server(tmp_path_factory.mktemp("strict"), {"SER_BODY_TIMEOUT_S": "2", "SER_HEADER_TIMEOUT_S": "2", "SER_MAX_CONCURRENCY": "2", "SER_WORKERS": "1"})
    yield srv
    stop_server(srv)


def _slow_upload(url: str, seconds: float) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
              b"Content-Length: 100000\r\n\r\n--b\r\n")  # fmt: skip
    return s


def test_slow_client_is_cut_off(strict_server):
    s = _slow_upload(strict_server.url, 10)
    start = time.monotonic()
    s.settimeout(15)
    reply = b""
    while b"\r\n\r\n" not in reply:
        s.sendall(b"x")  # a byte every 0.2 s: never finishes
        time.sleep(0.2)
        try:
            s.setblocking(False)
            reply += s.recv(4096)
        except BlockingIOError:
            pass
        finally:
            s.setblocking(True)
        assert time.monotonic() - start < 15, "slow client was never cut off"
    s.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert 1.5 < time.monotonic() - start < 10


def test_over_the_cap_gets_429_quickly(strict_server, speech_clip):
    holders = [_slow_upload(strict_server.url, 10) for _ in range(2)]
    time.sleep(0.5)
    t = time.monotonic()
    r = requests.post(f"{strict_server.url}/predict", files={"audio": ("a.flac", speech_clip.read_bytes(), "audio/flac")})
    assert r.status_code == 429 and time.monotonic() - t < 2
    assert shape_ok(r)["error"]["code"] == "too_many_requests" and r.headers.get("retry-after")
    for s in holders:
        s.close()
    time.sleep(2.5)  # their body timeouts free the slots
    r = requests.post(f"{strict_server.url}/predict", files={"audio": ("a.flac", speech_clip.read_bytes(), "audio/flac")})
    assert r.status_code == 200


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_decoder_fuzz_random_bytes(data):
    try:
        samples = load_audio(data)
        assert samples.dtype == np.float32 and np.isfinite(samples).all()
    except AudioError as e:
        assert 400 <= e.status < 500 and e.message


@settings(max_examples=150, deadline=None)
@given(rate=st.integers(0, 2**32 - 1), channels=st.integers(0, 2**16 - 1), bits=st.integers(0, 64),
       size=st.integers(0, 2**32 - 1), tag=st.sampled_from([1, 3, 6, 7, 0xFFFE, 0x55, 0]),
       body=st.binary(max_size=2048))  # fmt: skip
def test_decoder_fuzz_wav_headers(rate, channels, bits, size, tag, body):
    try:
        samples = load_audio(wav(rate=rate, channels=channels, bits=bits, data=body, data_size=size, fmt_tag=tag))
        assert np.isfinite(samples).all()
    except AudioError as e:
        assert 400 <= e.status < 500


def test_api_fuzz(server, tmp_path):
    """Schemathesis against our OpenAPI document: no 5xx, and every error in the one shape
    (check `one_error_shape` in tests/schemathesis_hooks.py)."""
    import subprocess
    import sys

    st = Path(sys.executable).parent / "st"
    out = subprocess.run(
        [str(st), "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error,one_error_shape",
         "--max-examples", "30", "--report-dir", str(tmp_path)],
        cwd=REPO, env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks"},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "/predict" in out.stdout


@pytest.mark.soak
def test_soak(tmp_path_factory, ravdess_root):
    """A few minutes at high load: no failures, flat memory, no files left behind."""
    import concurrent.futures as cf

    minutes = float(os.environ.get("SER_SOAK_MINUTES", "3"))
    tmp = tmp_path_factory.mktemp("soak")
    srv = start_server(tmp)
    payloads = [p.read_bytes() for p in sorted(ravdess_root.glob("Actor_1[3-4]/*.flac"))[:40]]
    before_tmp = set(os.listdir("/tmp"))

    def rss_mb() -> float:
        import psutil

        proc = psutil.Process(srv.proc.pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20

    try:
        failures, done, rss = 0, 0, []
        end = time.monotonic() + 60 * minutes
        with cf.ThreadPoolExecutor(16) as pool:
            while time.monotonic() < end:
                codes = list(pool.map(lambda d: requests.post(f"{srv.url}/predict", files={"audio": ("a.flac", d, "audio/flac")}).status_code, payloads))
                failures += sum(c != 200 for c in codes)
                done += len(codes)
                rss.append(rss_mb())
        print(f"soak: {done} requests, {failures} failures, RSS {rss[0]:.0f} -> {max(rss):.0f} -> {rss[-1]:.0f} MB")
        assert failures == 0
        settled = rss[len(rss) // 4]  # after warm-up
        assert rss[-1] < settled * 1.2 + 50, rss
        assert set(os.listdir("/tmp")) - before_tmp <= {p.name for p in Path("/tmp").glob("pytest-*")}
    finally:
        stop_server(srv)


def _raw(url: str, request: bytes, timeout: float = 10) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_random_paths_do_not_grow_metrics(server):
    """BentoML labelled its HTTP metrics with the raw path: 300 random 404s grew /metrics
    from 14.6 KB to 1.3 MB. Unknown paths now share one label."""
    import uuid

    requests.get(f"{server.url}/{uuid.uuid4().hex}", timeout=10)  # the label's series exist
    before = len(requests.get(f"{server.url}/metrics", timeout=10).content)
    for _ in range(300):
        assert requests.get(f"{server.url}/{uuid.uuid4().hex}", timeout=10).status_code == 404
    after = len(requests.get(f"{server.url}/metrics", timeout=10).content)
    assert after < before * 1.05 + 2000, (before, after)
    assert 'endpoint="/{other}"' in requests.get(f"{server.url}/metrics", timeout=10).text


def test_non_utf8_content_type_still_gets_its_body(server):
    """The access log decoded it after the headers were sent: the body never came."""
    reply = _raw(server.url, b"GET /model HTTP/1.1\r\nHost: x\r\nContent-Type: \xff\xfe\r\nConnection: close\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
    assert head.startswith(b"HTTP/1.1 200") and len(body) == length and json.loads(body)["name"]


def test_log_lines_cannot_be_forged(server):
    requests.get(f"{server.url}/a%0aFORGED%1b[31m", timeout=10)
    time.sleep(0.5)
    log = server.log.read_text()
    assert "\\x0aFORGED\\x1b[31m" in log
    assert not any(line.startswith("FORGED") for line in log.splitlines()) and "\x1b[31m" not in log


def test_security_headers(server):
    for path in ("/demo", "/", "/predict"):
        r = requests.get(f"{server.url}{path}", timeout=10)
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "microphone=(self)" in r.headers["permissions-policy"]


def test_static_misses_share_the_error_shape(server):
    r = requests.get(f"{server.url}/static/nope.js", timeout=10)
    assert r.status_code == 404 and shape_ok(r)["error"]["code"] == "not_found"


def test_bad_feature_bodies_get_400_without_tracebacks(server):
    for body in ({"features": ["AAAA"]}, {"features": "x"}, {"other": 1}, [1, 2]):
        r = requests.post(f"{server.url}/classify_features", json=body, timeout=10)
        assert r.status_code == 400 and shape_ok(r)["error"]["code"] == "bad_features", r.text
    r = requests.post(f"{server.url}/classify_features", data=b"{not json", timeout=10,
                      headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 400 and shape_ok(r)["error"]["code"] == "bad_json"
    time.sleep(0.5)
    assert "Traceback" not in server.log.read_text()


def test_trickled_feature_body_gets_408(strict_server):
    """A body a byte every 0.2 s: 408 at the 2 s body timeout, not BentoML's 504 at 60 s."""
    host, port = strict_server.url.removeprefix("http://").split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=15) as s:
        s.sendall(b"POST /classify_features HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{")  # fmt: skip
        s.settimeout(0.2)
        reply = b""
        while not reply and time.monotonic() - start < 12:
            try:
                s.sendall(b" ")
                reply = s.recv(4096)
            except TimeoutError:
                pass
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert time.monotonic() - start < 6


@pytest.mark.parametrize(("fmt", "subtype"), [("W64", "PCM_16"), ("CAF", "ALAC_16"), ("VOC", "PCM_16")])
def test_containers_users_do_not_have_are_refused_by_content(server, speech_clip, fmt, subtype):
    samples, rate = read_mono(speech_clip)
    r = requests.post(f"{server.url}/predict", files={"audio": ("a.wav", encode(samples, rate, fmt, subtype), "audio/wav")})
    assert r.status_code == 415 and shape_ok(r)["error"]["code"] == "unsupported_format"


@pytest.fixture(scope="module")
def long_opus() -> bytes:
    """A legal 10 min, 48 kHz stereo Ogg Opus (1.2 MB): a second or more of decoding."""
    from tests.audio_factory import encode_ffmpeg

    tone = (0.1 * np.sin(2 * np.pi * 220 * np.arange(600 * 48_000) / 48_000)).astype(np.float32)
    return encode_ffmpeg(tone, 48_000, "ogg-opus", channels=2)


def _errors(server, code: str) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    found = re.search(rf'^ser_errors_total\{{code="{code}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_work_past_its_deadline_answers_503(tmp_path_factory, long_opus, speech_clip):
    srv = start_server(tmp_path_factory.mktemp("deadline"), {"SER_WORK_TIMEOUT_S": "0.3"})
    try:
        r = requests.post(f"{srv.url}/predict", data=long_opus, headers={"content-type": "audio/ogg"}, timeout=30)
        assert r.status_code == 503 and shape_ok(r)["error"]["code"] == "deadline_exceeded" and r.headers["retry-after"]
        r = requests.post(f"{srv.url}/predict", data=speech_clip.read_bytes(), headers={"content-type": "audio/flac"})
        assert r.status_code == 200
    finally:
        stop_server(srv)


def test_a_client_that_hangs_up_stops_its_work(server, long_opus):
    """The upload arrives whole, then the client leaves: decoding stops (counted as
    client_disconnected) instead of running to the end for nobody."""
    before = _errors(server, "client_disconnected")
    host, port = server.url.removeprefix("http://").split(":")
    for _ in range(2):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/ogg\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(long_opus) + long_opus)  # fmt: skip
            time.sleep(0.2)
    deadline = time.monotonic() + 10
    while _errors(server, "client_disconnected") < before + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _errors(server, "client_disconnected") >= before + 2


def test_expensive_files_do_not_starve_a_normal_client(server, long_opus, speech_clip):
    """Four clients send 10-minute Opus files (1.5 s of decoding each) over and over while
    a normal client sends a 4 s clip: every answer arrives, none is BentoML's 504."""
    import concurrent.futures as cf

    stop = time.monotonic() + 8

    def heavy() -> list[int]:
        codes = []
        while time.monotonic() < stop:
            r = requests.post(f"{server.url}/predict", data=long_opus, headers={"content-type": "audio/ogg"}, timeout=60)
            codes.append(r.status_code)
        return codes

    with cf.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(heavy) for _ in range(4)]
        time.sleep(0.5)
        normal = []
        while time.monotonic() < stop:
            t = time.monotonic()
            r = requests.post(f"{server.url}/predict", data=speech_clip.read_bytes(), headers={"content-type": "audio/flac"})
            normal.append((r.status_code, time.monotonic() - t))
        heavy_codes = [c for f in futures for c in f.result()]
    assert normal and all(code == 200 for code, _ in normal)
    assert set(heavy_codes) <= {200, 503} and 504 not in heavy_codes
    worst = max(seconds for _, seconds in normal)
    print(f"normal client: {len(normal)} answers, worst {worst:.2f} s; heavy: {heavy_codes}")
    assert worst < 15  # bounded well inside the 60 s request timeout


def test_slow_and_idle_header_connections_are_closed(strict_server, speech_clip):
    """300 connections that never finish their headers (or send nothing) are closed at the
    2 s header timeout; a normal client is served meanwhile. They stayed open for good."""
    host, port = strict_server.url.removeprefix("http://").split(":")
    sockets = []
    for i in range(300):
        s = socket.create_connection((host, int(port)), timeout=10)
        if i % 2:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Ty")
        sockets.append(s)
    r = requests.post(f"{strict_server.url}/predict", data=speech_clip.read_bytes(), headers={"content-type": "audio/flac"})
    assert r.status_code == 200
    time.sleep(4)
    closed = 0
    for s in sockets:
        s.settimeout(0.5)
        try:
            closed += s.recv(1) == b""
        except (TimeoutError, ConnectionResetError):
            pass
        s.close()
    assert closed == len(sockets)


def test_unparseable_requests_get_the_error_shape(server):
    reply = _raw(server.url, b"GARBAGE\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and json.loads(body)["error"]["code"] == "bad_request"


def test_oversized_headers_are_refused_and_the_connection_closed(server):
    """httptools sets no limit on request headers: past 16 KiB (h11's limit in uvicorn)
    the request gets the error shape and the connection is closed, in one header or many;
    under it, the request is served."""
    for headers in (b"X-Big: " + b"a" * 17_000 + b"\r\n", b"".join(b"X-%d: %s\r\n" % (i, b"b" * 100) for i in range(200))):
        reply = _raw(server.url, b"GET /livez HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and b"connection: close" in head.lower()
        error = json.loads(body)["error"]
        assert error["code"] == "bad_request" and "16 KiB" in error["message"]
    reply = _raw(server.url, b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " + b"a" * 12_000 + b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200")


def test_idle_kept_alive_connections_are_closed(server):
    """After an answer, a kept-alive connection that sends nothing more is closed by
    uvicorn's keep-alive timeout (5 s)."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as s:
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += s.recv(4096)
        head, _, body = reply.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
        while len(body) < length:
            body += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        assert s.recv(1) == b""  # closed by the server, not by our 15 s timeout
        assert time.monotonic() - start < 10
