"""Shingle embedder for cross-version retrieval (Zalkow & Müller 2020)."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from models._keys import split_or_none

NUM_CHROMA = 12


class ShingleEmbedder(nnx.Module):
    """CENS shingle `(20 x 12 = 240 values)` -> L2-normalised embedding of 6, 12 or 30 dims.

    A shingle is a run of consecutive CENS frames (20 frames at 1 Hz in the
    paper). Two small convolutions run over (time, chroma); the chroma axis
    is padded circularly because pitch classes wrap around (B is next to C),
    so a transposition-like shift looks the same to every kernel. A dense
    layer then maps to the embedding, which is L2-normalised so that
    Euclidean distance and cosine similarity rank alike in the retrieval index.

    Parameter counts (defaults, 20 x 12 shingles): 497,222 for 6 dims,
    497,996 for 12 and 500,318 for 30. The test configuration
    (`channels=(4, 8)`, `hidden=32`, 12 dims) has 31,484.

    Reference:
      F. Zalkow, M. Müller. Learning low-dimensional embeddings of audio
      shingles for cross-version retrieval of classical music. Applied
      Sciences 10(1), 2020.
    """

    def __init__(
        self,
        embedding_dim: int = 12,
        *,
        shingle_frames: int = 20,
        channels: Sequence[int] = (16, 32),
        hidden: int = 128,
        dropout: float = 0.1,
        rngs: nnx.Rngs,
    ):
        """
        Args:
          embedding_dim: D, size of the embedding (6, 12 or 30 in the paper).
          shingle_frames: frames per shingle (the input has `shingle_frames * 12` values).
          channels: output channels of the two 3x3 convolutions.
          hidden: width of the dense layer before the embedding.
          dropout: dropout rate before the last layers (training only).
          rngs: parameter initialisation keys.
        """
        self.embedding_dim = embedding_dim
        self.shingle_frames = shingle_frames
        widths = [1, *channels]
        self.convs = nnx.List([
            nnx.Conv(a, b, kernel_size=(3, 3), padding="VALID", rngs=rngs)
            for a, b in zip(widths[:-1], widths[1:])
        ])
        # Time pooled by 2 after the convolutions; chroma keeps its 12 bins.
        flat = (shingle_frames // 2) * NUM_CHROMA * widths[-1]
        self.dense = nnx.Linear(flat, hidden, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)
        self.output = nnx.Linear(hidden, embedding_dim, rngs=rngs)

    def __call__(self, shingles: jax.Array, *, dropout_key: jax.Array | None = None) -> jax.Array:
        """Embeddings of a batch of shingles.

        Args:
          shingles: `(B, 240)` flattened (frame-major) or `(B, 20, 12)` shingles.
          dropout_key: PRNG key; dropout is applied only when it is given.

        Returns:
          `(B, D)` embeddings of unit L2 norm.
        """
        size = self.shingle_frames * NUM_CHROMA
        if shingles.ndim not in (2, 3) or shingles.shape[1:] not in ((size,), (self.shingle_frames, NUM_CHROMA)):
            raise ValueError(
                f"`shingles` must have shape (B, {size}) or (B, {self.shingle_frames}, 12), got {shingles.shape}."
            )
        batch = shingles.shape[0]
        x = shingles.reshape(batch, self.shingle_frames, NUM_CHROMA, 1)
        for conv in self.convs:
            # 'SAME' in time, circular in chroma.
            x = jnp.pad(x, ((0, 0), (1, 1), (0, 0), (0, 0)))
            x = jnp.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)), mode="wrap")
            x = jax.nn.elu(conv(x))
        x = nnx.max_pool(x, window_shape=(2, 1), strides=(2, 1))
        keys = split_or_none(dropout_key, 2)
        x = self.dropout(x.reshape(batch, -1), deterministic=keys[0] is None, rngs=keys[0])
        x = jax.nn.elu(self.dense(x))
        x = self.dropout(x, deterministic=keys[1] is None, rngs=keys[1])
        return l2_normalize(self.output(x))


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rows of `x` `(B, D)` scaled to unit Euclidean norm (zero rows stay zero)."""
    norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
    return x / jnp.maximum(norm, eps)
