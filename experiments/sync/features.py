"""Features for synchronization: compressed chroma of audio, chroma of a score's notes."""

from __future__ import annotations

import numpy as np

from experiments import features, timebase
from experiments.data.types import NoteEvent, Piece
from experiments.sync.dtw import align
from experiments.sync.config import SyncConfig, SyncResult

__all__ = ["audio_chroma", "compress_chroma", "score_events", "sync_audio", "sync_score_audio"]


def compress_chroma(chroma: np.ndarray, gamma: float) -> np.ndarray:
    """Logarithmic compression ``log(1 + gamma * chroma / max)`` (Müller, FMP sec. 3.1.2.1).

    Lifts the weak pitch classes of soft passages, so that the cosine cost
    compares harmony rather than loudness; ``gamma = 0`` returns the input.
    """
    if gamma <= 0:
        return chroma
    return np.log1p(gamma * chroma / max(float(chroma.max()), 1e-12)).astype(np.float32)


def audio_chroma(audio: np.ndarray, sr: int, config: SyncConfig = None) -> np.ndarray:
    """Chroma ``(T, 12)`` at ``config.rate_hz`` as used for synchronization."""
    config = config or SyncConfig()
    if config.feature == "cens":
        # CENS with a short window at the fine rate (like CENS^9_1 for synchronization).
        return features.chroma_cens(audio, sr, rate_hz=config.rate_hz, chroma_rate_hz=config.rate_hz,
                                    win_len_smooth=9)
    if config.feature == "chroma_cqt":
        chroma = features.chroma_cqt(audio, sr, rate_hz=config.rate_hz, norm=None)
    elif config.feature == "chroma_stft":
        chroma = features.chroma_stft(audio, sr, rate_hz=config.rate_hz, norm=None)
    else:
        raise ValueError(f"unknown synchronization feature {config.feature!r}")
    return compress_chroma(chroma, config.log_compression)


def sync_audio(audio_a: np.ndarray, audio_b: np.ndarray, sr: int,
               config: SyncConfig = SyncConfig()) -> SyncResult:
    """Synchronize two recordings (mono float arrays at ``sr`` Hz)."""
    return align(audio_chroma(audio_a, sr, config), audio_chroma(audio_b, sr, config), config)


def score_events(piece: Piece, qpm: float | None = None) -> list[NoteEvent]:
    """Notes of a score in seconds at a constant tempo (default: the piece's ``qpm``)."""
    seconds_per_q = 60.0 / float(qpm or piece.qpm)
    return [NoteEvent(n.onset_q * seconds_per_q, n.offset_q * seconds_per_q, n.pitch, n.part)
            for n in piece.notes]


def sync_score_audio(piece: Piece, audio: np.ndarray, sr: int,
                     config: SyncConfig = SyncConfig()) -> SyncResult:
    """Synchronize a score (sequence A, at its nominal tempo) with a recording (B).

    The score side is the binary chroma of its notes (:func:`features.notes_to_chroma`);
    path times on the A axis are score seconds at ``piece.qpm`` (score quarter
    = seconds * qpm / 60).
    """
    events = score_events(piece)
    score_chroma = features.notes_to_chroma(events, config.rate_hz,
                                            timebase.num_frames(piece.end_q * 60.0 / piece.qpm, config.rate_hz))
    return align(score_chroma, audio_chroma(audio, sr, config), config)
