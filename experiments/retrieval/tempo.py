"""Tempo-scaled query variants: global tempo handled by resampling the query.

Instead of warping (expensive), a query is resampled at R rates, each
simulating a global tempo change (Müller, Kurth, Clausen 2005, sec. 4;
Grosche & Müller 2012 for shingles: up to +-50 %). A scale ``s > 1`` means
the matching passage in the database is *slower* than the query (lasts ``s``
times longer), so the variant has ``s`` times as many frames.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from experiments import timebase

__all__ = ["TEMPO_SCALES", "scale_tempo", "tempo_variants", "unit_rows"]

# Geometric around 1, from 1/1.5 to 1.5: the range of the seed's query variants.
TEMPO_SCALES: tuple[float, ...] = (0.66, 0.8, 1.0, 1.25, 1.5)


def unit_rows(frames: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero): ``(T, D)`` float32."""
    norms = np.linalg.norm(frames, axis=-1, keepdims=True)
    return (frames / np.maximum(norms, eps)).astype(np.float32)


def scale_tempo(frames: np.ndarray, rate_hz: float, target_rate_hz: float, scale: float) -> np.ndarray:
    """Resample ``frames`` (T, D) at ``rate_hz`` to ``target_rate_hz * scale``.

    The result, read as a sequence at ``target_rate_hz``, is the query played
    ``scale`` times slower. Linear interpolation; smooth the input first when
    ``target_rate_hz * scale`` is much lower than ``rate_hz`` (CENS is smooth).

    Returns:
      ``(T', D)`` with ``T'`` about ``T * target_rate_hz * scale / rate_hz`` (at least 1).
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    return timebase.resample_frames(np.asarray(frames, np.float32), rate_hz, target_rate_hz * scale)


def tempo_variants(frames: np.ndarray, rate_hz: float, target_rate_hz: float,
                   scales: Sequence[float] = TEMPO_SCALES) -> list[np.ndarray]:
    """One resampled copy of ``frames`` per scale (see :func:`scale_tempo`)."""
    return [scale_tempo(frames, rate_hz, target_rate_hz, s) for s in scales]

