"""WebSocket /live over a real server: real speech at real-time rate and faster, and hostile
streams (wrong formats, oversized frames, endless and idle streams, abrupt disconnects,
hundreds of idle sockets), after which the server keeps serving."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import soxr
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ser.config import N_FRAMES, SAMPLE_RATE
from ser.live import HOP_S, LiveSession, advance
from ser.vad import speech_probabilities, speech_regions
from serving.live_client import RATE, file_frames, pcm16, stream
from tests.audio_factory import encode, long_recording
from tests.conftest import start_server, stop_server

pytestmark = pytest.mark.slow

LIMITS = {
    "SER_WORKERS": "1",
    "SER_LIVE_MAX_SECONDS": "40",
    "SER_LIVE_IDLE_S": "1",
    "SER_LIVE_MAX_STREAMS": "30",
}
START = json.dumps({"type": "start", "format": "s16le", "sample_rate": RATE, "channels": 1})


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("live"), LIMITS)
    srv.ws = srv.url.replace("http://", "ws://") + "/live"
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def speech(ravdess_root):
    """Four clips of actor 02 with pauses: ~20 s at 16 kHz, and the utterances' spans."""
    from ser.audio import load_audio

    clips = [load_audio(p) for p in sorted((ravdess_root / "Actor_02").glob("*.flac"))[:4]]
    audio, spans = long_recording(clips, SAMPLE_RATE, [1.0, 1.2, 0.9, 1.5, 1.0])
    return soxr.resample(audio, SAMPLE_RATE, RATE).astype(np.float32), spans


def run(coro):
    return asyncio.run(coro)


def test_session_finds_the_files_utterances_incrementally(speech):
    """The live state machine, fed 0.1 s at a time, closes the utterances the file path finds."""
    from ser.inference import EmotionModel

    model = EmotionModel()
    audio, spans = speech
    session, messages = LiveSession(RATE), []
    for i in range(0, len(audio), 1600):
        session.feed(audio[i : i + 1600])
        while session.hops_ready():
            messages += advance([session], model.predict_features, model.labels)[0]
    session.finish()
    while session.hops_ready():
        messages += advance([session], model.predict_features, model.labels)[0]
    utterances = [(m["start"], m["end"]) for m in messages if m["type"] == "utterance"]
    offline = speech_regions(speech_probabilities(audio, RATE))
    assert len(utterances) == len(offline) == len(spans)
    for (a, b), (c, d) in zip(utterances, offline, strict=True):
        assert abs(a - c) < 0.1 and abs(b - d) < 0.1
    readings = [m for m in messages if m["type"] == "reading"]
    assert [r["t"] for r in readings[:4]] == [0.5, 1.0, 1.5, 2.0]
    assert len(readings) >= len(audio) / RATE / HOP_S


def test_real_time_stream_gets_a_reading_every_hop(live_server, speech):
    audio = speech[0][: 6 * RATE]
    start = time.monotonic()
    result = run(stream(live_server.ws, file_frames(audio, speed=1.0)))
    elapsed = time.monotonic() - start
    assert result.close_code == 1000, result.messages[-3:]
    assert result.messages[0]["type"] == "ready" and result.messages[-1]["type"] == "end"
    readings = [m for m in result.messages if m["type"] == "reading"]
    assert [r["t"] for r in readings[:12]] == [0.5 * (i + 1) for i in range(12)]
    assert any(r["speech"] for r in readings) and any(r["emotion"] for r in readings)
    assert elapsed >= 5.5  # paced, not all at once
    # each reading arrived while the audio was still playing, not in a burst at the end
    assert np.median(result.latencies_s) < 1.0


def test_fast_stream_gets_every_reading_and_utterance(live_server, speech):
    audio, spans = speech
    result = run(stream(live_server.ws, file_frames(audio, speed=0)))
    assert result.close_code == 1000
    readings = [m for m in result.messages if m["type"] == "reading"]
    utterances = [m for m in result.messages if m["type"] == "utterance"]
    assert len(readings) >= int(len(audio) / RATE / HOP_S)
    assert len(utterances) == len(spans)
    for u, (a, b) in zip(utterances, spans, strict=True):
        assert abs(u["start"] - a) < 0.3 and abs(u["end"] - b) < 0.4 and u["emotion"]
    assert result.messages[-1] == {**result.messages[-1], "type": "end", "utterances": len(spans)}


