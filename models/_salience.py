"""Deep salience CNN on the HCQT, with a pitch-salience or a chroma/CTC head."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from models._keys import split_or_none


class SalienceCNN(nnx.Module):
    """HCQT -> convolutional stack -> per-frame salience or class logits.

    The HCQT stacks constant-Q spectrograms whose lowest bin sits on the h-th
    harmonic of the same fundamental, so a small kernel sees a note's
    partials in one place (Bittner et al. 2017). The stack keeps the time and
    frequency resolution ('SAME' padding): a few local convolutions, then one
    kernel about an octave wide in frequency (`wide_kernel`) that collects the
    harmonic pattern.

    Heads:
      * `num_classes=None`: a 1x1 convolution to one channel, the pitch
        salience logit of every (frame, bin) (Bittner et al. 2017).
      * `num_classes=K`: a dense layer over all bins of a frame to K logits,
        e.g. 12 chroma classes for BCE training or 12 chroma + blank = 13
        for CTC training (Zalkow & Müller 2021).

    Parameter counts: with the paper-sized defaults, 6 harmonics and 216 bins
    (6 octaves x 36 bins), 428,053 for `num_classes=13` and 405,585 for the
    salience head; the configuration used in tests
    (`channels=(8, 8)`, `kernels=((3, 3), (3, 3))`, `wide_kernel=(3, 13)`,
    `wide_channels=4`, 72 bins, 13 classes) has 6,033.

    References:
      R. Bittner, B. McFee, J. Salamon, P. Li, J. P. Bello. Deep salience
      representations for F0 estimation in polyphonic music. ISMIR 2017.
      F. Zalkow, M. Müller. CTC-based learning of chroma features for
      score-audio music retrieval. IEEE/ACM TASLP 29, 2021.
    """

    def __init__(
        self,
        num_harmonics: int,
        num_bins: int,
        *,
        num_classes: int | None = 13,
        channels: Sequence[int] = (128, 64, 64, 64),
        kernels: Sequence[Sequence[int]] = ((5, 5), (5, 5), (3, 3), (3, 3)),
        wide_kernel: Sequence[int] = (3, 70),
        wide_channels: int = 8,
        dropout: float = 0.0,
        frequency_pool: int = 1,
        rngs: nnx.Rngs,
    ):
        """
        Args:
          num_harmonics: H, channels of the HCQT.
          num_bins: F, frequency bins per channel.
          num_classes: K logits per frame, or None for the salience head.
          channels: output channels of the local convolutions.
          kernels: their (time, frequency) kernel sizes, one per entry of `channels`.
          wide_kernel: (time, frequency) kernel of the octave-wide convolution.
          wide_channels: its output channels.
          dropout: dropout rate after each convolution (training only).
          frequency_pool: average every `frequency_pool` neighbouring bins before the
            convolutions (3 turns a 3-bins-per-semitone HCQT into semitones: about 10x
            less compute, the size for training on a CPU). Must divide `num_bins`.
          rngs: parameter initialisation keys.
        """
        if len(kernels) != len(channels):
            raise ValueError(f"`kernels` needs one entry per channel count, got {kernels} for {channels}.")
        if frequency_pool < 1 or num_bins % frequency_pool:
            raise ValueError(f"`frequency_pool` must divide `num_bins` ({num_bins}), got {frequency_pool}.")
        self.frequency_pool = frequency_pool
        self.num_harmonics = num_harmonics
        self.num_bins = num_bins
        self.num_classes = num_classes
        widths = [num_harmonics, *channels, wide_channels]
        sizes = [tuple(k) for k in kernels] + [tuple(wide_kernel)]
        self.convs = nnx.List([
            nnx.Conv(a, b, kernel_size=k, padding="SAME", rngs=rngs)
            for a, b, k in zip(widths[:-1], widths[1:], sizes)
        ])
        self.dropout = nnx.Dropout(dropout)
        if num_classes is None:
            self.head = nnx.Conv(wide_channels, 1, kernel_size=(1, 1), rngs=rngs)
        else:
            self.head = nnx.Linear(num_bins // frequency_pool * wide_channels, num_classes, rngs=rngs)

    def __call__(self, hcqt: jax.Array, *, dropout_key: jax.Array | None = None,
                 lengths: jax.Array | None = None) -> jax.Array:
        """Logits of every frame.

        Args:
          hcqt: `(B, T, H, F)` array, B batch, T frames, H harmonics, F bins
            (the layout of `experiments.features.hcqt`, batched).
          dropout_key: PRNG key; dropout is applied only when it is given.
          lengths: `(B,)` true lengths when the inputs are padded in time. Frames from
            `lengths` on are zeroed in the input and after every layer, as 'SAME' padding zeroes the frames past
            the end, so the logits of the valid frames equal those of the unpadded input (one
            compiled shape serves inputs of many lengths).

        Returns:
          `(B, T, K)` class logits, or `(B, T, F / frequency_pool)` salience logits
          when `num_classes` is None.
        """
        expected = (self.num_harmonics, self.num_bins)
        if hcqt.ndim != 4 or hcqt.shape[2:] != expected:
            raise ValueError(f"`hcqt` must have shape (B, T, {expected[0]}, {expected[1]}), got {hcqt.shape}.")
        # Channels last for nnx.Conv: an image of time x frequency with H channels.
        x = jnp.swapaxes(hcqt, 2, 3)
        if self.frequency_pool > 1:
            x = x.reshape(*x.shape[:2], -1, self.frequency_pool, x.shape[-1]).mean(axis=3)
        keys = split_or_none(dropout_key, len(self.convs))
        valid = None if lengths is None else (jnp.arange(x.shape[1])[None] < lengths[:, None])[..., None, None]
        if valid is not None:
            x = jnp.where(valid, x, 0.0)
        for conv, key in zip(self.convs, keys):
            x = jax.nn.relu(conv(x))
            x = self.dropout(x, deterministic=key is None, rngs=key)
            if valid is not None:
                x = jnp.where(valid, x, 0.0)
        if self.num_classes is None:
            return self.head(x)[..., 0]
        batch, frames = x.shape[:2]
        return self.head(x.reshape(batch, frames, -1))
