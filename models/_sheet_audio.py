"""Two-branch sheet-music / audio embedder for cross-modal retrieval (Dorfer et al. 2018)."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from models._keys import split_or_none
from models._shingle import l2_normalize


class _Branch(nnx.Module):
    """Image `(B, H, W)` -> embedding `(B, D)`: 3x3 conv + ReLU + 2x2 max-pool blocks, a dense layer."""

    def __init__(self, shape: tuple[int, int], channels: Sequence[int], hidden: int, embedding_dim: int,
                 dropout: float, *, rngs: nnx.Rngs):
        widths = [1, *channels]
        self.convs = nnx.List([nnx.Conv(a, b, kernel_size=(3, 3), padding="SAME", rngs=rngs)
                               for a, b in zip(widths[:-1], widths[1:])])
        pooled = (shape[0] >> len(channels)) * (shape[1] >> len(channels))
        self.hidden = nnx.Linear(pooled * channels[-1], hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, embedding_dim, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)

    def __call__(self, x: jax.Array, dropout_key: jax.Array | None) -> jax.Array:
        x = x[..., None]
        for conv in self.convs:
            x = nnx.max_pool(jax.nn.relu(conv(x)), window_shape=(2, 2), strides=(2, 2))
        x = jax.nn.relu(self.hidden(x.reshape(x.shape[0], -1)))
        x = self.dropout(x, deterministic=dropout_key is None, rngs=dropout_key)
        return l2_normalize(self.out(x))


class SheetAudioEmbedder(nnx.Module):
    """Sheet-music snippet and audio snippet -> one L2-normalised embedding space.

    One CNN reads a snippet of an unrolled score (`(H, W)` pixels, ink = 1), another
    a snippet of a log-frequency spectrogram (`(T, F)` frames x bins); trained so
    that a score snippet lies close to the audio it sounds as (a triplet or pairwise
    ranking loss), they serve score following (DTW over embedding distances) and
    retrieval in both directions.

    For the training loop, which hands a model one input array, a pair travels packed:
    `inputs = concat([sheet.reshape(B, -1), audio.reshape(B, -1)], axis=1)`
    (:meth:`pack`), and the call returns both embeddings, `(B, 2, D)`.

    Reference:
      M. Dorfer, J. Hajič jr., A. Arzt, H. Frostel, G. Widmer. Learning audio-sheet music
      correspondences for cross-modal retrieval and piece identification. TISMIR 1(1), 2018.
    """

    def __init__(
        self,
        embedding_dim: int = 32,
        *,
        sheet_shape: Sequence[int] = (96, 64),
        audio_shape: Sequence[int] = (40, 120),
        channels: Sequence[int] = (8, 16, 32),
        hidden: int = 128,
        dropout: float = 0.1,
        rngs: nnx.Rngs,
    ):
        """
        Args:
          embedding_dim: D.
          sheet_shape: (H, W) of a score snippet; both divisible by 2 ** len(channels).
          audio_shape: (T, F) of a spectrogram snippet; both divisible by 2 ** len(channels).
          channels: output channels of the conv blocks (the same for both branches).
          hidden: width of the dense layer before the embedding.
          dropout: dropout rate before the last layer (training only).
          rngs: parameter initialisation keys.
        """
        for name, shape in (("sheet_shape", sheet_shape), ("audio_shape", audio_shape)):
            if any(size % (1 << len(channels)) for size in shape):
                raise ValueError(f"{name}={tuple(shape)}: every size must be divisible by 2 ** {len(channels)}")
        self.sheet_shape, self.audio_shape = tuple(sheet_shape), tuple(audio_shape)
        self.embedding_dim = embedding_dim
        self.sheet = _Branch(self.sheet_shape, channels, hidden, embedding_dim, dropout, rngs=rngs)
        self.audio = _Branch(self.audio_shape, channels, hidden, embedding_dim, dropout, rngs=rngs)

    @property
    def sheet_size(self) -> int:
        return self.sheet_shape[0] * self.sheet_shape[1]

    def pack(self, sheet: jax.Array, audio: jax.Array) -> jax.Array:
        """`(B, H, W)` score and `(B, T, F)` audio snippets -> `(B, H*W + T*F)` model input."""
        return jnp.concatenate([sheet.reshape(sheet.shape[0], -1), audio.reshape(audio.shape[0], -1)], axis=1)

    def embed_sheet(self, sheet: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        """`(B, H, W)` score snippets -> `(B, D)` unit vectors."""
        return self.sheet(sheet, dropout_key)

    def embed_audio(self, audio: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        """`(B, T, F)` spectrogram snippets -> `(B, D)` unit vectors."""
        return self.audio(audio, dropout_key)

    def __call__(self, inputs: jax.Array, *, dropout_key: jax.Array | None = None) -> jax.Array:
        """`(B, H*W + T*F)` packed pairs -> `(B, 2, D)`: score embedding, then audio embedding."""
        expected = self.sheet_size + self.audio_shape[0] * self.audio_shape[1]
        if inputs.ndim != 2 or inputs.shape[1] != expected:
            raise ValueError(f"expected packed pairs (B, {expected}), got {inputs.shape}: see SheetAudioEmbedder.pack")
        sheet_key, audio_key = split_or_none(dropout_key, 2)
        sheet = inputs[:, :self.sheet_size].reshape(-1, *self.sheet_shape)
        audio = inputs[:, self.sheet_size:].reshape(-1, *self.audio_shape)
        return jnp.stack([self.embed_sheet(sheet, sheet_key), self.embed_audio(audio, audio_key)], axis=1)
