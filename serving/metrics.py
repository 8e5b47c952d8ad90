"""Application metrics on /metrics, beside BentoML's own HTTP counters.

What an operator asks of an emotion service: what it answers (per emotion, how often
unsure), what it is sent (audio length), what it refuses (errors by code) and where a
request's time goes (decoding, features, model). Made with BentoML's metrics API, so
they share BentoML's registry and multiprocess collection.
"""

from __future__ import annotations

import bentoml

PREDICTIONS = bentoml.metrics.Counter(
    name="ser_predictions_total",
    documentation="Answers given, by top emotion and whether the answer was flagged uncertain",
    labelnames=["emotion", "uncertain"],
)
AUDIO_SECONDS = bentoml.metrics.Histogram(
    name="ser_audio_duration_seconds",
    documentation="Length of the analysed recordings",
    buckets=(0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600, float("inf")),
)
ERRORS = bentoml.metrics.Counter(
    name="ser_errors_total",
    documentation="Refused requests, by the error code in the answer",
    labelnames=["code"],
)
STAGE_SECONDS = bentoml.metrics.Histogram(
    name="ser_stage_seconds",
    documentation="Time in each stage of a prediction: read (the body), decode (and resample), segmentation, "
    "features, model; live_step: one step of all live streams",
    labelnames=["stage"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, float("inf")),
)

LIVE_STREAMS = bentoml.metrics.Gauge(
    name="ser_live_streams",
    documentation="Open WebSocket /live streams",
    multiprocess_mode="livesum",
)


def record_answer(result: dict, timings: dict[str, float]) -> None:
    PREDICTIONS.labels(emotion=result["emotion"], uncertain=str(result["uncertain"]).lower()).inc()
    AUDIO_SECONDS.observe(result["duration_s"])
    for stage, seconds in timings.items():
        STAGE_SECONDS.labels(stage=stage).observe(seconds)


def server_timing(timings: dict[str, float]) -> str:
    """The `Server-Timing` header: each stage's milliseconds, shown by browsers' developer
    tools and read by the benchmark's profile (`name;dur=ms`, comma-separated)."""
    return ", ".join(f"{stage};dur={1000 * seconds:.2f}" for stage, seconds in timings.items())


def record_error(code: str) -> None:
    ERRORS.labels(code=code).inc()
