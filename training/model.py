"""The CNN+BiLSTM classifier, built with the Keras Functional API (tf2onnx needs it).

Input: MFCC windows (batch, 173 frames, 40 coefficients), un-normalised. The graph itself
holds the per-clip mean subtraction and the training-set standardisation, and the
inference model adds temperature scaling and softmax, so the exported ONNX file carries
every number that turns features into calibrated probabilities.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from ser.config import MODEL_NAME, N_CLASSES, N_FRAMES, N_MFCC
from training.config import TrainConfig


@keras.saving.register_keras_serializable(package="ser")
class UtteranceMeanNorm(layers.Layer):
    """Per-window cepstral mean (and optionally variance) normalisation over time.

    `coefficients` limits the mean subtraction to the first k MFCCs: k=1 removes only the
    level (c0), keeping the clip's average spectral shape, which carries vocal effort.
    """

    def __init__(self, scale: bool = False, coefficients: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale, self.coefficients = scale, coefficients

    def call(self, x):
        mean = keras.ops.mean(x, axis=1, keepdims=True)
        if self.coefficients is not None and self.coefficients < N_MFCC:
            mean = mean * cmn_mask(self.coefficients)
        x = x - mean
        if self.scale:
            x = x / (keras.ops.std(x, axis=1, keepdims=True) + 1e-3)
        return x

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale, "coefficients": self.coefficients}


def cmn_mask(coefficients: int) -> np.ndarray:
    return (np.arange(N_MFCC) < coefficients).astype(np.float32)


def normalisation_stats(x: np.ndarray, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and variance of training features, after the CMN step."""
    if cfg.utterance_cmn:
        x = x - x.mean(axis=1, keepdims=True) * cmn_mask(cfg.cmn_coefficients)
        if cfg.utterance_cvn:
            x = x / (x.std(axis=1, keepdims=True) + 1e-3)
    return x.mean(axis=(0, 1)), x.var(axis=(0, 1)) + 1e-6


def build_classifier(
    cfg: TrainConfig, mean: np.ndarray, var: np.ndarray, bodies: list[keras.Model] | None = None
) -> keras.Model:
    """Features -> logits: the normalisation steps, then one network body or the mean of
    several bodies' logits (an ensemble of independently trained members)."""
    inputs = keras.Input((N_FRAMES, N_MFCC), name="mfcc")
    x = UtteranceMeanNorm(cfg.utterance_cvn, cfg.cmn_coefficients, name="cmn")(inputs) if cfg.utterance_cmn else inputs
    x = layers.Normalization(axis=-1, mean=mean, variance=var, name="standardise")(x)
    bodies = bodies or [build_body(cfg)]
    outputs = [body(x) for body in bodies]
    logits = outputs[0] if len(outputs) == 1 else layers.Average(name="ensemble_mean")(outputs)
    return keras.Model(inputs, logits, name=MODEL_NAME)


