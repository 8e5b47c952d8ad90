"""Write `ser/assets/mfcc_filters.npz`, the matrices behind `ser.features.mfcc`.

Run once whenever `ser.config` changes the feature configuration:
    python -m training.make_filterbank
The mel matrix is `librosa.filters.mel` (Slaney scale and norm, librosa's defaults) and
the DCT is scipy's orthonormal DCT-II, exactly what `librosa.feature.mfcc` applies.
"""

from __future__ import annotations

import librosa
import numpy as np
import scipy.fft

from ser.config import F_MAX, F_MIN, FEATURE_CONFIG, N_FFT, N_MELS, N_MFCC, SAMPLE_RATE
from ser.features import FILTERS_PATH


def main() -> None:
    mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX)
    dct = scipy.fft.dct(np.eye(N_MELS), type=2, norm="ortho", axis=0)[:N_MFCC]
    FILTERS_PATH.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        FILTERS_PATH,
        mel=mel.astype(np.float32),  # (n_mels, n_fft // 2 + 1)
        dct=dct.astype(np.float32),  # (n_mfcc, n_mels)
        feature_config=np.array(FEATURE_CONFIG.to_json()),
        made_by=np.array(f"training.make_filterbank with librosa {librosa.__version__}"),
    )
    print(f"wrote {FILTERS_PATH}: mel {mel.shape}, dct {dct.shape}")


if __name__ == "__main__":
    main()
