"""Deep chroma extractor (Korzeniowski & Widmer 2016)."""

from __future__ import annotations

from typing import Sequence

import jax
from flax import nnx

from models._context import context_windows
from models._keys import split_or_none

NUM_CHROMA = 12


class DeepChroma(nnx.Module):
    """Context window of log-frequency spectrogram frames -> 12 chroma logits.

    Every frame is classified from the `context` frames around it by a
    multilayer perceptron with ReLU and dropout; a sigmoid on the output gives
    the chroma vector (each pitch class present or not). Logits are returned,
    so that losses can use the stable `log sigmoid` form.

    With the defaults (context 15, 120 bins = 5 octaves x 24 bins, three hidden
    layers of 512 units, as in the paper) the model has 1,453,580 parameters;
    `DeepChroma(120, context=7, hidden=(64, 64))` used in tests has 58,764.

    Reference:
      F. Korzeniowski, G. Widmer. Feature learning for chord recognition: the
      deep chroma extractor. ISMIR 2016.
    """

    def __init__(
        self,
        num_bins: int,
        *,
        context: int = 15,
        hidden: Sequence[int] = (512, 512, 512),
        dropout: float = 0.5,
        rngs: nnx.Rngs,
    ):
        """
        Args:
          num_bins: F, frequency bins of one input frame.
          context: odd number of frames seen per output frame.
          hidden: widths of the hidden dense layers.
          dropout: dropout rate after each hidden layer (training only).
          rngs: parameter initialisation keys.
        """
        self.num_bins = num_bins
        self.context = context
        widths = [context * num_bins, *hidden]
        self.hidden = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])]
        )
        self.dropout = nnx.Dropout(dropout)
        self.output = nnx.Linear(widths[-1], NUM_CHROMA, rngs=rngs)

    def __call__(self, spectrogram: jax.Array, *, dropout_key: jax.Array | None = None) -> jax.Array:
        """Chroma logits of every frame.

        Args:
          spectrogram: `(B, T, F)` log-frequency spectrogram, F = `num_bins`.
          dropout_key: PRNG key; dropout is applied only when it is given.

        Returns:
          `(B, T, 12)` chroma logits, pitch class C = 0.
        """
        if spectrogram.ndim != 3 or spectrogram.shape[-1] != self.num_bins:
            raise ValueError(
                f"`spectrogram` must have shape (B, T, {self.num_bins}), got {spectrogram.shape}."
            )
        batch, frames, _ = spectrogram.shape
        x = context_windows(spectrogram, self.context).reshape(batch, frames, -1)
        keys = split_or_none(dropout_key, len(self.hidden))
        for layer, key in zip(self.hidden, keys):
            x = jax.nn.relu(layer(x))
            x = self.dropout(x, deterministic=key is None, rngs=key)
        return self.output(x)

