"""The Sync Toolbox's full audio-audio pipeline (Müller et al., JOSS 2021), as its documentation runs it:
pitch features -> quantized chroma and DLNCO at 50 Hz, tuning estimated per recording, the chroma
shift of the second version chosen on CENS, then MrMsDTW with chroma + onset features.
`pip install synctoolbox` (it pins older numba/pandas; `--no-deps` works with the ones installed here)."""

from __future__ import annotations

import contextlib
import importlib.util
import io

import numpy as np

FEATURE_RATE = 50
STEP_WEIGHTS = np.array([1.5, 1.5, 2.0])
THRESHOLD_REC = 10 ** 6


def available() -> bool:
    return importlib.util.find_spec("synctoolbox") is not None


def features(audio: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """(quantized chroma (12, N), DLNCO (12, N)) at 50 Hz."""
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a dot per pitch, verbose or not
        return _features(audio, sr)


def _features(audio: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    from synctoolbox.feature.chroma import pitch_to_chroma, quantize_chroma
    from synctoolbox.feature.dlnco import pitch_onset_features_to_DLNCO
    from synctoolbox.feature.pitch import audio_to_pitch_features
    from synctoolbox.feature.pitch_onset import audio_to_pitch_onset_features
    from synctoolbox.feature.utils import estimate_tuning

    tuning = estimate_tuning(audio, sr)
    pitch = audio_to_pitch_features(f_audio=audio, Fs=sr, tuning_offset=tuning, feature_rate=FEATURE_RATE,
                                    verbose=False)
    chroma = quantize_chroma(f_chroma=pitch_to_chroma(f_pitch=pitch))
    peaks = audio_to_pitch_onset_features(f_audio=audio, Fs=sr, tuning_offset=tuning, verbose=False)
    dlnco = pitch_onset_features_to_DLNCO(f_peaks=peaks, feature_rate=FEATURE_RATE,
                                          feature_sequence_length=chroma.shape[1], visualize=False)
    return chroma, dlnco


def pair_paths(pairs, recordings) -> list[np.ndarray]:
    """The warping path (50 Hz frames) of every ``(version A, version B)`` pair, from the audio
    ``recordings[version_id]``; each version's features computed once."""
    versions = {v.version_id: v for pair in pairs for v in pair}
    computed = {vid: features(recordings[vid], v.sample_rate) for vid, v in versions.items()}
    return [path(computed[a.version_id], computed[b.version_id]) for a, b in pairs]


def path(features_a: tuple[np.ndarray, np.ndarray], features_b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``(L, 2)`` warping path in 50 Hz frames (a, b)."""
    from synctoolbox.dtw.mrmsdtw import sync_via_mrmsdtw
    from synctoolbox.dtw.utils import compute_optimal_chroma_shift, make_path_strictly_monotonic
    from synctoolbox.dtw.utils import shift_chroma_vectors
    from synctoolbox.feature.chroma import quantized_chroma_to_CENS

    (chroma_a, onsets_a), (chroma_b, onsets_b) = features_a, features_b
    cens_a = quantized_chroma_to_CENS(chroma_a, 201, 50, FEATURE_RATE)[0]
    cens_b = quantized_chroma_to_CENS(chroma_b, 201, 50, FEATURE_RATE)[0]
    shift = compute_optimal_chroma_shift(cens_a, cens_b)
    chroma_b, onsets_b = shift_chroma_vectors(chroma_b, shift), shift_chroma_vectors(onsets_b, shift)
    warping = sync_via_mrmsdtw(f_chroma1=chroma_a, f_onset1=onsets_a, f_chroma2=chroma_b, f_onset2=onsets_b,
                               input_feature_rate=FEATURE_RATE, step_weights=STEP_WEIGHTS,
                               threshold_rec=THRESHOLD_REC, verbose=False)
    return make_path_strictly_monotonic(warping).T.astype(np.int64)
