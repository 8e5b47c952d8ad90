"""Server settings, from environment variables so a container can change them.

Decorator settings (workers, timeouts) are frozen into a Bento at build time; these are
read when the server starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    max_upload_bytes: int = int(_env("SER_MAX_UPLOAD_MB", "25")) * 1024 * 1024
    # bytes of request bodies held at once per worker; past it, 503 and retry. Each held
    # byte costs a few more at the analysis's peak (copies, samples, windows); with 2
    # workers, 64 concurrent 24 MiB uploads peaked at 1.5 GiB (tests/test_memory.py)
    max_in_flight_bytes: int = int(_env("SER_MAX_INFLIGHT_MB", "128")) * 1024 * 1024
    max_audio_seconds: float = float(_env("SER_MAX_AUDIO_SECONDS", "600"))
    # "batching": send features to the batchable endpoint (adaptive batching across
    # requests); "direct": run onnxruntime in the request's own worker thread.
    inference_mode: str = _env("SER_INFERENCE_MODE", "direct")
    workers: int = int(_env("SER_WORKERS", "2"))
    # 1: ask BentoML for a GPU (frozen into a Bento at build) and run the model with
    # onnxruntime's CUDA provider; 0: the CPU, also where onnxruntime-gpu is installed
    gpu: bool = _env("SER_GPU", "0") == "1"
    max_batch_size: int = int(_env("SER_MAX_BATCH_SIZE", "32"))
    # BentoML's dispatcher answers 503 to calls it expects to finish later than this, so
    # this is a shedding deadline, not the batching wait (which it tunes by itself)
    max_latency_ms: int = int(_env("SER_MAX_LATENCY_MS", "1000"))
    max_concurrency: int = int(_env("SER_MAX_CONCURRENCY", "64"))  # per worker process
    request_timeout_s: float = float(_env("SER_REQUEST_TIMEOUT_S", "60"))
    body_timeout_s: float = float(_env("SER_BODY_TIMEOUT_S", "30"))  # slow uploads are cut off
    header_timeout_s: float = float(_env("SER_HEADER_TIMEOUT_S", "10"))  # slow request headers too
    # analysis (waiting for a thread included) stops after this and answers 503, before
    # BentoML's own timeout would answer 504 outside the error shape
    work_timeout_s: float = float(_env("SER_WORK_TIMEOUT_S", "50"))
    # Uncompressed WAV/AIFF up to this long that needs no VAD (4 s or less, or fixed
    # windows) is analysed on the worker's event loop: 2-3 ms of work, less than the thread
    # hop and the hang-up watcher cost; anything else goes to a thread. 0: never.
    inline_max_seconds: float = float(_env("SER_INLINE_MAX_SECONDS", "6"))
    # Origins (comma-separated, e.g. "https://app.example.org") whose pages may call the
    # API from a browser; empty: CORS off, the browser's same-origin rule applies.
    # WebSocket /live, per worker: streams at once, audio per stream, bytes per frame, and
    # seconds without a message before a stream is closed
    live_max_streams: int = int(_env("SER_LIVE_MAX_STREAMS", "200"))
    live_max_seconds: float = float(_env("SER_LIVE_MAX_SECONDS", "1800"))
    live_max_frame_bytes: int = int(_env("SER_LIVE_MAX_FRAME_KB", "256")) * 1024
    live_idle_s: float = float(_env("SER_LIVE_IDLE_S", "10"))
    cors_origins: tuple[str, ...] = tuple(
        o.strip() for o in _env("SER_CORS_ORIGINS", "").split(",") if o.strip()
    )

    def __post_init__(self) -> None:
        if self.inference_mode not in {"batching", "direct"}:
            raise ValueError(
                f"SER_INFERENCE_MODE must be 'batching' or 'direct', not {self.inference_mode!r}"
            )

    @property
    def http_config(self) -> dict:
        """BentoML's `http` service config: CORS for the configured origins only."""
        if not self.cors_origins:
            return {"cors": {"enabled": False}}
        return {"cors": {"enabled": True, "access_control_allow_origins": list(self.cors_origins),
                         "access_control_allow_methods": ["GET", "POST", "OPTIONS"],
                         "access_control_allow_headers": ["content-type"], "access_control_max_age": 600}}  # fmt: skip

    @property
    def providers(self) -> list[str]:
        """onnxruntime's execution providers for the served model."""
        from ser.inference import available_providers  # noqa: PLC0415 (settings stay light)

        return available_providers(gpu=self.gpu)

    @property
    def ort_threads(self) -> int:
        """onnxruntime threads per worker: SER_ORT_THREADS, or cores / workers so that
        workers don't fight over cores."""
        return int(_env("SER_ORT_THREADS", "0")) or max(1, (os.cpu_count() or 1) // max(1, self.workers))


SETTINGS = Settings()
