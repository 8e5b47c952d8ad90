"""WebSocket /live: emotion every half second while someone speaks.

The conversation is `LIVE_PROTOCOL` (also on /docs and in the README). Audio lives in
memory only while it can still be needed (the open utterance, or the last 4 s) and is
never written anywhere. One `LiveEngine` per worker steps every stream that has a hop
ready in one thread hop (`ser.live.advance`: VAD frames batched across streams, one model
call for all their windows).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import anyio
import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ser.audio import MAX_INPUT_RATE, MIN_INPUT_RATE
from ser.errors import InputError
from ser.inference import EmotionModel
from ser.live import HOP_S, LiveSession, advance
from serving.errors import error_body
from serving.metrics import LIVE_STREAMS, STAGE_SECONDS
from serving.settings import SETTINGS

LIVE_PROTOCOL = """**Live: WebSocket `/live`** (`python -m serving.live_client stream FILE` or `--mic`)

1. Client, first, as JSON text: `{"type": "start", "format": "s16le" | "f32le", "sample_rate": 8000-192000, "channels": 1 | 2}`
2. Server: `{"type": "ready", "hop_s": 0.5, "max_seconds", "max_frame_bytes", "idle_timeout_s", "labels", "model"}`
3. Client: binary frames of interleaved little-endian samples in the declared format, any size up to `max_frame_bytes`
4. Server, for every 0.5 s of audio: `{"type": "reading", "t": seconds of audio so far, "speech": true | false,
   "emotion", "confidence", "probabilities"}`: the emotion of the most recent speech (up to its last 4 s;
   `null` before any), and `speech`: whether there is speech now
5. Server, when a pause of 0.4 s closes an utterance: `{"type": "utterance", "index", "start", "end", "emotion",
   "confidence", "probabilities"}`, classified as `/predict` classifies an utterance
6. Client: `{"type": "end"}`; server: the last readings and utterance, `{"type": "end", "duration_s", "utterances"}`,
   close 1000

Refusals: `{"type": "error", "error": {"code", "message"}}`, then close 1003 (wrong format or message), 1008 (a
limit: stream length, idle time, or a page of another origin), 1009 (frame too large), 1013 (the worker's
streams are all taken; retry)."""

FORMATS = {"s16le": (np.dtype("<i2"), 32768.0), "f32le": (np.dtype("<f4"), 1.0)}
UNSUPPORTED, POLICY, TOO_BIG, TRY_LATER = 1003, 1008, 1009, 1013
MAX_BACKLOG_S = 8.0  # audio received and not yet answered, per stream


class LiveError(InputError):
    """A refused stream: the error body's code and message, and the close code."""

    def __init__(self, code: str, message: str, close_code: int) -> None:
        super().__init__(code, message, 400)
        self.close_code = close_code


class Stream:
    """A stream's session, and what passes between the event loop and the engine's thread.

    The session belongs to the engine's thread while a step runs, so the event loop never
    touches it: received audio waits in `inbox` (under `lock`) until the next step feeds it.
    """

    def __init__(self, session: LiveSession) -> None:
        self.session = session
        self.lock = threading.Lock()
        self.inbox: list[np.ndarray] = []
        self.received = 0  # input samples, counted on the event loop
        self.finishing = False  # the client sent {"type": "end"}
        self.ended = False
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    @property
    def seconds(self) -> float:
        return self.received / self.session.rate

    def put(self, samples: np.ndarray) -> None:
        with self.lock:
            self.inbox.append(samples)
        self.received += samples.shape[0]

    def backlog_s(self) -> float:
        """Audio received and not yet answered."""
        return self.seconds - self.session.hops_done * HOP_S

    def owed(self) -> bool:
        """A reading is owed, or the end: the engine should step this stream."""
        due = int(self.seconds / HOP_S + 1e-9) > self.session.hops_done
        return due or (self.finishing and not self.session.done())

    def take_inbox(self) -> None:
        """In the engine's thread: feed what arrived (and the end) to the session."""
        with self.lock:
            chunks, self.inbox = self.inbox, []
        if chunks:
            self.session.feed(np.concatenate(chunks))
        if self.finishing and not self.session.finished:
            self.session.finish()


