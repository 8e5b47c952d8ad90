"""Benchmarks, measured side by side in one run on this machine.

    python -m loadtests.benchmark [--seconds 20] [--data PATH] [--skip-configs]

The headline clip is 5.0 s of speech as a 48 kHz 16-bit WAV (two model windows).
1. The request path in-process on it: decode, resample, features (numpy vs librosa), model.
2. Cost by clip length, in-process, per stage: 1 s to 10 min.
3. Model time per batch size, and its effective GFLOP/s against a float32 matrix-product
   rate measured in the same run.
4. Closed-loop load, 1 and 8 clients, clips of 1, 5 and 30 s: the seed-style baseline
   (loadtests/baseline_server.py) against this service (segmentation=speech, the default,
   and segmentation=fixed), with ratios.
5. This service from 1 to 64 concurrent clients on the 5 s clip, and where a request's
   time goes (in-process stages against the 1-client latency).
6. Serving configurations at 8 clients: 1 or 2 workers, direct onnxruntime or BentoML's
   adaptive batching.
7. The headline comparison again in alternating turns, both servers up at once (5 s clip,
   fixed windows, 8 clients for throughput, 1 for p50): the ratios of section 4 compare
   halves of the run minutes apart, and this machine's speed drifts.
Writes loadtests/results/benchmark.json and benchmark.png. Runs without the corpus on a
generated voice of the same lengths (loadtests/clips.py).
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
from ser.segments import plan_windows
from serving.memory import return_freed_memory

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
            # where the speech is (Silero VAD on the clip, then its windows): segmentation=speech
            "segmentation_speech_ms": median_ms(lambda: plan_windows(samples, "speech"), n=50, warmup=5),
            "segmentation_fixed_ms": median_ms(lambda: plan_windows(samples, "fixed")),
            "seed_librosa_load_ms": None,
        }  # fmt: skip
        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            f.write(wav)
            f.flush()
            out["seed_librosa_load_ms"] = median_ms(
                lambda: librosa.load(f.name, sr=SAMPLE_RATE), n=30, warmup=3
            )
    out["features_speedup_same_config"] = out["features_librosa_same_config_ms"] / out["features_numpy_ms"]
    out["features_speedup_vs_default_config"] = (
        out["features_librosa_default_config_ms"] / out["features_numpy_ms"]
    )
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
    matmul = {
        "1_thread_gflops": 2 * 1024**3 / (ms1 / 1000) / 1e9,
        "all_threads_gflops": 2 * 1024**3 / (ms2 / 1000) / 1e9,
    }
    return {"gflop_per_window": flop, "rows": rows, "numpy_float32_matmul_1024": matmul}


LENGTHS_S = (1.0, 5.0, 30.0)  # clips the servers are loaded with
PROFILE_LENGTHS_S = (1.0, 5.0, 30.0, 120.0, 600.0)  # in-process cost by length
CONCURRENCY = (1, 2, 4, 8, 16, 32, 64)
HEADLINE_S = 5.0
FIXED = "fixed windows (segmentation=fixed)"


def cost_by_length(model: EmotionModel, data_dir: Path) -> list[dict]:
    """Median ms per stage of `EmotionModel.analyse` for clips of 1 s to 10 min."""
    rows = []
    with threadpool_limits(1, user_api="blas"):
        for seconds in PROFILE_LENGTHS_S:
            wav = bench_wav(seconds, data_dir)
            n = max(3, int(200 / seconds))
            stages: dict[str, list[float]] = {"decode": [], "segmentation": [], "features": [], "model": []}
            fixed = []
            for i in range(n + 2):
                timings: dict[str, float] = {}
                model.analyse(wav, top_k=3, timings=timings)
                start = time.perf_counter()
                model.analyse(wav, top_k=3, segmentation="fixed")
                if i >= 2:  # warm-up
                    fixed.append(1000 * (time.perf_counter() - start))
                    for k, v in timings.items():
                        stages[k].append(1000 * v)
            row = {"seconds": seconds, **{f"{k}_ms": float(np.median(v)) for k, v in stages.items()}}
            row["total_ms"] = row["decode_ms"] + row["segmentation_ms"] + row["features_ms"] + row["model_ms"]
            row["ms_per_audio_second"] = row["total_ms"] / seconds
            row["fixed_windows_total_ms"] = float(np.median(fixed))
            rows.append(row)
            print(f"{seconds:>5.0f} s: decode {row['decode_ms']:.2f} ms, segmentation {row['segmentation_ms']:.2f}, "
                  f"features {row['features_ms']:.2f}, model {row['model_ms']:.2f}; {row['ms_per_audio_second']:.2f} ms "
                  f"per second of audio (fixed windows: {row['fixed_windows_total_ms']:.2f} ms in all)")  # fmt: skip
    return rows


def load_section(
    clips: dict[float, bytes], seconds: float, tmp: Path, configs: bool
) -> tuple[list[dict], list[dict], list[dict]]:
    rows, scaling = [], []
    for name, start in [("baseline (Flask + librosa + Keras)", lambda: start_baseline(tmp)),
                        ("this service (BentoML + numpy + onnxruntime)", lambda: start_service(tmp))]:  # fmt: skip
        server = start()
        try:
            for length, wav in clips.items():
                for clients in (1, 8):
                    r = closed_loop(
                        server.url + "/predict", ("clip.wav", wav, "audio/wav"), clients, seconds
                    ).summary()
                    rows.append({"server": name, "clip_s": length, **r})
                    print(f"{name}, {length:g} s clip, {clients} clients: {r['rps']:.1f} req/s, "
                          f"p50 {r['p50_ms']:.1f} ms, failures {r['failures']}")  # fmt: skip
            if name.startswith("this"):
                for length, wav in clips.items():  # the same, with the older fixed windows
                    for clients in (1, 8):
                        r = closed_loop(server.url + "/predict?segmentation=fixed", ("clip.wav", wav, "audio/wav"),
                                        clients, seconds).summary()  # fmt: skip
                        rows.append({"server": FIXED, "clip_s": length, **r})
                        print(f"{FIXED}, {length:g} s clip, {clients} clients: {r['rps']:.1f} req/s, "
                              f"p50 {r['p50_ms']:.1f} ms, failures {r['failures']}")  # fmt: skip
                payload = ("clip.wav", clips[HEADLINE_S], "audio/wav")
                for clients in CONCURRENCY:
                    r = closed_loop(
                        server.url + "/predict", payload, clients, max(5.0, seconds / 2)
                    ).summary()
                    scaling.append(r)
                    print(f"{clients:>3} clients: {r['rps']:.1f} req/s, p50 {r['p50_ms']:.1f} ms, "
                          f"p99 {r['p99_ms']:.1f} ms, failures {r['failures']}")  # fmt: skip
        finally:
            server.stop()
    config_rows = []
    payload = ("clip.wav", clips[HEADLINE_S], "audio/wav")
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
    return rows, scaling, config_rows


def headline_pairs(wav: bytes, seconds: float, tmp: Path, pairs: int = 3) -> dict:
    """Baseline and service in alternating turns, both servers up, `pairs` times: each
    pair's ratio is measured under the same conditions. The baseline's own throughput
    (5 s clip, 8 clients) ranged over 14.8-21.7 requests/s between runs here, and the load
    section measures it minutes before the service."""
    payload = ("clip.wav", wav, "audio/wav")
    rows = []
    baseline, service = start_baseline(tmp), start_service(tmp)
    try:
        for url in (baseline.url + "/predict", service.url + "/predict?segmentation=fixed"):
            closed_loop(url, payload, 8, 2)  # warm both
        for i in range(pairs):
            turn = {}
            for name, url in (("baseline", baseline.url + "/predict"),
                              ("service", service.url + "/predict?segmentation=fixed")):  # fmt: skip
                eight = closed_loop(url, payload, 8, seconds).summary()
                one = closed_loop(url, payload, 1, seconds / 2).summary()
                turn[name] = {"rps_8_clients": eight["rps"], "p50_1_client_ms": one["p50_ms"],
                              "failures": eight["failures"] + one["failures"]}  # fmt: skip
            turn["rps_ratio"] = turn["service"]["rps_8_clients"] / turn["baseline"]["rps_8_clients"]
            turn["p50_times_lower"] = turn["baseline"]["p50_1_client_ms"] / turn["service"]["p50_1_client_ms"]
            rows.append(turn)
            print(f"pair {i + 1}: 8 clients {turn['service']['rps_8_clients']:.1f} against "
                  f"{turn['baseline']['rps_8_clients']:.1f} req/s ({turn['rps_ratio']:.1f}x), 1 client p50 "
                  f"{turn['service']['p50_1_client_ms']:.1f} against {turn['baseline']['p50_1_client_ms']:.1f} ms "
                  f"({turn['p50_times_lower']:.1f}x lower)")  # fmt: skip
    finally:
        baseline.stop()
        service.stop()
    return {
        "pairs": rows,
        "rps_ratio_median": float(np.median([r["rps_ratio"] for r in rows])),
        "p50_times_lower_median": float(np.median([r["p50_times_lower"] for r in rows])),
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4))
    rows = [r for r in result["load"] if r["clip_s"] == HEADLINE_S]
    a.bar([f"{r['server'].split(' (')[0]}\n{r['clients']} client(s)" for r in rows], [r["rps"] for r in rows])
    a.set_ylabel("requests/s")
    a.set_title(f"throughput, {HEADLINE_S:g} s 48 kHz WAV")
    s = result["concurrency"]
    b.plot([r["clients"] for r in s], [r["rps"] for r in s], marker="o", label="requests/s")
    b2 = b.twinx()
    b2.plot([r["clients"] for r in s], [r["p95_ms"] for r in s], marker="s", color="tab:red", label="p95 ms")
    b.set_xscale("log", base=2)
    b.set_xlabel("concurrent clients")
    b.set_ylabel("requests/s")
    b2.set_ylabel("p95 ms")
    b.set_title("this service by concurrency")
    rows = result["cost_by_length"]
    c.plot([r["seconds"] for r in rows], [r["total_ms"] for r in rows], marker="o")
    c.set_xscale("log")
    c.set_yscale("log")
    c.set_xlabel("clip length, s")
    c.set_ylabel("ms in-process (decode + features + model)")
    c.set_title("cost by clip length")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20, help="load duration per measurement")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--skip-configs", action="store_true", help="skip the workers/batching comparison")
    p.add_argument("--pairs", type=int, default=3, help="alternating baseline/service turns (0: none)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    clips = {length: bench_wav(length, args.data) for length in LENGTHS_S}
    wav = clips[HEADLINE_S]
    return_freed_memory()  # the server's allocator settings: in-process stages cost what they cost there
    model = EmotionModel(BUNDLED_MODEL, providers=["CPUExecutionProvider"], intra_op_threads=1)
    speech = (
        "RAVDESS actor 01's clips end to end" if (args.data / "ravdess").is_dir() else "a generated voice"
    )
    result = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, {platform.processor() or 'cpu'}",
        "clip": f"{HEADLINE_S:g} s of {speech} as a 48 kHz 16-bit WAV ({len(wav) // 1024} KiB); "
        f"also {', '.join(f'{s:g}' for s in LENGTHS_S if s != HEADLINE_S)} s clips made the same way",
        "client": "closed loop, one keep-alive connection per client (http.client), the same pre-encoded "
        "multipart form for both servers, on the same machine",
        "model_version": model.info.version,
    }
    print("request path ...")
    result["request_path"] = request_path(wav, model)
    print(json.dumps(result["request_path"], indent=1))
    print("cost by clip length ...")
    result["cost_by_length"] = cost_by_length(model, args.data)
    print("model scaling ...")
    result["model"] = model_scaling(BUNDLED_MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        result["load"], result["concurrency"], result["serving_configs"] = load_section(
            clips, args.seconds, Path(tmp), not args.skip_configs
        )
    ratios = {}
    for label, server in (("", "this"), ("fixed_windows_", FIXED)):
        for length in LENGTHS_S:
            base = {
                r["clients"]: r
                for r in result["load"]
                if r["server"].startswith("baseline") and r["clip_s"] == length
            }
            ours = {
                r["clients"]: r
                for r in result["load"]
                if r["server"].startswith(server) and r["clip_s"] == length
            }
            ratios[f"{label}{length:g}s"] = {
                "rps_1_client": ours[1]["rps"] / base[1]["rps"],
                "rps_8_clients": ours[8]["rps"] / base[8]["rps"],
                "p50_1_client_fraction_of_baseline": ours[1]["p50_ms"] / base[1]["p50_ms"],
                "p50_1_client_times_lower": base[1]["p50_ms"] / ours[1]["p50_ms"],
            }
    result["ratios"] = ratios
    if args.pairs:
        print("headline in alternating turns ...")
        with tempfile.TemporaryDirectory() as tmp:
            result["headline_pairs"] = headline_pairs(wav, args.seconds / 2, Path(tmp), args.pairs)
    stages = next(r for r in result["cost_by_length"] if r["seconds"] == HEADLINE_S)
    result["profile"] = {}  # where a 1-client request's p50 goes, by segmentation
    for name, server in (("speech", "this"), ("fixed", FIXED)):
        one = next(r for r in result["load"]
                   if r["server"].startswith(server) and r["clip_s"] == HEADLINE_S and r["clients"] == 1)  # fmt: skip
        told = one.get("server_timing_p50_ms", {})  # the server's Server-Timing header, median per stage
        result["profile"][name] = {
            "p50_ms": one["p50_ms"],
            "in_process_ms": {k: stages[f"{k}_ms"] for k in ("decode", "segmentation", "features", "model")}
            if name == "speech" else None,
            "server_timing_ms": told,
            # reading the body, the thread hop, the answer's validation: the handler beyond its stages
            "handler_beyond_stages_ms": told["handler"] - sum(v for k, v in told.items() if k not in ("handler", "read"))
            if "handler" in told else None,
            # uvicorn, middleware, BentoML's routing and response encoding, loopback and the client
            "outside_ms": one["p50_ms"] - told["handler"] - told.get("read", 0) if "handler" in told else None,
        }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark.json").write_text(json.dumps(result, indent=2))
    plot(result, args.out / "benchmark.png")
    print(json.dumps({"ratios": result["ratios"], "profile": result["profile"],
                      "headline_pairs": result.get("headline_pairs")}, indent=1))  # fmt: skip
    print(f"wrote {args.out / 'benchmark.json'}")


if __name__ == "__main__":
    main()
