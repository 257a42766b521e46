"""Context windows of frames, the input layout of frame-wise classifiers."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def context_windows(frames: jax.Array, size: int) -> jax.Array:
    """Stack every frame with its neighbours: `(B, T, F)` -> `(B, T, size, F)`.

    Window t holds frames `t - size // 2 .. t + size // 2`; frames beyond the
    ends are zero (silence in a log-magnitude spectrogram), so the output
    keeps one window per input frame and lines up with frame-wise targets.

    Args:
      frames: `(B, T, F)` array, B batch, T frames, F bins.
      size: odd window length in frames.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"`size` must be a positive odd number of frames, got {size}.")
    half = size // 2
    padded = jnp.pad(frames, ((0, 0), (half, half), (0, 0)))
    num_frames = frames.shape[1]
    # `size` shifted views instead of a gather: cheap, and XLA fuses them.
    return jnp.stack([padded[:, k:k + num_frames] for k in range(size)], axis=2)