class LiveEngine:
    """Steps all of this worker's streams together, in a worker thread, whenever any has a
    hop of audio ready."""

    def __init__(self, model: EmotionModel) -> None:
        self.model = model
        self.streams: set[Stream] = set()
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None

    def add(self, stream: Stream) -> None:
        self.streams.add(stream)
        LIVE_STREAMS.set(len(self.streams))
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def remove(self, stream: Stream) -> None:
        self.streams.discard(stream)
        LIVE_STREAMS.set(len(self.streams))

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while ready := [s for s in self.streams if s.owed()]:
                messages = await anyio.to_thread.run_sync(self._step, ready)
                for stream, out in messages:
                    for message in out:
                        stream.outbox.put_nowait(message)
            for stream in self.streams:
                if stream.finishing and stream.session.done() and not stream.ended:
                    stream.ended = True
                    stream.outbox.put_nowait(None)  # everything heard and answered

    def _step(self, streams: list[Stream]) -> list[tuple[Stream, list[dict[str, Any]]]]:
        start = time.perf_counter()
        for stream in streams:
            stream.take_inbox()
        ready = [s for s in streams if s.session.hops_ready()]
        out = (
            advance([s.session for s in ready], self.model.predict_features, self.model.labels)
            if ready
            else []
        )
        STAGE_SECONDS.labels(stage="live_step").observe(time.perf_counter() - start)
        return list(zip(ready, out, strict=True))


def _start_message(text: str | None) -> tuple[np.dtype, float, int, int]:
    try:
        start = json.loads(text or "")
    except ValueError:
        start = None
    if not isinstance(start, dict) or start.get("type") != "start":
        raise LiveError("bad_start", 'the first message must be JSON text: {"type": "start", "format": "s16le" '
                        'or "f32le", "sample_rate": 8000-192000, "channels": 1 or 2}', UNSUPPORTED)  # fmt: skip
    fmt, rate, channels = start.get("format"), start.get("sample_rate"), start.get("channels", 1)
    if fmt not in FORMATS:
        raise LiveError(
            "unsupported_format", f"format must be one of {sorted(FORMATS)}, not {fmt!r}", UNSUPPORTED
        )
    if not isinstance(rate, int) or not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
        raise LiveError("bad_sample_rate", f"sample_rate must be an integer from {MIN_INPUT_RATE} to "
                        f"{MAX_INPUT_RATE} Hz, not {rate!r}", UNSUPPORTED)  # fmt: skip
    if channels not in (1, 2):
        raise LiveError("bad_channels", f"channels must be 1 or 2, not {channels!r}", UNSUPPORTED)
    dtype, scale = FORMATS[fmt]
    return dtype, scale, rate, channels


def _samples(data: bytes, dtype: np.dtype, scale: float, channels: int) -> np.ndarray:
    if len(data) > SETTINGS.live_max_frame_bytes:
        raise LiveError(
            "frame_too_large", f"audio frames may hold at most {SETTINGS.live_max_frame_bytes} bytes", TOO_BIG
        )
    if len(data) % (dtype.itemsize * channels):
        raise LiveError("bad_frame", f"a frame must hold whole samples: a multiple of {dtype.itemsize * channels} "
                        f"bytes, not {len(data)}", UNSUPPORTED)  # fmt: skip
    x = np.frombuffer(data, dtype).astype(np.float32) / scale
    if not np.isfinite(x).all():
        raise LiveError("bad_frame", "the frame holds NaN or infinite samples", UNSUPPORTED)
    return x.reshape(-1, channels).mean(axis=1) if channels > 1 else x


