"""BentoML service: the bundled ONNX emotion model behind POST /predict.

    bentoml serve service:SpeechEmotion        (or ./serve.sh, which also sets things up)

Routes: /predict (multipart upload, see serving.predict), /classify_features (the
batchable model endpoint, base64 float32 MFCC windows), the web pages (/, /technical,
/demo, /about), /docs and /openapi.json, /model, and BentoML's /livez, /readyz, /metrics. No TensorFlow and no librosa are imported here.
"""

from __future__ import annotations

from pathlib import Path

import bentoml
import numpy as np
from starlette.applications import Starlette
from starlette.routing import Route
from threadpoolctl import threadpool_limits

from ser.config import N_FRAMES, N_MFCC
from ser.inference import EmotionModel, available_providers
from serving.middleware import (
    BodyLimitMiddleware,
    BodyTooLarge,
    ConcurrencyLimitMiddleware,
    ErrorShapeMiddleware,
    JsonOnlyMiddleware,
    too_large_handler,
)
from serving.model_import import MODEL_FILE
from serving.predict import decode_features, encode_features, make_predict_endpoint
from serving.settings import SETTINGS
from web import pages

MODEL_TAG = "ser_cnn_bilstm:latest"


def _service() -> SpeechEmotion:
    return bentoml.get_current_service()


def _batching_classifier():
    svc = _service()

    async def via_batching(features: np.ndarray) -> np.ndarray:
        out = await svc.to_async.classify_features([encode_features(features)])
        return np.asarray(out[0], dtype=np.float32)

    return via_batching


app = Starlette(
    routes=[
        Route("/predict", make_predict_endpoint(lambda: _service().model, _batching_classifier), methods=["GET", "POST"]),
        *pages.routes(
            get_info=lambda: _service().model.info,
            get_model_dir=lambda: Path(_service().bento_model.path),
            get_openapi=lambda: SpeechEmotion.openapi_spec.asdict(),
        ),
    ],
    exception_handlers={BodyTooLarge: too_large_handler},
)


@bentoml.service(
    name="speech_emotion",
    workers=SETTINGS.workers,
    resources={"gpu": 1} if SETTINGS.gpu else {"cpu": str(SETTINGS.workers)},
    traffic={"timeout": SETTINGS.request_timeout_s, "max_concurrency": 4 * SETTINGS.max_concurrency},
    # bentoml/BentoML#5540: the self-call session is recycled every 100 requests by
    # default, which fails 1-8 % of calls under load; keep one session for the worker.
    runner_connection={"max_requests": 1_000_000_000, "max_age": 1e9},
)
@bentoml.asgi_app(app, path="/")
class SpeechEmotion:
    bento_model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        # numpy's BLAS would start a thread per core in every worker; the feature matrices
        # are small, and spinning BLAS threads across workers oversubscribe the cores
        threadpool_limits(1, user_api="blas")
        path = Path(self.bento_model.path_of(MODEL_FILE))
        self.model = EmotionModel(path, providers=available_providers(), intra_op_threads=SETTINGS.ort_threads)

    def __is_ready__(self) -> bool:
        return getattr(self, "model", None) is not None

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.max_batch_size, max_latency_ms=SETTINGS.max_latency_ms)
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


# Listed outermost first: one error shape for everything, then the public concurrency
# cap, then the body limit. BentoML's own max_concurrency (above) is a looser backstop.
SpeechEmotion.add_asgi_middleware(ErrorShapeMiddleware)
SpeechEmotion.add_asgi_middleware(ConcurrencyLimitMiddleware, limit=SETTINGS.max_concurrency)
SpeechEmotion.add_asgi_middleware(BodyLimitMiddleware, max_bytes=SETTINGS.max_upload_bytes)
SpeechEmotion.add_asgi_middleware(JsonOnlyMiddleware, paths=("/classify_features",))
