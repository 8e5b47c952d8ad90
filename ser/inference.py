"""Run the exported ONNX model: shared by the server, the `predict` command and benchmarks.

The ONNX file is the single source of truth: it carries the feature configuration, label
order, normalisation and calibration (see `export.export_onnx`). `EmotionModel` refuses a
model whose feature configuration differs from `ser.config`, because the features this
code computes would then not be the features the model was trained on.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ser.audio import DEFAULT_MAX_SECONDS, Source, load_audio
from ser.config import FEATURE_CONFIG, MODEL_NAME, N_FRAMES, N_MFCC, SAMPLE_RATE, FeatureConfig
from ser.errors import WorkLimit
from ser.features import filterbank, mfcc
from ser.segments import (
    Plan,
    Segmentation,
    clip_probabilities,
    plan_windows,
    silences,
    utterance_probabilities,
)
from ser.vad import session as vad_session

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL = REPO_ROOT / "model_store" / f"{MODEL_NAME}.onnx"


def available_providers(gpu: bool = True) -> list[str]:
    """CUDA first when asked for and onnxruntime-gpu is installed, CPU always as the fallback."""
    have = ort.get_available_providers()
    wanted = ("CUDAExecutionProvider", "CPUExecutionProvider") if gpu else ("CPUExecutionProvider",)
    return [p for p in wanted if p in have]


@lru_cache(maxsize=1)
def load_cuda_libraries() -> None:
    """CUDA and cuDNN from the pip packages of `onnxruntime-gpu[cuda,cudnn]`
    (requirements/serve-gpu.txt), so that no CUDA image or LD_LIBRARY_PATH is needed; a
    CUDA toolkit already on the library path serves as well."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        preload()


def gpu_graph(model_path: str | Path) -> Path:
    """Where the float32 graph of an int8 model lies (exported beside it): onnxruntime's
    CUDA provider has no kernel for dynamic quantization (DynamicQuantizeLinear,
    DynamicQuantizeLSTM), so on a GPU the int8 graph would run its LSTM on the CPU."""
    path = Path(model_path)
    return path.with_name(path.stem + ".fp32" + path.suffix)


# windows per onnxruntime run (memory; see EmotionModel.predict_features): on a CPU, 8 cost
# what 32 cost a window (1.37 ms, int8, 1 thread, 2026-12-06) and a quarter of the arena
CPU_MODEL_BATCH = 8
GPU_MODEL_BATCH = 32

# For models exported before a threshold was chosen on validation speakers: below 0.5, a
# calibrated answer is more likely wrong than right.
FALLBACK_UNCERTAINTY_THRESHOLD = 0.5


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    labels: tuple[str, ...]
    feature_config: FeatureConfig
    metadata: dict[str, str]

    @property
    def uncertainty_threshold(self) -> float:
        """Answers with a calibrated confidence below this are flagged `uncertain`."""
        return float(self.metadata.get("uncertainty_threshold", FALLBACK_UNCERTAINTY_THRESHOLD))


def read_model_info(model_path: str | Path) -> ModelInfo:
    """Metadata of an exported model, without building an inference session."""
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return info_from_metadata(session.get_modelmeta().custom_metadata_map, model_path)


def info_from_metadata(meta: dict[str, str], source: Any) -> ModelInfo:
    """ModelInfo from an exported model's metadata map (or one built the same way)."""
    try:
        config = FeatureConfig.from_json(meta["feature_config"])
        return ModelInfo(meta["model_name"], meta["model_version"], config.labels, config, meta)
    except (KeyError, ValueError) as e:
        raise RuntimeError(
            f"{source} lacks valid ser metadata ({e}); export it with export.export_onnx"
        ) from e


