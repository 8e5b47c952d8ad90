"""The seed-style pipeline, kept as the benchmark's baseline: what a simple Flask app does.

Upload saved to disk, `librosa.load` at 22,050 Hz, `librosa.feature.mfcc`, pad or crop
to 173 frames, Keras `model.predict` on one clip per request. Same trained model as the
service (the Keras file it was exported from). Not for production.

    python -m loadtests.baseline_server --port 5000
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import librosa  # noqa: E402
import numpy as np  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402

import training.model  # noqa: E402,F401  (custom layer)
from ser.config import HOP_LENGTH, LABELS, MODEL_NAME, N_FFT, N_FRAMES, N_MELS, N_MFCC, SAMPLE_RATE  # noqa: E402
from ser.inference import REPO_ROOT  # noqa: E402

KERAS_MODEL = REPO_ROOT / "model_store" / f"{MODEL_NAME}.keras"
app = Flask(__name__)
model = None


@app.post("/predict")
def predict():
    upload = request.files["audio"]
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:  # seed style: to disk, then load
        upload.save(f.name)
        y, sr = librosa.load(f.name, sr=SAMPLE_RATE)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS).T
    mfcc = np.pad(mfcc, ((0, max(0, N_FRAMES - len(mfcc))), (0, 0)))[:N_FRAMES]
    probs = model.predict(mfcc[None], verbose=0)[0]
    return jsonify({"emotion": LABELS[int(probs.argmax())], "confidence": float(probs.max())})


def main() -> None:
    global model
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=5000)
    args = p.parse_args()
    model = keras.models.load_model(KERAS_MODEL)
    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