def build_body(cfg: TrainConfig, name: str = "member0") -> keras.Model:
    """Standardised features -> logits: convolutions, a BiLSTM over time, mean+max pooling."""
    inputs = keras.Input((N_FRAMES, N_MFCC), name="standardised")
    if cfg.architecture == "conv1d":
        x = _temporal_convs(inputs, cfg)
    elif cfg.architecture == "conv2d":
        x = _spectral_convs(inputs, cfg)
    else:
        raise ValueError(f"architecture must be 'conv1d' or 'conv2d', not {cfg.architecture!r}")
    x = layers.Bidirectional(layers.LSTM(cfg.lstm_units, return_sequences=True), name="bilstm")(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)])
    x = layers.Dropout(cfg.dropout)(x)
    x = layers.Dense(cfg.dense_units, activation="relu")(x)
    x = layers.Dropout(cfg.dropout)(x)
    logits = layers.Dense(N_CLASSES, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def _temporal_convs(x, cfg: TrainConfig):
    """1-D convolutions over time, the 40 coefficients as channels (MFCCs have no local
    structure along the coefficient axis for a 2-D kernel to exploit); time pooled by 4."""
    pools = [2, 2] + [1] * (len(cfg.conv_filters) - 2)
    for i, (filters, kernel, pool) in enumerate(zip(cfg.conv_filters, cfg.conv_kernels, pools, strict=True)):
        x = layers.Conv1D(filters, kernel, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.Activation("relu")(x)
        if pool > 1:
            x = layers.MaxPooling1D(pool)(x)
        x = layers.SpatialDropout1D(cfg.dropout / 3)(x)
    return x


def _spectral_convs(x, cfg: TrainConfig):
    """2-D convolutions over (time, coefficient); pools time by 4 and coefficients by 8."""
    x = layers.Reshape((N_FRAMES, N_MFCC, 1))(x)
    pools = [(2, 2), (2, 2), (1, 2)]
    for i, (filters, pool) in enumerate(zip(cfg.conv_filters, pools, strict=True)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(pool)(x)
        x = layers.SpatialDropout2D(cfg.dropout / 3)(x)
    _, frames, coeffs, channels = x.shape
    return layers.Reshape((frames, coeffs * channels))(x)


@keras.saving.register_keras_serializable(package="ser")
class GradientReversal(layers.Layer):
    """Identity going forward; going back, the gradient times -scale x ramp (Ganin &
    Lempitsky, 2015). `ramp` (0-1, a variable) lets training start the reversal gently."""

    def __init__(self, scale: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = scale
        self.ramp = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="ramp")

    def call(self, x):
        @tf.custom_gradient
        def reverse(t):
            return tf.identity(t), lambda grad: -self.scale * self.ramp * grad

        return reverse(x)

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}


def build_adversarial_trainer(classifier: keras.Model, body: keras.Model, n_corpora: int, scale: float) -> keras.Model:
    """A training-only model: the classifier's logits ("emotion") and, from the body's last
    hidden layer (what the logits read) through a gradient reversal, a guess at the window's
    corpus ("corpus"). The classifier and body are shared, so training this trains them;
    nothing of the head ships."""
    inputs = classifier.input
    front = keras.Model(inputs, classifier.get_layer("standardise").output, name="front")
    both = keras.Model(body.input, [body.output, body.get_layer("logits").input], name=f"{body.name}_both")
    logits, hidden = both(front(inputs))  # one pass through the body for both heads
    x = GradientReversal(scale, name="reverse")(hidden)
    x = layers.Dense(64, activation="relu", name="corpus_hidden")(x)
    corpus = layers.Dense(n_corpora, name="corpus")(x)
    emotion = layers.Identity(name="emotion")(logits)
    return keras.Model(inputs, {"emotion": emotion, "corpus": corpus}, name="adversarial_trainer")


def build_inference_model(classifier: keras.Model, temperature: float) -> keras.Model:
    """Logits / temperature -> softmax: calibrated probabilities, output name `probabilities`."""
    inputs = keras.Input((N_FRAMES, N_MFCC), name="mfcc")
    logits = classifier(inputs)
    scaled = layers.Rescaling(1.0 / temperature, name="temperature")(logits)
    probs = layers.Activation("softmax", name="probabilities")(scaled)
    return keras.Model(inputs, probs, name="ser_inference")


def architecture(classifier: keras.Model) -> dict:
    """Layers with weights (and the normalisation steps), members of an ensemble included."""
    rows = []

    def walk(model: keras.Model, prefix: str) -> None:
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                walk(layer, f"{prefix}{layer.name}/")
            elif layer.count_params() or layer.name in ("cmn", "standardise"):
                rows.append({"layer": prefix + layer.name, "type": type(layer).__name__,
                             "output": str(layer.output.shape), "params": layer.count_params()})  # fmt: skip

    walk(classifier, "")
    members = [layer.name for layer in classifier.layers if isinstance(layer, keras.Model)]
    return {"layers": rows, "total_params": classifier.count_params(), "ensemble_members": len(members)}
