"""Reference implementations by exhaustive enumeration (tiny sizes only).

Independent of the lattice: CTC is defined here straight from Graves et
al. (2006) as a sum over all frame-wise symbol sequences that collapse to
the target (merge repeats, then drop blanks).
"""

from __future__ import annotations

import itertools

import numpy as np


def collapse(symbols, blank):
    """CTC's many-to-one map: merge consecutive repeats, then drop blanks."""
    merged = [s for i, s in enumerate(symbols) if i == 0 or s != symbols[i - 1]]
    return tuple(s for s in merged if s != blank)


def log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def ctc_paths(log_probs, labels, blank):
    """All (score, classes) of frame-wise class sequences collapsing to `labels`.

    Args:
      log_probs: `(T, K)` log probabilities of the valid frames.
      labels: sequence of target classes.
      blank: blank class.
    """
    frames, classes = log_probs.shape
    target = tuple(labels)
    paths = []
    for sequence in itertools.product(range(classes), repeat=frames):
        if collapse(sequence, blank) == target:
            score = sum(log_probs[t, k] for t, k in enumerate(sequence))
            paths.append((score, sequence))
    return paths


def ctc_negative_log_likelihood(logits, labels, blank):
    """-log sum over alignments, from `(T, K)` logits of the valid frames."""
    paths = ctc_paths(log_softmax(np.asarray(logits, np.float64)), labels, blank)
    if not paths:
        return np.inf
    scores = np.array([score for score, _ in paths])
    top = scores.max()
    return -(top + np.log(np.exp(scores - top).sum()))


def mctc_negative_log_likelihood(logits, targets):
    """MCTC by enumeration of all frame-wise class-set sequences.

    Args:
      logits: `(T, K)` sigmoid logits of the valid frames.
      targets: sequence of target sets, each a tuple of K zeros and ones.
    """
    logits = np.asarray(logits, np.float64)
    frames, classes = logits.shape
    log_on = -np.logaddexp(0.0, -logits)  # log sigmoid(z)
    log_off = -np.logaddexp(0.0, logits)  # log sigmoid(-z)
    sets = list(itertools.product((0, 1), repeat=classes))
    empty = (0,) * classes
    target = tuple(tuple(int(v) for v in y) for y in targets)
    scores = []
    for sequence in itertools.product(sets, repeat=frames):
        if collapse(sequence, empty) == target:
            scores.append(
                sum(
                    np.where(np.array(y) == 1, log_on[t], log_off[t]).sum()
                    for t, y in enumerate(sequence)
                )
            )
    scores = np.array(scores)
    top = scores.max()
    return -(top + np.log(np.exp(scores - top).sum()))