class EmotionModel:
    """An onnxruntime session plus the metadata that says how to feed it."""

    def __init__(
        self,
        model_path: str | Path = BUNDLED_MODEL,
        providers: list[str] | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads or int(os.environ.get("SER_ORT_THREADS", "1"))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = providers or available_providers()
        if "CUDAExecutionProvider" in providers:
            load_cuda_libraries()
            if gpu_graph(model_path).exists():
                model_path = gpu_graph(model_path)
        self.model_path = Path(model_path)
        self.session = ort.InferenceSession(str(model_path), options, providers=providers)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info = info_from_metadata(meta, model_path)
        if self.info.feature_config != FEATURE_CONFIG:
            raise RuntimeError(
                f"{model_path} was trained with features {self.info.feature_config.to_json()}, "
                f"but this code computes {FEATURE_CONFIG.to_json()}"
            )
        filterbank()  # load and check the feature matrices now, not on the first request
        vad_session()  # and the VAD's network
        self.input_name = self.session.get_inputs()[0].name
        self.labels = self.info.labels
        self.batch = GPU_MODEL_BATCH if self.provider == "CUDAExecutionProvider" else CPU_MODEL_BATCH

    @property
    def provider(self) -> str:
        """The execution provider in use (CUDA or CPU), shown by GET /model."""
        return self.session.get_providers()[0]

    @property
    def weights(self) -> str:
        """Which graph runs: int8 (the CPU's) or float32 (a GPU's, or a model shipped so)."""
        return self.info.metadata.get("weights", "float32")

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """(n, N_FRAMES, N_MFCC) float32 windows -> (n, n_labels) calibrated probabilities."""
        if features.ndim != 3 or features.shape[1:] != (N_FRAMES, N_MFCC):
            raise ValueError(f"expected (n, {N_FRAMES}, {N_MFCC}) features, got {features.shape}")
        features = features.astype(np.float32, copy=False)
        # in batches of at most self.batch windows: onnxruntime's arena keeps what its
        # largest concurrent runs needed, and a 10-minute upload is ~300 windows. Three
        # networks peaked at 2.7 GiB for 32 concurrent 4.4-minute uploads in one run, over
        # the Deployment's 2 GiB, and at 1.9 GiB in runs of 32 windows (tests/test_memory.py)
        parts = [self.session.run(None, {self.input_name: features[i : i + self.batch]})[0]
                 for i in range(0, max(len(features), 1), self.batch)]  # fmt: skip
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def analyse(
        self,
        source: Source,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        top_k: int = 3,
        timings: dict[str, float] | None = None,
        limit: WorkLimit | None = None,
        segmentation: Segmentation = "speech",
    ) -> dict[str, Any]:
        """Decode, segment, featurise and classify one recording; see `build_result`.

        `timings`, when given, receives the seconds spent decoding, on segmentation and
        features and in the model (the server's metrics and the benchmark's profile);
        `limit` stops the work when the request's deadline passes or its client leaves.
        """
        timings = {} if timings is None else timings
        features, plan, duration = features_of(source, max_seconds, timings, limit, segmentation)
        start = time.perf_counter()
        probs = self.predict_features(features)
        timings["model"] = time.perf_counter() - start
        return build_result(probs, plan, duration, self.info, top_k)


def features_of(
    source: Source,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    timings: dict[str, float] | None = None,
    limit: WorkLimit | None = None,
    segmentation: Segmentation = "speech",
) -> tuple[np.ndarray, Plan, float]:
    """Decode one recording, choose its windows and compute their MFCCs: (features, plan,
    seconds).

    The model's input, for `EmotionModel.analyse` and for the server's batching path,
    which sends it to the model service. Stage times go into `timings`; `limit` stops the
    work at the request's deadline or when its client leaves.
    """
    t0 = time.perf_counter()
    if limit is not None:
        limit.check()  # a request that waited past its deadline for a thread starts no work
    samples = load_audio(source, max_seconds=max_seconds, limit=limit)
    t1 = time.perf_counter()
    plan = plan_windows(samples, segmentation)
    t2 = time.perf_counter()
    features = mfcc(plan.windows)
    if limit is not None:
        limit.check()
    if timings is not None:
        timings.update(decode=t1 - t0, segmentation=t2 - t1, features=time.perf_counter() - t2)
    return features, plan, samples.shape[0] / SAMPLE_RATE


def _label_probs(labels: tuple[str, ...], probs: np.ndarray) -> dict[str, float]:
    return {label: round(float(p), 6) for label, p in zip(labels, probs, strict=True)}


def _answer(probs: np.ndarray, info: ModelInfo, start: float, end: float) -> dict[str, Any]:
    best = int(probs.argmax())
    return {
        "start": round(start, 3),
        "end": round(end, 3),
        "emotion": info.labels[best],
        "confidence": round(float(probs[best]), 6),
        "probabilities": _label_probs(info.labels, probs),
    }


def build_result(
    window_probs: np.ndarray,
    plan: Plan,
    duration_s: float,
    info: ModelInfo,
    top_k: int = 3,
) -> dict[str, Any]:
    """The API's answer for one recording.

    `emotion`, `confidence`, `probabilities` and `top_k` are the whole recording's: from
    its speech only when it was segmented (`segmentation: "speech"`, each utterance
    weighted by its length), else the mean over windows. `uncertain` says the calibrated
    confidence is below the model's threshold (chosen on validation speakers). Recordings
    longer than one window also get `segments` (utterances and silences in time order,
    or the fixed windows) and `agreement`, the share of speech (or of windows) whose own
    answer is the recording's.
    """
    mean = clip_probabilities(plan, window_probs)
    order = np.argsort(-mean, kind="stable")
    best = int(order[0])
    result: dict[str, Any] = {
        "emotion": info.labels[best],
        "confidence": round(float(mean[best]), 6),
        "uncertain": bool(mean[best] < info.uncertainty_threshold),
        "top_k": [
            {"emotion": info.labels[i], "probability": round(float(mean[i]), 6)} for i in order[:top_k]
        ],
        "probabilities": _label_probs(info.labels, mean),
        "duration_s": round(duration_s, 3),
        "segmentation": plan.mode,
        "model": {"name": info.name, "version": info.version},
    }
    if plan.mode == "fixed":
        result["agreement"] = round(float(np.mean(window_probs.argmax(axis=1) == best)), 4)
        result["segments"] = [
            _answer(p, info, *span) for span, p in zip(plan.spans, window_probs, strict=True)
        ]
    elif plan.mode == "speech":
        per_utterance = utterance_probabilities(plan, window_probs)
        lengths = np.array([end - start for start, end in plan.utterances])
        result["speech_s"] = round(float(lengths.sum()), 3)
        result["agreement"] = round(
            float(lengths[per_utterance.argmax(axis=1) == best].sum() / lengths.sum()), 4
        )
        segments = [{"start": a, "end": b, "speech": False} for a, b in silences(plan.utterances, duration_s)]
        for u, (span, probs) in enumerate(zip(plan.utterances, per_utterance, strict=True)):
            segment = _answer(probs, info, *span) | {"speech": True}
            inside = [i for i, o in enumerate(plan.owner) if o == u]
            if len(inside) > 1:
                segment["windows"] = [_answer(window_probs[i], info, *plan.spans[i]) for i in inside]
            segments.append(segment)
        result["segments"] = sorted(segments, key=lambda s: s["start"])
    return result


def metadata_json(info: ModelInfo, key: str) -> Any:
    """A JSON-valued metadata entry (metrics, normalisation, ...), or None."""
    raw = info.metadata.get(key)
    return json.loads(raw) if raw else None


def normalisation_text(norm: dict) -> str:
    """One sentence on what the graph does to features before the network, for pages and cards."""
    if norm.get("description"):
        return norm["description"]
    first = ""
    if norm.get("per_clip_mean_subtraction"):
        scaled = " and variance" if norm.get("per_clip_variance_scaling") else ""
        first = f"per-window mean{scaled} normalisation per coefficient, then "
    return (
        first + f"standardisation with statistics fitted on {norm.get('fitted_on', 'the training speakers')}"
    )