async def refused(url: str, messages: list, origin: str | None = None) -> tuple[int | None, str, list[dict]]:
    got = []
    async with connect(url, additional_headers={"Origin": origin} if origin else None) as ws:
        try:
            for m in messages:
                await ws.send(m)
            async for raw in ws:
                got.append(json.loads(raw))
        except ConnectionClosed:
            pass
        return ws.close_code, ws.close_reason, got


@pytest.mark.parametrize(
    ("messages", "code", "error"),
    [
        (["hello"], 1003, "bad_start"),
        ([b"\x00" * 640], 1003, "bad_start"),
        ([json.dumps({"type": "start", "format": "mp3", "sample_rate": 16000})], 1003, "unsupported_format"),
        ([json.dumps({"type": "start", "format": "s16le", "sample_rate": 1})], 1003, "bad_sample_rate"),
        ([json.dumps({"type": "start", "format": "s16le", "sample_rate": 16000, "channels": 6})], 1003, "bad_channels"),
        ([START, b"\x00" * 3], 1003, "bad_frame"),
        ([json.dumps({"type": "start", "format": "f32le", "sample_rate": 16000}), b"\x00\x00\xc0\x7f" * 64], 1003,
         "bad_frame"),
        ([START, '{"type": "pause"}'], 1003, "bad_message"),
        ([START, b"\x00" * (300 * 1024)], 1009, None),  # over the 256 KiB frame limit: refused by the protocol
    ],
)  # fmt: skip
def test_malformed_streams_are_closed_with_a_code_and_a_reason(live_server, messages, code, error):
    close, reason, got = run(refused(live_server.ws, messages))
    assert close == code and reason
    if error:
        assert got[-1] == {"type": "error", "error": {"code": error, "message": got[-1]["error"]["message"]}}


def test_endless_and_idle_streams_are_closed(live_server):
    endless = [START] + [pcm16(np.zeros(RATE, np.float32))] * 45  # 45 s of audio against a 40 s limit
    close, reason, got = run(refused(live_server.ws, endless))
    assert close == 1008 and got[-1]["error"]["code"] == "stream_too_long"
    start = time.monotonic()
    close, reason, got = run(refused(live_server.ws, [START]))  # then silence on the wire
    assert close == 1008 and got[-1]["error"]["code"] == "idle" and time.monotonic() - start < 5


def test_pages_of_other_sites_may_not_stream(live_server):
    with pytest.raises(InvalidStatus) as refused_handshake:
        run(refused(live_server.ws, [START], origin="https://evil.example"))
    assert refused_handshake.value.response.status_code == 403
    # the server's own pages may
    close, _, got = run(refused(live_server.ws, [START, json.dumps({"type": "end"})], origin=live_server.url))
    assert close == 1000 and got[-1]["type"] == "end"


