"""Convert a trained run to the ONNX model the server loads, and prove they agree.

    python -m export.export_onnx --run runs/default --evaluation runs/eval/evaluation.json \
        --parity-corpus ravdess=PATH [--quantize-check] --out model_store

Steps: tf2onnx (opset 17, dynamic batch axis, one native ONNX LSTM node per BiLSTM);
metadata (feature config, labels, normalisation, temperature, data, metrics) written into
the ONNX file; parity against Keras on real clips (atol 1e-5, same top class on every
clip) or exit 1; optionally an int8 dynamic quantization, kept only when it is faster and
costs at most 0.5 points of unweighted accuracy on held-out speakers.
"""

from __future__ import annotations

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # Keras's cuDNN LSTM can't be converted
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402

from export.metadata import build_metadata, run_config  # noqa: E402
from ser.audio import load_audio  # noqa: E402
from ser.config import MODEL_NAME, N_FRAMES, N_MFCC  # noqa: E402
from ser.datasets import Clip, parse_corpus_arg, scan_corpus  # noqa: E402
from ser.features import clip_features  # noqa: E402
from ser.inference import gpu_graph  # noqa: E402
from training.model import architecture  # noqa: E402  (also registers the custom layers)
from training.splits import speakers_taught  # noqa: E402

OPSET = 17
ATOL = 1e-5
MAX_QUANT_UA_LOSS = 0.005  # 0.5 points


def convert(model: keras.Model) -> onnx.ModelProto:
    spec = [tf.TensorSpec((None, N_FRAMES, N_MFCC), tf.float32, name="mfcc")]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
    ops = {n.op_type for n in proto.graph.node}
    if "LSTM" not in ops or ops & {"Loop", "Scan"}:
        raise SystemExit(f"expected a native ONNX LSTM and no Loop/Scan, got ops {sorted(ops)}")
    return proto


def add_metadata(proto: onnx.ModelProto, meta: dict[str, str]) -> None:
    del proto.metadata_props[:]
    for key, value in sorted(meta.items()):
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "ser export (tf2onnx)"
    proto.doc_string = "Speech emotion recognition: 40 MFCC x 173 frames -> 8 calibrated probabilities"


def parity_features(corpus_arg: str, n: int, seed: int = 0) -> tuple[np.ndarray, list[Clip]]:
    """Features of n real clips spread over speakers and emotions."""
    name, root = parse_corpus_arg(corpus_arg)
    clips = scan_corpus(name, root).clips
    pick = np.random.default_rng(seed).choice(len(clips), size=min(n, len(clips)), replace=False)
    chosen = [clips[i] for i in sorted(pick)]
    return np.concatenate([clip_features(load_audio(c.path))[0] for c in chosen]), chosen


def check_parity(model: keras.Model, onnx_path: Path, features: np.ndarray) -> dict:
    expected = model.predict(features, batch_size=64, verbose=0)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: features})[0]
    diff = float(np.abs(expected - got).max())
    agree = bool((expected.argmax(1) == got.argmax(1)).all())
    print(f"parity on {len(features)} real windows: max |keras - onnx| = {diff:.2e}, top class agrees: {agree}")
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    if not agree:
        raise AssertionError("top class differs between Keras and onnxruntime")
    return {"windows": len(features), "max_abs_diff": diff, "top_class_agrees": agree, "atol": ATOL}


def time_session(path: Path, features: np.ndarray, repeats: int = 200) -> float:
    """Median ms per single-window call with one intra-op thread."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    one = features[:1]
    for _ in range(20):
        session.run(None, {name: one})
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        session.run(None, {name: one})
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def clip_ua(path: Path, corpus_arg: str, speakers: set[str] | None) -> float:
    """Unweighted accuracy of an ONNX model on a corpus's clips (optionally some speakers)."""
    from ser.inference import EmotionModel

    model = EmotionModel(path, providers=["CPUExecutionProvider"])
    name, root = parse_corpus_arg(corpus_arg)
    clips = [c for c in scan_corpus(name, root).clips if speakers is None or c.speaker in speakers]
    true, pred = [], []
    for clip in clips:
        result = model.analyse(clip.path)
        true.append(clip.label)
        pred.append(result["emotion"])
    true_a, pred_a = np.array(true), np.array(pred)
    return float(np.mean([np.mean(pred_a[true_a == c] == c) for c in np.unique(true_a)]))


def unseen_speakers(data: dict) -> set[str]:
    """Speakers of a run that no member trained on: the validation speakers every member
    shares; none where the members rotated them over every speaker."""
    return (set(data["train"]["speakers"]) | set(data["val"]["speakers"])) - speakers_taught(data)


