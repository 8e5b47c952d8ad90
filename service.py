"""BentoML service: the bundled ONNX emotion model behind POST /predict.

    bentoml serve service:SpeechEmotion        (or ./serve.sh, which also sets things up)

Read `SpeechEmotion.predict` top to bottom for a request's path: the input spec
(`serving.request`) reads the upload in memory, `EmotionModel.analyse` decodes, computes
features and runs onnxruntime, and the answer is a typed `Prediction`. With
SER_INFERENCE_MODE=batching the model runs instead in its own service, `EmotionClassifier`,
with BentoML's adaptive batching (slower than direct on this CPU and on an H100: README,
Speed). SER_GPU=1 runs the model on the GPU. Also served: `/classify_features`
(MFCC windows in, probabilities out), the WebSocket `/live` (readings while someone
speaks; `serving.live`), `/model`, the pages (/, /technical, /demo, /about),
/docs, /openapi.json and BentoML's /livez, /readyz, /metrics. No TensorFlow and no librosa
are imported here.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import anyio
import bentoml
import numpy as np
from bentoml.validators import DType, Shape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from threadpoolctl import threadpool_limits

from ser.audio import short_pcm_seconds
from ser.config import MODEL_NAME, N_FRAMES, N_MFCC
from ser.errors import InputError, WorkLimit
from ser.inference import EmotionModel, build_result, features_of
from ser.segments import Segmentation, uses_vad
from serving import bentoml_patches, connections
from serving.errors import error_response
from serving.live import LiveEngine, live_endpoint
from serving.memory import return_freed_memory
from serving.metrics import record_answer, server_timing
from serving.middleware import (
    BodyLimitMiddleware,
    BodyTooLarge,
    ConcurrencyLimitMiddleware,
    ErrorShapeMiddleware,
    FeaturesBodyMiddleware,
    SecurityHeadersMiddleware,
    too_large_handler,
)
from serving.model_import import MODEL_FILE
from serving.predict import decode_features, is_overload, is_stale_connection
from serving.request import PredictRequest, Recording
from serving.schema import Prediction
from serving.settings import SETTINGS
from web import pages

logger = logging.getLogger("bentoml")

bentoml_patches.install()  # bounded metric labels, a safe access log, tracing only when exported
connections.install()  # request headers within 10 s; unparseable requests in the error shape


def _service() -> SpeechEmotion:
    return bentoml.get_current_service()


async def live(websocket: WebSocket) -> None:
    """WebSocket /live: a reading every 0.5 s of streamed audio (protocol: serving.live)."""
    await live_endpoint(websocket, _service().live_engine)


app = Starlette(
    routes=[
        *pages.routes(
            get_model=lambda: _service().model,
            get_model_dir=lambda: Path(_service().bento_model.path),
            get_openapi=lambda: SpeechEmotion.openapi_spec.asdict(),
        ),
        WebSocketRoute("/live", live),
    ],
    exception_handlers={BodyTooLarge: too_large_handler},
)


Windows = Annotated[np.ndarray, DType("float32"), Shape((-1, N_FRAMES, N_MFCC))]


@bentoml.service(
    name="emotion_model",
    workers=1,
    resources={"gpu": 1} if SETTINGS.gpu else {"cpu": "1"},
    traffic={"timeout": SETTINGS.request_timeout_s},
)
class EmotionClassifier:
    """The model alone, with BentoML's adaptive batching: MFCC windows in, calibrated
    probabilities out. The API service calls it (`bentoml.depends`) when
    SER_INFERENCE_MODE=batching; the API service's own onnxruntime measured faster, on
    this CPU and with an H100 alike (README, Speed)."""

    bento_model = bentoml.models.BentoModel(f"{MODEL_NAME}:latest")

    def __init__(self) -> None:
        self.model = EmotionModel(
            Path(self.bento_model.path_of(MODEL_FILE)), SETTINGS.providers, SETTINGS.ort_threads
        )

    @bentoml.api(
        batchable=True, max_batch_size=SETTINGS.max_batch_size, max_latency_ms=SETTINGS.max_latency_ms
    )
    def classify(self, windows: Windows) -> np.ndarray:
        return self.model.predict_features(windows)


@bentoml.service(
    name="speech_emotion",
    workers=SETTINGS.workers,
    resources={"cpu": str(SETTINGS.workers)}
    if not SETTINGS.gpu or SETTINGS.inference_mode == "batching"
    else {"gpu": 1},
    # BentoML counts open WebSockets as requests in flight: live streams get their own share
    traffic={
        "timeout": SETTINGS.request_timeout_s,
        "max_concurrency": 4 * SETTINGS.max_concurrency + SETTINGS.live_max_streams,
    },  # fmt: skip
    http=SETTINGS.http_config,
    # bentoml/BentoML#5540: the client of the model service is recycled every 100 requests
    # by default, which fails 1-8 % of calls under load; keep one for the worker's life.
    runner_connection={"max_requests": 1_000_000_000, "max_age": 1e9},
)
@bentoml.asgi_app(app, path="/")
class SpeechEmotion:
    bento_model = bentoml.models.BentoModel(f"{MODEL_NAME}:latest")
    if SETTINGS.inference_mode == "batching":  # only then is the model service started
        classifier = bentoml.depends(EmotionClassifier)

    def __init__(self) -> None:
        # numpy's BLAS would start a thread per core in every worker; the feature matrices
        # are small, and spinning BLAS threads across workers oversubscribe the cores
        threadpool_limits(1, user_api="blas")
        return_freed_memory()  # a burst of large uploads must not stay resident
        path = Path(self.bento_model.path_of(MODEL_FILE))
        self.model = EmotionModel(path, SETTINGS.providers, SETTINGS.ort_threads)
        if SETTINGS.gpu and self.model.provider != "CUDAExecutionProvider":
            logger.warning("SER_GPU=1 but the model runs on %s: is onnxruntime-gpu installed "
                           "and a GPU visible?", self.model.provider)  # fmt: skip
        self.live_engine = LiveEngine(self.model)

    def __is_ready__(self) -> bool:
        return getattr(self, "model", None) is not None

    @bentoml.api(route="/predict", input_spec=PredictRequest)
    async def predict(
        self,
        audio: Recording,
        top_k: int = 3,
        segmentation: Segmentation = "speech",
        ctx: bentoml.Context = None,
    ) -> Prediction:
        """The speaker's emotion in one recording, with calibrated probabilities.

        Send the file as the multipart field `audio` (`curl -F audio=@clip.wav`) or as the
        raw body (`Content-Type: audio/*` or `application/octet-stream`). Refusals answer
        4xx with `{"error": {"code", "message"}}`.
        """
        start = time.perf_counter()
        timings: dict[str, float] = {"read": audio.read_s}
        try:
            if audio.refusal:
                raise audio.refusal
            result = await self._analyse_watched(audio.take(), top_k, segmentation, timings, ctx.request)
        except InputError as e:
            ctx.response.status_code = e.status  # BentoML gives every answer the context's status
            return error_response(e, headers={"retry-after": "1"} if e.status == 503 else None)
        record_answer(result, timings)
        answer = Prediction.model_validate(result)
        timings["handler"] = time.perf_counter() - start  # from the parsed request to the typed answer
        ctx.response.headers["server-timing"] = server_timing(timings)
        return answer

    async def _analyse_watched(
        self, data: bytes, top_k: int, segmentation: Segmentation, timings: dict[str, float], request: Request
    ) -> dict:
        """The analysis, stopped at the work deadline or as soon as the client hangs up.

        A short uncompressed recording that needs no VAD is analysed right here on the
        event loop (2-3 ms: the thread hop and the watcher cost more, README Speed);
        anything else in a worker thread, watched.
        """
        limit = WorkLimit(SETTINGS.work_timeout_s)
        seconds = short_pcm_seconds(data, SETTINGS.inline_max_seconds)
        if SETTINGS.inference_mode == "direct" and seconds and not uses_vad(seconds, segmentation):
            return self.model.analyse(data, SETTINGS.max_audio_seconds, top_k, timings, limit, segmentation)
        async with anyio.create_task_group() as watchers:
            watchers.start_soon(_watch_client, request, limit)
            try:  # caught here: raised through the task group it would come out as a group
                result, error = await self._analyse(data, top_k, segmentation, timings, limit), None
            except InputError as e:
                result, error = None, e
            finally:
                watchers.cancel_scope.cancel()
        if error is not None:
            raise error
        return result

    async def _analyse(
        self, data: bytes, top_k: int, segmentation: Segmentation, timings: dict[str, float], limit: WorkLimit
    ) -> dict:
        max_s = SETTINGS.max_audio_seconds
        if SETTINGS.inference_mode == "direct":  # decode, features and model in one thread hop
            return await anyio.to_thread.run_sync(
                self.model.analyse, data, max_s, top_k, timings, limit, segmentation
            )
        features, plan, duration = await anyio.to_thread.run_sync(
            features_of, data, max_s, timings, limit, segmentation
        )
        del data  # the upload is not kept a moment longer than the analysis needs
        start = time.perf_counter()
        try:
            probs = await self._classify(features)
        except Exception as e:  # the model service's dispatcher shedding load
            if is_overload(e):
                raise InputError("overloaded", "the server is busy; retry shortly", 503) from e
            raise
        timings["model"] = time.perf_counter() - start  # the batching wait and the call included
        return build_result(np.asarray(probs, dtype=np.float32), plan, duration, self.model.info, top_k)

    async def _classify(self, features: np.ndarray) -> np.ndarray:
        """The model service's probabilities for the windows.

        Retried once on a fresh connection when the model service closed the kept-alive one
        as it was being reused (uvicorn closes idle connections after 5 s, aiohttp's pool
        keeps them 15 s): 1-2 % of requests at 8 clients failed with a 500 that way
        (README, Speed). The call changes nothing, so a second one is safe.
        """
        try:
            return await self.classifier.to_async.classify(features)
        except Exception as e:
            if not is_stale_connection(e):
                raise
        return await self.classifier.to_async.classify(features)

    @bentoml.api
    def classify_features(self, features: list[str]) -> list[list[list[float]]]:
        """Calibrated probabilities for MFCC windows.

        Each item: base64 of little-endian float32 windows, shape (n, 173, 40), as made by
        `ser.features.clip_features`. Returns, per item, n rows of probabilities in the
        order of the model's labels.
        """
        if not features:  # an empty batch is valid and has an empty answer
            return []
        try:
            arrays = [decode_features(f, N_FRAMES, N_MFCC) for f in features]
        except (ValueError, TypeError) as e:
            raise bentoml.exceptions.InvalidArgument(str(e)) from e
        probs = self.model.predict_features(np.concatenate(arrays))
        out, start = [], 0
        for a in arrays:
            out.append(probs[start : start + len(a)].tolist())
            start += len(a)
        return out


async def _watch_client(request: Request, limit: WorkLimit) -> None:
    """Mark the work for stopping as soon as the client hangs up (within 0.1 s).

    It sleeps first: a look costs ~0.4 ms of the event loop (the receive passes through
    every middleware's wrapper, OpenTelemetry's span included), and most answers are
    ready before the first 0.1 s is up."""
    while True:
        await anyio.sleep(0.1)
        if await request.is_disconnected():
            limit.client_gone = True
            return


# Listed outermost first: security headers on everything, one error shape for BentoML's
# own answers and Starlette's 404/405, the public concurrency cap, the body limit, then
# /classify_features's body check. BentoML's own max_concurrency (above) is a looser backstop.
SpeechEmotion.add_asgi_middleware(SecurityHeadersMiddleware)
SpeechEmotion.add_asgi_middleware(ErrorShapeMiddleware)
SpeechEmotion.add_asgi_middleware(ConcurrencyLimitMiddleware, limit=SETTINGS.max_concurrency)
SpeechEmotion.add_asgi_middleware(
    BodyLimitMiddleware, max_bytes=SETTINGS.max_upload_bytes, max_in_flight=SETTINGS.max_in_flight_bytes
)
SpeechEmotion.add_asgi_middleware(
    FeaturesBodyMiddleware, path="/classify_features", timeout_s=SETTINGS.body_timeout_s
)
