#!/usr/bin/env bash
# Serve the bundled model on http://localhost:3000 (extra arguments go to `bentoml serve`).
# First run: creates .venv with the serving requirements only (no TensorFlow) and imports
# model_store/ser_cnn_bilstm.onnx into BentoML's model store.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup_env.sh requirements/serve.txt
python -m serving.model_import
exec bentoml serve service:SpeechEmotion "$@"