def test_stream_cap_abrupt_disconnects_and_idle_sockets_leave_the_server_serving(live_server, speech):
    async def hold(n: int) -> list:
        """n streams that start and send a little, kept open together."""
        sockets, codes = [], []
        for _ in range(n):
            ws = await connect(live_server.ws)
            sockets.append(ws)
            try:
                await ws.send(START)
                first = json.loads(await asyncio.wait_for(ws.recv(), 10))
                codes.append(first["type"] if first["type"] == "ready" else first["error"]["code"])
            except ConnectionClosed:
                codes.append(ws.close_code)  # refused before it could send its start
        for ws in sockets:
            await ws.close()
        return codes

    codes = run(hold(35))
    assert codes.count("ready") == 30 and all(c in ("too_many_streams", 1013) for c in codes[30:]), codes

    # abrupt disconnects: half a stream, then the TCP connection dropped without a close
    host, port = live_server.url.removeprefix("http://").split(":")
    for _ in range(20):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
        s.recv(1024)
        s.close()

    async def dropped() -> None:
        ws = await connect(live_server.ws)
        await ws.send(START)
        await ws.recv()
        for _ in range(20):
            await ws.send(pcm16(speech[0][: RATE // 10]))
        ws.transport.abort()

    for _ in range(10):
        run(dropped())

    # hundreds of sockets that never say anything: each closed after the idle limit, and
    # past BentoML's cap on connections in flight (4 x 64 + 30 here), refused at the handshake
    async def idle(n: int) -> list:
        sockets, refused_handshakes = [], []
        for _ in range(n):
            try:
                sockets.append(await connect(live_server.ws))
            except InvalidStatus as e:
                refused_handshakes.append(e.response.status_code)
        await asyncio.sleep(2.5)
        return [ws.close_code for ws in sockets] + refused_handshakes

    closes = run(idle(300))
    assert closes.count(1008) >= 250 and set(closes) <= {1008, 429}, closes
    # and the server still answers both APIs, with no stream left open
    result = run(stream(live_server.ws, file_frames(speech[0][: 3 * RATE], speed=0)))
    assert result.close_code == 1000
    wav = requests.post(f"{live_server.url}/predict", data=encode(speech[0][: 3 * RATE], RATE, "WAV", "PCM_16"),
                        headers={"content-type": "audio/wav"}, timeout=30)  # fmt: skip
    assert wav.status_code == 200
    metrics = requests.get(f"{live_server.url}/metrics", timeout=10).text
    assert "ser_live_streams 0.0" in metrics
    assert live_server.alive()


def test_client_streams_a_capture_device(live_server, speech, tmp_path):
    """`stream --mic` through FFmpeg's capture path, with lavfi playing real speech as the device."""
    import subprocess
    import sys

    wav = tmp_path / "speech.wav"
    wav.write_bytes(encode(speech[0], RATE, "WAV", "PCM_16"))
    out = subprocess.run([sys.executable, "-m", "serving.live_client", "stream", "--mic", "--device-format", "lavfi",
                          "--device", f"amovie={wav}", "--url", live_server.ws], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("utterance ") == len(speech[1]) and "latency: p50" in out.stdout


def test_long_utterance_readings_reuse_kept_frames(ravdess_root):
    """Once an utterance is longer than a window, a reading's MFCCs come from frames kept
    from earlier readings: the same features as the file path's for that window (all but
    its two edge frames, which the file path pads) and the same answer."""
    from ser.audio import load_audio
    from ser.config import HOP_LENGTH, N_SAMPLES
    from ser.features import mfcc, window_mfcc
    from ser.inference import EmotionModel
    from tests.audio_factory import speech_span

    clips = [load_audio(p) for p in sorted((ravdess_root / "Actor_03").glob("*.flac"))[:5]]
    spans = [speech_span(x, SAMPLE_RATE) for x in clips]
    speech = np.concatenate(
        [x[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] for x, (a, b) in zip(clips, spans, strict=True)]
    )
    model = EmotionModel()
    session, checked = LiveSession(SAMPLE_RATE), 0  # at the model's rate: the kept audio is the input
    for i in range(0, len(speech), SAMPLE_RATE // 10):
        session.feed(speech[i : i + SAMPLE_RATE // 10])
        while session.hops_ready():
            before = session.incremental_readings
            reading = advance([session], model.predict_features, model.labels)[0][-1]
            if session.incremental_readings == before:
                continue
            first = session.mel_from * HOP_LENGTH
            expected = mfcc(speech[first : first + N_SAMPLES])
            got = window_mfcc(session.mel_cache[:N_FRAMES])
            assert np.abs(got[1:-1] - expected[1:-1]).max() < 0.05
            probs = model.predict_features(expected[None])[0]
            assert max(abs(reading["probabilities"][k] - p) for k, p in zip(model.labels, probs, strict=True)) < 0.05
            checked += 1
    assert checked >= 4, (checked, len(speech) / SAMPLE_RATE)


def test_concurrent_fast_streams_all_hear_the_same(live_server, speech):
    """Eight streams of the same speech sent as fast as they go, stepped together: each
    finds the same utterances (audio arriving while a step runs waits for the next one)."""
    audio, spans = speech

    async def many() -> list:
        return await asyncio.gather(*(stream(live_server.ws, file_frames(audio, speed=0)) for _ in range(8)))

    results = run(many())
    found = [[(m["start"], m["end"]) for m in r.messages if m["type"] == "utterance"] for r in results]
    assert all(r.close_code == 1000 for r in results)
    assert len(found[0]) == len(spans) and all(f == found[0] for f in found), found
