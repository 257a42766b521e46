"""Validation scores: frame-wise chroma F-measure, CTC pitch-class accuracy, triplet accuracy and
cross-modal batch retrieval.

Every function returns sums `(correct-like counts...)` so that scores over
several batches combine exactly (F-measure is not a mean of batch F-measures).
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

NUM_CHROMA = 12


def chroma_counts(chroma: jax.Array, targets: jax.Array, paddings: jax.Array, *, threshold: float = 0.5) -> jax.Array:
    """True positives, false positives, false negatives `(3,)` of thresholded chroma.

    Args:
      chroma: `(B, T, 12)` predicted chroma probabilities.
      targets: `(B, T, 12)` binary reference chroma.
      paddings: `(B, T)`, 1.0 on padded frames (not counted).
    """
    valid = (1.0 - paddings)[:, :, None]
    predicted = (chroma >= threshold).astype(jnp.float32) * valid
    reference = (targets >= 0.5).astype(jnp.float32) * valid
    tp = jnp.sum(predicted * reference)
    return jnp.stack([tp, jnp.sum(predicted) - tp, jnp.sum(reference) - tp])


def f_measure(counts: jax.Array) -> jax.Array:
    """F = 2 TP / (2 TP + FP + FN) from `(3,)` counts; 1 if there is nothing to find or predict."""
    tp, fp, fn = counts[0], counts[1], counts[2]
    return jnp.where(2 * tp + fp + fn > 0, 2 * tp / jnp.maximum(2 * tp + fp + fn, 1e-12), 1.0)


def ctc_counts(logits: jax.Array, labels: jax.Array, paddings: jax.Array, *, blank_id: int = 0) -> jax.Array:
    """(frames whose most probable non-blank class is the frame's label, labelled frames) `(2,)`.

    CTC posteriors are peaky: one frame per note carries the label, the blank takes
    the rest, so a thresholded F-measure stays near 0 however well the network
    hears. Which pitch class leads among the non-blank posteriors is what a
    chroma read from them shows, so that is what this counts.
    """
    labelled = (labels != blank_id) & (paddings < 0.5)
    predicted = jnp.argmax(jnp.delete(logits, blank_id, axis=-1, assume_unique_indices=True), axis=-1)
    predicted = predicted + (predicted >= blank_id)  # back to class ids
    correct = jnp.sum(labelled & (predicted == labels))
    return jnp.stack([correct, jnp.sum(labelled)]).astype(jnp.float32)


def triplet_counts(embeddings: jax.Array, labels: jax.Array, groups: jax.Array | None = None) -> jax.Array:
    """(anchors whose nearest positive is closer than their nearest negative, anchors) `(2,)`.

    Positives and negatives as in `losses.batch_triplet_loss` (`groups`: negatives of another
    group only). Anchors without a positive or a negative in the batch are not counted.
    """
    distance = jnp.sum((embeddings[:, None, :] - embeddings[None, :, :]) ** 2, axis=-1)
    same = labels[:, None] == labels[None, :]
    positive = same & ~jnp.eye(labels.shape[0], dtype=bool)
    negative = ~same if groups is None else ~same & (groups[:, None] != groups[None, :])
    nearest_positive = jnp.min(jnp.where(positive, distance, jnp.inf), axis=1)
    nearest_negative = jnp.min(jnp.where(negative, distance, jnp.inf), axis=1)
    counted = jnp.any(positive, axis=1) & jnp.any(negative, axis=1)
    correct = counted & (nearest_positive < nearest_negative)
    return jnp.stack([jnp.sum(correct), jnp.sum(counted)]).astype(jnp.float32)


def cross_modal_counts(pairs: jax.Array, labels: jax.Array) -> jax.Array:
    """(score snippets whose nearest audio snippet in the batch is of their passage, pairs) `(2,)`,
    from `(B, 2, D)` embeddings of (score, audio) pairs."""
    similarity = pairs[:, 0] @ pairs[:, 1].T
    nearest = jnp.argmax(similarity, axis=1)
    return jnp.stack([jnp.sum(labels[nearest] == labels), labels.shape[0]]).astype(jnp.float32)


def task_counts(task: str, outputs: jax.Array, batch: Mapping[str, jax.Array]) -> jax.Array:
    """The counts of the score of `task` ("chroma", "ctc", "embedding" or "cross_modal") for one batch.

    "chroma": sigmoid chroma against `strong_targets`. "ctc": the leading non-blank
    class against the frame labels `strong_labels` (`ctc_counts`). "embedding":
    triplet accuracy counts. "cross_modal": score-to-audio retrieval in the batch.
    """
    if task == "chroma":
        return chroma_counts(jax.nn.sigmoid(outputs), batch["strong_targets"], batch["paddings"])
    if task == "ctc":
        return ctc_counts(outputs, batch["strong_labels"], batch["paddings"])
    if task == "embedding":
        return triplet_counts(outputs, batch["labels"], batch.get("groups"))
    if task == "cross_modal":
        return cross_modal_counts(outputs, batch["labels"])
    raise ValueError(f"unknown task {task!r}; expected 'chroma', 'ctc', 'embedding' or 'cross_modal'.")


def task_score(task: str, counts: jax.Array) -> tuple[str, float]:
    """(name, value) of the validation score from counts summed over batches."""
    if task in ("embedding", "ctc", "cross_modal"):
        name = {"embedding": "triplet_accuracy", "ctc": "pitch_class_accuracy", "cross_modal": "batch_top1"}[task]
        return name, float(counts[0] / jnp.maximum(counts[1], 1.0))
    return "f_measure", float(f_measure(counts))
