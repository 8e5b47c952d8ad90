"""The GPU configuration measured against CPU serving on the same machine, in one run.

    python -m loadtests.gpu_benchmark [--part model|load|all] [--seconds 6] [--workers 8] [--out DIR]

Needs onnxruntime-gpu (requirements/serve-gpu.txt) and an NVIDIA GPU; CI has neither,
so this runs by hand on a GPU machine. Measures:
1. Parity: the bundled model on onnxruntime's CUDA execution provider (its float32 graph,
   `ser.inference.gpu_graph`) against the same graph on the CPU provider, on the windows of
   real-length clips (largest probability difference), and how often its top emotion
   differs from the int8 graph the CPU serves.
2. Where each graph's nodes run in a CUDA session (onnxruntime's profile), and the model
   alone per batch size: the float32 graph on CUDA, the int8 graph on CUDA (what a GPU
   would run without the float32 graph) and the int8 graph on the CPU with every core.
3. Closed-loop load on /predict (5 s and 30 s 48 kHz WAV, 1, 8 and 64 clients) against
   servings with the same number of API workers (`--servings`): CPU direct (the CPU
   default), the composed GPU configuration (SER_GPU=1 SER_INFERENCE_MODE=batching: the
   model in its own service with BentoML's adaptive batching), each API worker with its own
   CUDA session (SER_GPU=1, direct), and the same with the int8 graph alone in the store.
   Ratios against CPU direct.
Writes gpu_benchmark.json into --out (default loadtests/results/), keeping the other part's
results when it runs one part.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import requests

from loadtests.benchmark import RESULTS, median_ms
from loadtests.clips import bench_wav
from loadtests.load import closed_loop
from loadtests.servers import start_service
from ser.audio import load_audio
from ser.features import clip_features
from ser.inference import BUNDLED_MODEL, EmotionModel

SERVINGS = {  # name -> environment of the server
    "cpu direct": {"SER_GPU": "0", "SER_INFERENCE_MODE": "direct"},
    "gpu composed + adaptive batching": {"SER_GPU": "1", "SER_INFERENCE_MODE": "batching"},
    "gpu direct (a CUDA session per worker)": {"SER_GPU": "1", "SER_INFERENCE_MODE": "direct"},
    # the same with the int8 graph alone in the store (its LSTM on the CPU)
    "gpu direct with the int8 graph": {"SER_GPU": "1", "SER_INFERENCE_MODE": "direct"},
}
CLIENTS = (1, 8, 64)
BATCHES = (1, 8, 32, 128, 512)


def gpu_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def parity(cuda: EmotionModel, cpu_float32: EmotionModel, cpu: EmotionModel) -> dict:
    """The providers on the windows of 1-30 s clips (a generated voice without the corpus)."""
    features = np.concatenate([clip_features(load_audio(bench_wav(s)))[0] for s in (1, 5, 30)])
    a, b, c = (m.predict_features(features) for m in (cuda, cpu_float32, cpu))
    return {"windows": int(features.shape[0]), "graph": cuda.weights, "max_abs_diff": float(np.abs(a - b).max()),
            "top_differs": int((a.argmax(1) != b.argmax(1)).sum()),
            "top_differs_from_cpu_int8": int((a.argmax(1) != c.argmax(1)).sum())}  # fmt: skip


def placement(model_path: Path, tmp: Path) -> dict[str, int]:
    """How many of a graph's nodes each provider runs in a CUDA session (onnxruntime's profile)."""
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp / model_path.stem)
    session = ort.InferenceSession(str(model_path), options, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    session.run(None, {session.get_inputs()[0].name: np.zeros((2, 173, 40), np.float32)})
    events = json.loads(Path(session.end_profiling()).read_text())
    where = {e["name"]: e["args"]["provider"] for e in events
             if e.get("cat") == "Node" and "provider" in e.get("args", {})}  # fmt: skip
    return dict(Counter(where.values()))


def model_rows(models: dict[str, EmotionModel]) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for batch in BATCHES:
        x = rng.normal(0, 50, (batch, 173, 40)).astype(np.float32)
        for name, model in models.items():
            ms = median_ms(lambda x=x, m=model: m.predict_features(x), n=30 if batch > 32 else 100, warmup=5)
            rows.append({"provider": name, "batch": batch, "ms": ms, "windows_per_s": batch / (ms / 1000)})
            print(f"model, {name}, batch {batch}: {ms:.2f} ms, {batch / (ms / 1000):.0f} windows/s", flush=True)
    return rows


def load_rows(seconds: float, workers: int, tmp: Path, servings: list[str]) -> list[dict]:
    clips = {s: bench_wav(s) for s in (5.0, 30.0)}
    rows = []
    for name in servings:
        env, home, model = SERVINGS[name], tmp, None
        if "int8 graph" in name:  # an int8 model without its float32 graph, in a store of its own
            home, model = tmp / "int8", tmp / "int8" / BUNDLED_MODEL.name
            model.parent.mkdir(exist_ok=True)
            shutil.copyfile(BUNDLED_MODEL, model)
        try:
            server = start_service(home, {**env, "SER_WORKERS": str(workers)}, timeout=180, model=model)
        except RuntimeError as e:
            rows.append({"serving": name, "error": str(e)[-2000:]})
            print(f"{name}: did not start\n{e}", flush=True)
            continue
        try:
            provider = server_provider(server.url)
            for length, wav in clips.items():
                for clients in CLIENTS:
                    for query in ("", "?segmentation=fixed") if length < 30 else ("?segmentation=fixed",):
                        r = closed_loop(server.url + "/predict" + query, ("clip.wav", wav, "audio/wav"),
                                        clients, seconds).summary()  # fmt: skip
                        seg = "fixed" if query else "speech"
                        rows.append({"serving": name, "provider": provider, "clip_s": length,
                                     "segmentation": seg, **r})  # fmt: skip
                        print(f"{name} [{provider}], {length:g} s, {seg}, {clients} clients: "
                              f"{r['rps']:.1f} req/s, p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, "
                              f"failures {r['failures']}", flush=True)  # fmt: skip
        finally:
            server.stop()
    base = {(r["clip_s"], r["segmentation"], r["clients"]): r for r in rows if r.get("serving") == "cpu direct"}
    for r in rows:
        b = base.get((r.get("clip_s"), r.get("segmentation"), r.get("clients")))
        if b and "rps" in r:
            r["rps_vs_cpu_direct"] = r["rps"] / b["rps"]
            r["p50_vs_cpu_direct"] = b["p50_ms"] / r["p50_ms"]
    return rows


def server_provider(url: str) -> str:
    """The served model's execution provider and graph, from GET /model."""
    try:
        info = requests.get(url + "/model", timeout=5).json()
        return f"{info.get('provider', '?')}, {str(info.get('weights', '?')).split()[0]}"
    except (requests.RequestException, ValueError):
        return "?"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("model", "load", "all"), default="all")
    p.add_argument("--seconds", type=float, default=6, help="load duration per measurement")
    p.add_argument("--workers", type=int, default=8, help="API workers in every serving")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--servings", default=",".join(SERVINGS), help=f"comma-separated, of: {'; '.join(SERVINGS)}")
    args = p.parse_args(argv)
    if unknown := set(args.servings.split(",")) - set(SERVINGS):
        p.error(f"unknown servings {sorted(unknown)}; choose from {list(SERVINGS)}")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise SystemExit(f"no CUDA execution provider in onnxruntime {ort.__version__}: install onnxruntime-gpu")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "gpu_benchmark.json"
    result: dict = json.loads(out.read_text()) if out.exists() and args.part != "all" else {}
    result.update({
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"gpu": gpu_name(), "cpu_cores": os.cpu_count(), "python": platform.python_version(),
                    "onnxruntime": ort.__version__},
        "protocol": f"closed loop, {args.seconds:g} s per point, clients on the same machine; "
        f"{args.workers} API workers in every serving; 48 kHz 16-bit WAV",
    })  # fmt: skip
    if args.part in ("model", "all"):
        cuda = EmotionModel(BUNDLED_MODEL, providers=["CUDAExecutionProvider"])
        cpu = EmotionModel(BUNDLED_MODEL, providers=["CPUExecutionProvider"], intra_op_threads=os.cpu_count())
        if cuda.provider != "CUDAExecutionProvider":
            raise SystemExit(f"the CUDA provider did not load (the session runs on {cuda.provider})")
        models = {f"cpu {cpu.weights.split()[0]}": cpu, f"cuda {cuda.weights.split()[0]}": cuda}
        with tempfile.TemporaryDirectory() as tmp:
            graphs = {cuda.weights.split()[0]: cuda.model_path}
            if cuda.model_path != BUNDLED_MODEL:  # also the int8 graph on CUDA, alone in a folder
                shutil.copyfile(BUNDLED_MODEL, Path(tmp) / "int8.onnx")
                graphs["int8"] = Path(tmp) / "int8.onnx"
                models["cuda int8"] = EmotionModel(graphs["int8"], providers=["CUDAExecutionProvider"])
            result["placement"] = {name: placement(path, Path(tmp)) for name, path in graphs.items()}
            print("nodes per provider in a CUDA session:", result["placement"], flush=True)
            cpu_float32 = EmotionModel(cuda.model_path, providers=["CPUExecutionProvider"])
            result["parity"] = parity(cuda, cpu_float32, cpu)
            print("parity:", result["parity"], flush=True)
            result["model"] = model_rows(models)
        out.write_text(json.dumps(result, indent=2))
    if args.part in ("load", "all"):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result["load"] = load_rows(args.seconds, args.workers, Path(tmp), args.servings.split(","))
            result["load_minutes"] = (time.perf_counter() - start) / 60
        out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