def _origin_allowed(ws: WebSocket) -> bool:
    """Browsers send any page's Origin to any WebSocket; only this site's pages (and the
    configured CORS origins) may stream. Clients that send no Origin (scripts) may."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    host = ws.headers.get("host", "")
    return origin.split("://", 1)[-1] == host or origin in SETTINGS.cors_origins


async def live_endpoint(ws: WebSocket, engine: LiveEngine) -> None:
    if not _origin_allowed(ws):
        await ws.close(POLICY, "origin not allowed")  # before accepting: the handshake gets 403
        return
    await ws.accept()
    stream: Stream | None = None
    try:
        if len(engine.streams) >= SETTINGS.live_max_streams:
            raise LiveError("too_many_streams", f"this worker serves {SETTINGS.live_max_streams} live streams "
                            "already; retry shortly", TRY_LATER)  # fmt: skip
        with anyio.fail_after(SETTINGS.live_idle_s):
            first = await ws.receive()
        _raise_if_closed(first)
        dtype, scale, rate, channels = _start_message(first.get("text"))
        stream = Stream(LiveSession(rate))
        engine.add(stream)
        info = engine.model.info
        await ws.send_json({"type": "ready", "hop_s": HOP_S, "max_seconds": SETTINGS.live_max_seconds,
                            "max_frame_bytes": SETTINGS.live_max_frame_bytes, "idle_timeout_s": SETTINGS.live_idle_s,
                            "labels": list(info.labels), "model": {"name": info.name, "version": info.version}})  # fmt: skip
        await _converse(ws, stream, engine, dtype, scale, channels)
    except LiveError as e:
        await _refuse(ws, e)
    except (WebSocketDisconnect, TimeoutError) as e:
        if isinstance(e, TimeoutError):
            await _refuse(ws, LiveError("idle", f"nothing received for {SETTINGS.live_idle_s:g} s", POLICY))
    finally:
        if stream is not None:
            engine.remove(stream)


async def _converse(
    ws: WebSocket, stream: Stream, engine: LiveEngine, dtype: np.dtype, scale: float, channels: int
) -> None:
    """Receive audio while the sender relays the engine's messages; the first to fail ends both."""
    error: Exception | None = None
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_send_messages, ws, stream)
        try:  # caught here: raised through the task group it would come out as a group
            await _receive_audio(ws, stream, engine, dtype, scale, channels)
        except (LiveError, WebSocketDisconnect, TimeoutError) as e:
            error = e
            tasks.cancel_scope.cancel()
    if error is not None:
        raise error


def _raise_if_closed(message: dict[str, Any]) -> None:
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))


async def _receive_audio(
    ws: WebSocket, stream: Stream, engine: LiveEngine, dtype: np.dtype, scale: float, channels: int
) -> None:
    session = stream.session
    while True:
        with anyio.fail_after(SETTINGS.live_idle_s):
            message = await ws.receive()
        _raise_if_closed(message)
        if message.get("bytes") is not None:
            samples = _samples(message["bytes"], dtype, scale, channels)
            if stream.seconds + samples.shape[0] / session.rate > SETTINGS.live_max_seconds:
                raise LiveError("stream_too_long", f"a live stream may last {SETTINGS.live_max_seconds:g} s of audio; "
                                "start a new one", POLICY)  # fmt: skip
            stream.put(samples)
            if stream.owed():
                engine.wake.set()
            # a client sending faster than the engine answers waits here (and TCP slows it):
            # unanswered audio, and the memory it holds, stays under MAX_BACKLOG_S
            while stream.backlog_s() > MAX_BACKLOG_S:
                await anyio.sleep(0.01)
            continue
        try:
            end = json.loads(message.get("text") or "")
        except ValueError:
            end = None
        if not isinstance(end, dict) or end.get("type") != "end":
            raise LiveError(
                "bad_message",
                'after the start message, send binary audio frames or {"type": "end"}',
                UNSUPPORTED,
            )
        stream.finishing = True
        engine.wake.set()
        return  # the sender closes the socket after the last message


async def _send_messages(ws: WebSocket, stream: Stream) -> None:
    started = time.monotonic()
    while (message := await stream.outbox.get()) is not None:
        await ws.send_json(message)
    session = stream.session
    await ws.send_json({"type": "end", "duration_s": round(session.seconds, 3), "utterances": session.utterances,
                        "wall_s": round(time.monotonic() - started, 3)})  # fmt: skip
    await ws.close(1000)


async def _refuse(ws: WebSocket, error: LiveError) -> None:
    if ws.application_state != WebSocketState.CONNECTED or ws.client_state != WebSocketState.CONNECTED:
        return
    try:
        await ws.send_text(json.dumps({"type": "error", **json.loads(error_body(error.code, error.message))}))
        await ws.close(error.close_code, error.message[:120])
    except (WebSocketDisconnect, RuntimeError):
        pass
