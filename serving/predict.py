"""POST /predict: one uploaded recording in, its emotion out.

A Starlette route rather than a BentoML `Path` input, so that the upload stays in memory
(BentoML writes `Path` uploads to disk under the client's file name) and every refusal
has the API's error shape. The model call goes through the service's batchable endpoint
(adaptive batching) or straight to onnxruntime, as `SER_INFERENCE_MODE` says.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

import anyio
import numpy as np
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from ser.audio import AudioError, load_audio
from ser.config import SAMPLE_RATE
from ser.features import clip_features
from ser.inference import EmotionModel, build_result
from serving.errors import ApiError, error_response
from serving.multipart import parse_multipart
from serving.settings import SETTINGS, Settings

FIELD = "audio"


def encode_features(features: np.ndarray) -> str:
    """float32 windows -> base64 text: 40x cheaper than JSON number lists for 6,920 floats."""
    return base64.b64encode(np.ascontiguousarray(features, dtype="<f4").tobytes()).decode("ascii")


def decode_features(text: str, frames: int, coeffs: int) -> np.ndarray:
    """Inverse of `encode_features`; ValueError for anything that isn't whole finite windows."""
    raw = base64.b64decode(text, validate=True)
    size = frames * coeffs * 4
    if not raw or len(raw) % size:
        raise ValueError(f"features must be a whole number of {frames}x{coeffs} float32 windows")
    features = np.frombuffer(raw, dtype="<f4").reshape(-1, frames, coeffs)
    if not np.isfinite(features).all():
        raise ValueError("features hold NaN or infinite values")
    return features


async def read_body(request: Request, timeout_s: float = 30.0) -> bytes:
    """The body, or 408 when it hasn't all arrived within `timeout_s` (a client trickling
    bytes). Size is BodyLimitMiddleware's job: it refuses oversized bodies for every route."""
    chunks = []
    try:
        with anyio.fail_after(timeout_s):
            async for chunk in request.stream():
                chunks.append(chunk)
    except TimeoutError as e:
        raise ApiError("request_timeout", f"the upload did not arrive within {timeout_s:g} s", 408) from e
    except ClientDisconnect as e:  # nobody to answer; end the request without a traceback
        raise ApiError("client_disconnected", "the client went away during the upload", 400) from e
    return b"".join(chunks)


def pick_audio(body: bytes, content_type: str) -> bytes:
    parts = parse_multipart(body, content_type)
    audio = [p for p in parts if p.name == FIELD]
    if not audio:
        got = ", ".join(sorted({repr(p.name) for p in parts})) or "none"
        raise ApiError("missing_file", f"no file field named '{FIELD}' in the form (fields sent: {got})")
    if len(audio) > 1:
        raise ApiError("too_many_files", f"send exactly one file in the '{FIELD}' field, not {len(audio)}")
    return bytes(audio[0].data)


def _featurise(data: bytes, max_seconds: float) -> tuple[np.ndarray, list[tuple[float, float]], float]:
    samples = load_audio(data, SAMPLE_RATE, max_seconds)
    features, spans = clip_features(samples)
    return features, spans, samples.shape[0] / SAMPLE_RATE


def _is_overload(exc: Exception) -> bool:
    """BentoML's ServiceUnavailable (503), raised directly or relayed by the self-call client."""
    from bentoml.exceptions import BentoMLException

    status = getattr(exc, "error_code", None)
    return isinstance(exc, BentoMLException) and int(getattr(status, "value", status) or 0) in (429, 503)


Classifier = Callable[[np.ndarray], Awaitable[np.ndarray]]


def make_predict_endpoint(
    get_model: Callable[[], EmotionModel],
    get_classifier: Callable[[], Classifier],
    settings: Settings = SETTINGS,
) -> Callable[[Request], Awaitable[Response]]:
    """Build the route handler; the getters resolve the service instance lazily per worker.

    `get_classifier` is used in batching mode only: it sends features to the batchable
    endpoint. In direct mode the model runs in the request's worker thread.
    """

    async def predict(request: Request) -> Response:
        if request.method != "POST":
            return error_response("method_not_allowed", "POST a multipart form with an 'audio' file", 405)
        try:
            body = await read_body(request, settings.body_timeout_s)
            data = pick_audio(body, request.headers.get("content-type", ""))
            del body
            if not data:
                raise ApiError("empty_file", f"the '{FIELD}' file is empty")
            model = get_model()
            if settings.inference_mode == "direct":
                # decode, features and model in one worker-thread hop, as the CLI runs them
                result = await anyio.to_thread.run_sync(model.analyse, data, settings.max_audio_seconds)
                del data
                return JSONResponse(result)
            else:
                features, spans, duration = await anyio.to_thread.run_sync(_featurise, data, settings.max_audio_seconds)
                try:
                    probs = await get_classifier()(features)
                except Exception as e:  # batching dispatcher shedding load, or its self-call failing
                    if _is_overload(e):
                        return error_response("overloaded", "the server is busy; retry shortly", 503,
                                              headers={"retry-after": "1"})  # fmt: skip
                    raise
            del data  # the upload is not kept a moment longer than the analysis needs
            return JSONResponse(build_result(probs, spans, duration, model.info))
        except AudioError as e:
            return error_response(e.code, e.message, e.status)
        except ApiError as e:
            return error_response(e.code, e.message, e.status)

    return predict
