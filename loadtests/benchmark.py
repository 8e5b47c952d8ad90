"""Benchmarks, measured side by side in one run on this machine.

    python -m loadtests.benchmark [--seconds 20] [--data PATH] [--skip-configs]

1. The request path in-process: decode, resample, features (numpy vs librosa), model.
2. Model time per batch size, and its effective GFLOP/s against a float32 matrix-product
   rate measured in the same run.
3. Closed-loop load, 1 and 8 clients: the seed-style baseline (loadtests/baseline_server.py)
   against this service, with ratios.
4. Serving configurations at 8 clients: 1 or 2 workers, direct onnxruntime or BentoML's
   adaptive batching.
Writes loadtests/results/benchmark.json and benchmark.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from threadpoolctl import threadpool_limits

from loadtests.clips import DEFAULT_DATA, bench_wav
from loadtests.load import closed_loop
from loadtests.servers import start_baseline, start_service
from ser.audio import load_audio
from ser.config import HOP_LENGTH, N_FFT, N_FRAMES, N_MELS, N_MFCC, SAMPLE_RATE
from ser.features import clip_features, split_windows
from ser.inference import BUNDLED_MODEL, EmotionModel, metadata_json

RESULTS = Path(__file__).resolve().parent / "results"


def median_ms(fn: Callable[[], object], n: int = 200, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def model_gflop(model: EmotionModel) -> float:
    """Multiply-adds of one window, from the architecture the model carries (x2 for FLOP)."""
    macs = 0
    for row in (metadata_json(model.info, "architecture") or {}).get("layers", []):
        shape = [int(d) for d in row["output"].strip("()").replace("None", "1").split(",") if d.strip()]
        if row["type"] == "Conv2D":
            macs += row["params"] * shape[1] * shape[2]
        elif row["type"] == "Conv1D":
            macs += row["params"] * shape[1]
        elif row["type"] == "Bidirectional":
            macs += row["params"] * shape[1]
        elif row["type"] == "Dense":
            macs += row["params"]
    return 2 * macs / 1e9


def request_path(wav: bytes, model: EmotionModel) -> dict:
    import librosa

    with threadpool_limits(1, user_api="blas"):
        decoded, rate = sf.read(io.BytesIO(wav), dtype="float32")
        samples = load_audio(wav)
        window = split_windows(samples)[0]
        features, _ = clip_features(samples)
        frames = np.random.default_rng(0).normal(size=(N_FRAMES, N_FFT)).astype(np.float32)
        import scipy.fft
        import soxr

        out = {
            "decode_ms": median_ms(lambda: sf.read(io.BytesIO(wav), dtype="float32")),
            "resample_ms": median_ms(lambda: soxr.resample(decoded, rate, SAMPLE_RATE, quality="HQ")),
            "load_audio_ms": median_ms(lambda: load_audio(wav)),
            "features_numpy_ms": median_ms(lambda: clip_features(samples)),
            # The 173 FFTs alone: the floor no restructuring of the numpy path removes.
            "features_fft_only_ms": median_ms(lambda: scipy.fft.rfft(frames, axis=-1)),
            "features_librosa_same_config_ms": median_ms(lambda: librosa.feature.mfcc(
                y=window[0], sr=SAMPLE_RATE, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS)),
            "features_librosa_default_config_ms": median_ms(
                lambda: librosa.feature.mfcc(y=window[0], sr=SAMPLE_RATE, n_mfcc=N_MFCC)),
            "model_ms": median_ms(lambda: model.predict_features(features)),
            "seed_librosa_load_ms": None,
        }  # fmt: skip
        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            f.write(wav)
            f.flush()
            out["seed_librosa_load_ms"] = median_ms(lambda: librosa.load(f.name, sr=SAMPLE_RATE), n=30, warmup=3)
    out["features_speedup_same_config"] = out["features_librosa_same_config_ms"] / out["features_numpy_ms"]
    out["features_speedup_vs_default_config"] = out["features_librosa_default_config_ms"] / out["features_numpy_ms"]
    return out


def model_scaling(model_path: Path) -> dict:
    rng = np.random.default_rng(0)
    rows = []
    for threads in (1, 2):
        model = EmotionModel(model_path, providers=["CPUExecutionProvider"], intra_op_threads=threads)
        flop = model_gflop(model)
        for batch in (1, 2, 4, 8, 16, 32):
            x = rng.normal(0, 50, (batch, 173, 40)).astype(np.float32)
            ms = median_ms(lambda x=x, m=model: m.predict_features(x), n=50 if batch > 8 else 100)
            rows.append({"threads": threads, "batch": batch, "ms": ms, "ms_per_window": ms / batch,
                         "gflops": flop * batch / (ms / 1000)})  # fmt: skip
    a = rng.normal(size=(1024, 1024)).astype(np.float32)
    with threadpool_limits(1, user_api="blas"):
        ms1 = median_ms(lambda: a @ a, n=20, warmup=3)
    ms2 = median_ms(lambda: a @ a, n=20, warmup=3)
    matmul = {"1_thread_gflops": 2 * 1024**3 / (ms1 / 1000) / 1e9, "all_threads_gflops": 2 * 1024**3 / (ms2 / 1000) / 1e9}
    return {"gflop_per_window": flop, "rows": rows, "numpy_float32_matmul_1024": matmul}


def load_section(wav: bytes, seconds: float, tmp: Path, configs: bool) -> tuple[list[dict], list[dict]]:
    payload = ("clip.wav", wav, "audio/wav")
    rows = []
    for name, start in [("baseline (Flask + librosa + Keras)", lambda: start_baseline(tmp)),
                        ("this service (BentoML + numpy + onnxruntime)", lambda: start_service(tmp))]:  # fmt: skip
        server = start()
        try:
            for clients in (1, 8):
                r = closed_loop(server.url + "/predict", payload, clients, seconds).summary()
                rows.append({"server": name, **r})
                print(f"{name}, {clients} clients: {r['rps']:.1f} req/s, p50 {r['p50_ms']:.1f} ms, failures {r['failures']}")
        finally:
            server.stop()
    config_rows = []
    if configs:
        for workers in (1, 2):
            for mode in ("direct", "batching"):
                server = start_service(tmp, {"SER_WORKERS": str(workers), "SER_INFERENCE_MODE": mode})
                try:
                    r = closed_loop(server.url + "/predict", payload, 8, seconds).summary()
                finally:
                    server.stop()
                config_rows.append({"workers": workers, "mode": mode, **r})
                print(f"workers {workers}, {mode}: {r['rps']:.1f} req/s, p50 {r['p50_ms']:.1f} ms")
    return rows, config_rows


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for server in dict.fromkeys(r["server"] for r in result["load"]):
        rows = [r for r in result["load"] if r["server"] == server]
        a.bar([f"{server.split(' (')[0]}\n{r['clients']} client(s)" for r in rows], [r["rps"] for r in rows])
    a.set_ylabel("requests/s")
    a.set_title("throughput, 3.9 s 48 kHz WAV")
    rows = [r for r in result["model"]["rows"] if r["threads"] == 1]
    b.plot([r["batch"] for r in rows], [r["ms_per_window"] for r in rows], marker="o", label="1 thread")
    rows = [r for r in result["model"]["rows"] if r["threads"] == 2]
    b.plot([r["batch"] for r in rows], [r["ms_per_window"] for r in rows], marker="o", label="2 threads")
    b.set_xscale("log", base=2)
    b.set_xlabel("batch size")
    b.set_ylabel("ms per window")
    b.set_title("onnxruntime, per window")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20, help="load duration per measurement")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--skip-configs", action="store_true", help="skip the workers/batching comparison")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    wav = bench_wav(args.data)
    model = EmotionModel(BUNDLED_MODEL, providers=["CPUExecutionProvider"], intra_op_threads=1)
    result = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, {platform.processor() or 'cpu'}",
        "clip": "RAVDESS Actor_01 angry clip, 3.87 s, as a 48 kHz 16-bit WAV "
        f"({len(wav) // 1024} KiB)",
        "model_version": model.info.version,
    }
    print("request path ...")
    result["request_path"] = request_path(wav, model)
    print(json.dumps(result["request_path"], indent=1))
    print("model scaling ...")
    result["model"] = model_scaling(BUNDLED_MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        result["load"], result["serving_configs"] = load_section(wav, args.seconds, Path(tmp), not args.skip_configs)
    base = {r["clients"]: r for r in result["load"] if r["server"].startswith("baseline")}
    ours = {r["clients"]: r for r in result["load"] if r["server"].startswith("this")}
    result["ratios"] = {
        "rps_1_client": ours[1]["rps"] / base[1]["rps"],
        "rps_8_clients": ours[8]["rps"] / base[8]["rps"],
        "p50_1_client_fraction_of_baseline": ours[1]["p50_ms"] / base[1]["p50_ms"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark.json").write_text(json.dumps(result, indent=2))
    plot(result, args.out / "benchmark.png")
    print(json.dumps(result["ratios"], indent=1))
    print(f"wrote {args.out / 'benchmark.json'}")


if __name__ == "__main__":
    main()
