"""Time <-> frame conversions: the one place where seconds meet frame indices.

Every feature sequence in the project is sampled on a uniform grid: frame
``k`` describes the instant ``t_k = k / rate_hz`` seconds (the frame *centre*,
matching librosa's ``center=True`` convention). Every module converts between
seconds, frames and samples with the functions below, never by hand, so that a
change of convention happens here only.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "frame_times",
    "frames_to_seconds",
    "num_frames",
    "resample_frames",
    "samples_to_seconds",
    "seconds_to_frames",
    "seconds_to_samples",
]


def frames_to_seconds(frames, rate_hz: float) -> np.ndarray:
    """Frame index (any shape, may be fractional) -> time of the frame centre in seconds."""
    return np.asarray(frames, dtype=np.float64) / float(rate_hz)


def seconds_to_frames(seconds, rate_hz: float, *, rounding: str = "nearest") -> np.ndarray:
    """Time in seconds -> frame index on a grid of ``rate_hz`` frames per second.

    Args:
      seconds: times in seconds, any shape.
      rate_hz: frame rate in Hz.
      rounding: ``"nearest"`` (int, nearest frame centre), ``"floor"`` (int) or
        ``"none"`` (float, fractional frame position).
    """
    position = np.asarray(seconds, dtype=np.float64) * float(rate_hz)
    if rounding == "none":
        return position
    if rounding == "nearest":
        return np.floor(position + 0.5).astype(np.int64)
    if rounding == "floor":
        return np.floor(position).astype(np.int64)
    raise ValueError(f"rounding must be 'nearest', 'floor' or 'none', got {rounding!r}")


def num_frames(duration_s: float, rate_hz: float) -> int:
    """Number of frames whose centres lie in ``[0, duration_s]`` (at least 1)."""
    return max(1, int(np.floor(float(duration_s) * float(rate_hz) + 1e-9)) + 1)


def frame_times(n_frames: int, rate_hz: float) -> np.ndarray:
    """Centre times in seconds of frames ``0 .. n_frames - 1``: shape ``(n_frames,)``."""
    return frames_to_seconds(np.arange(int(n_frames)), rate_hz)


def seconds_to_samples(seconds, sample_rate: int) -> np.ndarray:
    """Time in seconds -> nearest sample index (int64)."""
    return np.floor(np.asarray(seconds, dtype=np.float64) * sample_rate + 0.5).astype(np.int64)


def samples_to_seconds(samples, sample_rate: int) -> np.ndarray:
    """Sample index -> time in seconds."""
    return np.asarray(samples, dtype=np.float64) / float(sample_rate)


def resample_frames(values: np.ndarray, source_rate_hz: float, target_rate_hz: float,
                    n_target: int | None = None) -> np.ndarray:
    """Linearly interpolate a feature sequence onto another uniform frame grid.

    Used to bring librosa features computed at a power-of-two hop (fast CQT)
    to the configured feature rate. Interpolating at the target frame centres
    keeps the time convention of :func:`frames_to_seconds` exact. Downsampling
    by large factors should be preceded by smoothing (CENS does it).

    Args:
      values: ``(T, D)`` array, frame ``j`` at ``j / source_rate_hz`` seconds.
      source_rate_hz: rate of ``values`` in Hz.
      target_rate_hz: rate of the result in Hz.
      n_target: number of output frames; by default all target frames whose
        centres fall within the source span.

    Returns:
      ``(n_target, D)`` array of the dtype of ``values``.
    """
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"values must be (T, D), got shape {values.shape}")
    n_source = values.shape[0]
    if n_target is None:
        n_target = num_frames((n_source - 1) / source_rate_hz, target_rate_hz)
    source_t = frame_times(n_source, source_rate_hz)
    target_t = frame_times(n_target, target_rate_hz)
    out = np.empty((n_target, values.shape[1]), dtype=np.result_type(values.dtype, np.float32))
    for d in range(values.shape[1]):
        out[:, d] = np.interp(target_t, source_t, values[:, d])
    return out.astype(values.dtype, copy=False)
