"""Training objectives: `objective(outputs, batch) -> (B,)` per-example losses.

Hydra configs in `conf/loss/` build these with `_partial_: true`, binding the
numeric knobs; the training loop only ever calls `objective(outputs, batch)`.
The four chroma objectives train the same network from different targets
(the comparison of Zalkow & Müller 2021, Table "theme retrieval", plus
Krause et al. 2023):

* `strong_bce`: frame-wise BCE on strongly aligned chroma (`strong_targets`).
* `linear_scaling_bce`: BCE on the weakly aligned event sequence stretched
  linearly to the length of the audio (`weak_targets`).
* `ctc`: CTC on the label sequence (`labels`), 12 chroma + blank outputs.
* `soft_dtw`: soft-DTW with a BCE frame cost between the predictions and the
  event sequence, no stretching needed (`weak_targets`).

Batch keys (see `experiments.training.synthetic.chroma_examples`):
`paddings (B, T)`, `strong_targets (B, T, 12)`, `weak_targets (B, L, 12)`,
`weak_paddings (B, L)`, `labels (B, L)`, `label_paddings (B, L)`; the
embedding objectives read `labels (B,)`.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

import losses
import sdtw

Batch = Mapping[str, jax.Array]


def _valid_lengths(paddings: jax.Array) -> jax.Array:
    """`(B,)` int32 count of valid (unpadded) positions from `(B, N)` paddings."""
    return jnp.sum(1.0 - paddings, axis=1).astype(jnp.int32)


def strong_bce(outputs: jax.Array, batch: Batch) -> jax.Array:
    """BCE of chroma logits `(B, T, 12)` against strongly aligned targets."""
    return losses.bce_loss(outputs, batch["strong_targets"], paddings=batch["paddings"])


def stretch_linearly(sequence: jax.Array, lengths: jax.Array, frames: int, frame_lengths: jax.Array) -> jax.Array:
    """Stretch each sequence to its frame count by nearest-neighbour resampling.

    Args:
      sequence: `(B, L, K)` target rows, the first `lengths[b]` valid.
      lengths: `(B,)` valid rows (>= 1).
      frames: T, frames of the output.
      frame_lengths: `(B,)` valid frames; frame t < n takes row
        `floor(t * m / n)`, so each row gets about n / m frames.

    Returns:
      `(B, T, K)`; frames beyond `frame_lengths` repeat the last row (they are
      padding and masked by the loss).
    """
    t = jnp.arange(frames)[None, :]
    n = jnp.maximum(frame_lengths, 1)[:, None]
    rows = jnp.minimum((t * lengths[:, None]) // n, lengths[:, None] - 1)
    return jnp.take_along_axis(sequence, rows[:, :, None], axis=1)


def linear_scaling_bce(outputs: jax.Array, batch: Batch) -> jax.Array:
    """BCE against the weak target sequence stretched to the audio length ("linear scaling")."""
    stretched = stretch_linearly(
        batch["weak_targets"], _valid_lengths(batch["weak_paddings"]),
        outputs.shape[1], _valid_lengths(batch["paddings"]),
    )
    return losses.bce_loss(outputs, stretched, paddings=batch["paddings"])


def ctc(outputs: jax.Array, batch: Batch, *, blank_id: int = 0, normalize: bool = True) -> jax.Array:
    """CTC of class logits `(B, T, 13)` against chroma labels `(B, L)`.

    With `normalize` the loss is divided by the number of labels, so long and
    short examples weigh alike (and learning rates carry over between window
    lengths).
    """
    values = losses.ctc_loss(outputs, batch["paddings"], batch["labels"], batch["label_paddings"],
                             blank_id=blank_id)
    if normalize:
        values = values / jnp.maximum(_valid_lengths(batch["label_paddings"]), 1).astype(values.dtype)
    return values


def soft_dtw(outputs: jax.Array, batch: Batch, *, gamma: float = 0.1, normalize: str | None = "pred_length",
             band: int | None = None) -> jax.Array:
    """Soft-DTW between chroma logits `(B, T, 12)` and the weak target sequence (Krause et al. 2023).

    The frame cost is the BCE of a predicted frame against a target row
    (`sdtw.costs.binary_cross_entropy_with_logits`), and the loss aligns the
    two sequences itself, so no timing of the targets is needed.
    """
    return losses.soft_dtw_loss(
        outputs, batch["weak_targets"], gamma=gamma,
        cost=sdtw.costs.binary_cross_entropy_with_logits,
        pred_lengths=_valid_lengths(batch["paddings"]),
        target_lengths=_valid_lengths(batch["weak_paddings"]),
        normalize=normalize, band=band,
    )


def triplet(outputs: jax.Array, batch: Batch, *, margin: float = 0.2, mining: str = "semi-hard") -> jax.Array:
    """Triplet loss of embeddings `(B, D)` mined in the batch, same `labels` = positives; negatives
    of another label and, where the batch has `groups`, of another group."""
    return losses.batch_triplet_loss(outputs, batch["labels"], margin=margin, mining=mining,
                                     groups=batch.get("groups"))


def cross_modal_triplet(outputs: jax.Array, batch: Batch, *, margin: float = 0.5, mining: str = "semi-hard") -> jax.Array:
    """Triplet loss across two modalities: outputs `(B, 2, D)` hold the score and the audio embedding of
    each pair. Every embedding is an anchor; its positives are the embeddings of the same passage
    (`labels`), its negatives those of other passages *in the other modality* only (Dorfer et al.
    2018 rank audio against sheet snippets, never sheet against sheet). `(2B,)` losses."""
    pairs = outputs.shape[0]
    embeddings = outputs.transpose(1, 0, 2).reshape(2 * pairs, -1)
    labels = jnp.concatenate([batch["labels"], batch["labels"]])
    modality = jnp.repeat(jnp.arange(2), pairs)
    return losses.batch_triplet_loss(embeddings, labels, margin=margin, mining=mining, groups=modality)
