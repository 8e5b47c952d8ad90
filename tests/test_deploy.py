"""Deployment: `bentoml build` without TensorFlow, the generated Dockerfile, Kubernetes manifests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_bentoml_build(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    subprocess.run([sys.executable, "-m", "serving.model_import"], cwd=REPO, env=env, check=True, capture_output=True)
    bentoml = Path(sys.executable).parent / "bentoml"
    out = subprocess.run([str(bentoml), "build", "--output", "tag"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    bento = next((tmp_path / "bentoml" / "bentos" / "speech_emotion").glob("*/bento.yaml")).parent
    lines = (bento / "env" / "python" / "requirements.txt").read_text().lower().splitlines()
    requirements = "\n".join(line for line in lines if not line.startswith("#"))
    for needed in ("bentoml==", "onnxruntime==", "soundfile==", "soxr==", "numpy==", "jinja2==", "av=="):
        assert needed in requirements, needed
    for heavy in ("tensorflow", "keras", "librosa", "tf2onnx", "torch"):
        assert heavy not in requirements, heavy
    meta = yaml.safe_load((bento / "bento.yaml").read_text())
    assert [m["tag"].split(":")[0] for m in meta["models"]] == ["ser_cnn_bilstm"]
    src = {p.relative_to(bento / "src").as_posix() for p in (bento / "src").rglob("*") if p.is_file()}
    assert {"service.py", "ser/features.py", "ser/assets/mfcc_filters.npz", "web/templates/base.html",
            "loadtests/results/benchmark.json"} <= src  # the Technical page shows the benchmark
    assert not any(p.startswith(("training/", "tests/", "export/")) for p in src)
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "libsndfile1" in dockerfile and "requirements.txt" in dockerfile
    assert "tensorflow" not in dockerfile.lower()


def test_model_import_brings_the_gpu_graph_into_the_store(tmp_path):
    """An int8 bundle's float32 graph (for CUDA) reaches BentoML's store, also where the
    same version was imported before the bundle had it."""
    from ser.inference import gpu_graph

    if not gpu_graph(REPO / "model_store" / "ser_cnn_bilstm.onnx").exists():
        pytest.skip("the bundled model ships float32: no second graph")
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}

    def imported() -> Path:
        out = subprocess.run([sys.executable, "-m", "serving.model_import"], cwd=REPO, env=env, check=True,
                             capture_output=True, text=True)  # fmt: skip
        return Path(out.stdout.rsplit(" at ", 1)[1].strip())

    stored = imported()
    assert (stored / "model.onnx").exists() and (stored / "model.fp32.onnx").exists()
    (stored / "model.fp32.onnx").unlink()  # as imported before the export kept the graph
    assert (imported() / "model.fp32.onnx").exists()


def test_kubernetes_manifests_validate():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = [d for d in yaml.safe_load_all((REPO / "deploy" / "deployment.yaml").read_text()) if d]
    assert {d["kind"] for d in docs} == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)
    container = docs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["resources"]["requests"]["cpu"]


def test_gpu_variant_builds(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True", "SER_GPU": "1",
           "SER_INFERENCE_MODE": "direct"}  # fmt: skip
    subprocess.run([sys.executable, "-m", "serving.model_import"], cwd=REPO, env=env, check=True, capture_output=True)
    bentoml = Path(sys.executable).parent / "bentoml"
    out = subprocess.run([str(bentoml), "build", "-f", "bentofile.gpu.yaml"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    bento = next((tmp_path / "bentoml" / "bentos" / "speech_emotion").glob("*/bento.yaml")).parent
    lines = (bento / "env" / "python" / "requirements.txt").read_text().splitlines()
    pins = {line.split("==")[0].split("[")[0] for line in lines if "==" in line and not line.startswith("#")}
    assert "onnxruntime-gpu" in pins and "onnxruntime" not in pins and {"av", "tqdm"} <= pins
    # CUDA and cuDNN from pip, in the versions onnxruntime-gpu was built for (13, 9)
    assert {"nvidia-cublas", "nvidia-cuda-runtime", "nvidia-cudnn-cu13"} <= pins
    meta = yaml.safe_load((bento / "bento.yaml").read_text())
    services = {s["name"]: s["config"] for s in meta["services"]}
    # direct: each API worker holds a CUDA session; no separate model service is started
    assert services["speech_emotion"]["resources"]["gpu"] == 1
