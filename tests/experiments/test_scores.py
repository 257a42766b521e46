"""Validation scores of the training loop (experiments.training.scores)."""

import jax.numpy as jnp
import numpy as np

from experiments.training import scores


def test_ctc_score_counts_frames_whose_leading_non_blank_class_is_the_label():
    # 4 frames, classes: blank, C, C#, D (+ 9 more, never likely). The blank leads every frame, as
    # in a trained CTC network; among the rest, frames 0 and 1 lead with the right class.
    logits = np.full((1, 4, 13), -5.0, np.float32)
    logits[0, :, 0] = 5.0
    logits[0, 0, 1] = 1.0   # label 1 (C): right
    logits[0, 1, 3] = 1.0   # label 3 (D): right
    logits[0, 2, 2] = 1.0   # label 1 (C): wrong
    labels = jnp.array([[1, 3, 1, 0]])      # frame 3: silence, not counted
    counts = scores.ctc_counts(jnp.asarray(logits), labels, jnp.zeros((1, 4)))
    np.testing.assert_array_equal(np.asarray(counts), [2, 3])
    padded = scores.ctc_counts(jnp.asarray(logits), labels, jnp.array([[0.0, 1.0, 0.0, 0.0]]))
    np.testing.assert_array_equal(np.asarray(padded), [1, 2])
    name, value = scores.task_score("ctc", counts)
    assert name == "pitch_class_accuracy" and abs(value - 2 / 3) < 1e-6
    assert scores.task_score("chroma", jnp.array([1.0, 0.0, 1.0]))[0] == "f_measure"