def quantize_check(fp32: Path, features: np.ndarray, corpus_args: list[str], data: dict) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = fp32.with_name(fp32.stem + ".int8.onnx")
    quantize_dynamic(str(fp32), str(int8), op_types_to_quantize=["LSTM", "MatMul", "Gemm"],
                     weight_type=QuantType.QInt8)  # fmt: skip
    quantized = onnx.load(str(int8))  # quantize_dynamic drops the metadata: carry it over
    meta = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    add_metadata(quantized, {**meta, "weights": "int8 dynamic quantization (LSTM, MatMul, Gemm)"})
    onnx.save(quantized, str(int8))
    report = {"fp32_ms": time_session(fp32, features), "int8_ms": time_session(int8, features)}
    p32, p8 = (ort.InferenceSession(str(m), providers=["CPUExecutionProvider"]).run(None, {"mfcc": features})[0]
               for m in (fp32, int8))  # fmt: skip
    report["int8_vs_fp32_max_abs_diff"] = float(np.abs(p32 - p8).max())
    report["int8_vs_fp32_top_class_agreement"] = float((p32.argmax(1) == p8.argmax(1)).mean())
    unseen, trained = unseen_speakers(data), set(data["corpora"])
    for arg in corpus_args:
        name = arg.split("=")[0]
        speakers = {s for s in unseen if s.split(":")[0] == name} if name in trained else None
        if speakers == set():  # every speaker of it taught some member: no fair comparison
            report[f"{name}_not_scored"] = "every speaker of this corpus was trained on by some member"
            continue
        report[f"{name}_ua_fp32"] = clip_ua(fp32, arg, speakers)
        report[f"{name}_ua_int8"] = clip_ua(int8, arg, speakers)
    losses = [report[k] - report[k.replace("fp32", "int8")] for k in report if k.endswith("_ua_fp32")]
    report["ua_loss_points"] = round(100 * max(losses), 2) if losses else None
    report["faster"] = report["int8_ms"] < report["fp32_ms"]
    report["ship_int8"] = bool(report["faster"] and losses and max(losses) <= MAX_QUANT_UA_LOSS)
    report["protocol"] = ("UA on the speakers of each corpus listed that no member trained on (a single "
                          "network's validation speakers; none for an ensemble whose members validate on "
                          "different speakers), or on the whole corpus when the run never saw it; int8 ships "
                          "only when it was scored and lost at most 0.5 points; timing: median of 200 "
                          "batch-1 calls, 1 thread")  # fmt: skip
    print(json.dumps(report, indent=1))
    if not report["ship_int8"]:
        int8.unlink()
    return report


def weights_digest(model: keras.Model) -> str:
    """Hash of the trained weights: the same model gets the same version however often it
    is exported (tf2onnx's serialisation differs from run to run)."""
    return hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.get_weights())).hexdigest()[:10]


def teacher_of(run: Path) -> dict | None:
    """What a distilled run learned from: the teacher's weights hash (the end of its model
    version) and its size, or None for a run without a teacher."""
    cfg = run_config(run)
    if not cfg.distill_from:
        return None
    model = keras.models.load_model(Path(cfg.distill_from) / "model.keras")
    return {"weights_digest": weights_digest(model), "members": architecture(model.get_layer(MODEL_NAME))["ensemble_members"],
            "weight": cfg.distill_weight}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="training run folder (model.keras)")
    p.add_argument("--evaluation", type=Path, help="evaluation.json from training.evaluate")
    p.add_argument("--parity-corpus", required=True, metavar="NAME=PATH", help="real clips for parity")
    p.add_argument("--parity-clips", type=int, default=48)
    p.add_argument("--quantize-check", action="store_true")
    p.add_argument("--ua-corpus", action="append", default=[], metavar="NAME=PATH",
                   help="corpora for the quantization accuracy check")  # fmt: skip
    p.add_argument("--card-notes", type=Path, help="Markdown to carry into the model card's Notes")
    p.add_argument("--out", type=Path, default=Path("model_store"))
    args = p.parse_args(argv)

    model = keras.models.load_model(args.run / "model.keras")
    evaluation = json.loads(args.evaluation.read_text()) if args.evaluation else None
    proto = convert(model)
    version = dt.date.today().strftime("%Y%m%d") + "-" + weights_digest(model)
    notes = args.card_notes.read_text() if args.card_notes else None
    teacher = teacher_of(args.run)
    add_metadata(proto, build_metadata(args.run, architecture(model.get_layer(MODEL_NAME)), evaluation, version, notes,
                                       teacher))  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / f"{MODEL_NAME}.onnx"
        onnx.save(proto, str(fp32))
        onnx.checker.check_model(str(fp32))
        features, _ = parity_features(args.parity_corpus, args.parity_clips)
        try:
            parity = check_parity(model, fp32, features)
        except AssertionError as e:
            sys.exit(f"parity check failed: {e}")
        report = {"parity": parity, "opset": OPSET, "ops": sorted({n.op_type for n in proto.graph.node})}
        chosen = fp32
        if args.quantize_check:
            data = json.loads((args.run / "data.json").read_text())
            q = quantize_check(fp32, features, args.ua_corpus or [args.parity_corpus], data)
            report["quantization"] = q
            if q["ship_int8"]:
                chosen = fp32.with_name(fp32.stem + ".int8.onnx")
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(chosen, args.out / f"{MODEL_NAME}.onnx")
        # onnxruntime's CUDA provider has no kernel for the int8 graph's dynamic quantization:
        # a GPU session takes the float32 graph (ser.inference.gpu_graph)
        gpu = gpu_graph(args.out / f"{MODEL_NAME}.onnx")
        if chosen != fp32:
            shutil.copyfile(fp32, gpu)
        else:
            gpu.unlink(missing_ok=True)
    report["shipped"] = "int8" if chosen.name.endswith("int8.onnx") else "fp32"
    report["model_version"] = version
    (args.out / "export_report.json").write_text(json.dumps(report, indent=2))
    if (args.run / "training_curves.png").exists():
        shutil.copyfile(args.run / "training_curves.png", args.out / "training_curves.png")
    # the Keras original, for the seed-style baseline in loadtests/benchmark.py
    shutil.copyfile(args.run / "model.keras", args.out / f"{MODEL_NAME}.keras")
    if args.evaluation and (args.evaluation.parent / "confusion_matrix.png").exists():
        shutil.copyfile(args.evaluation.parent / "confusion_matrix.png", args.out / "confusion_matrix.png")
    from export.model_card import write_model_card

    write_model_card(args.out)
    print(f"wrote {args.out / (MODEL_NAME + '.onnx')} ({report['shipped']}), version {version}")


if __name__ == "__main__":
    main()
