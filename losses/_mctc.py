"""Multi-label connectionist temporal classification (MCTC).

Formulation (Wigington, Price, Cohen 2019, in the "no epsilon" encoding with
two components per class that Weiß & Peeters 2021 use for multi-pitch
estimation from weakly aligned scores):

* The network emits K independent sigmoid probabilities per frame,
  p_t(k) = sigmoid(logits[t, k]).
* A target is a sequence of N sets of active classes (multi-hot vectors
  `targets[n]`), without timing, e.g. the pitch-class sets of consecutive
  score events.
* The probability that frame t shows the set y is the product over classes
  of p_t(k) if k is in y and 1 - p_t(k) otherwise:

      log P_t(y) = sum_k log sigmoid(-logits[t, k]) + sum_k y_k logits[t, k].

* The blank is the empty set (all classes inactive).
* Alignments are those of CTC over the symbols targets[0..N-1]: each set is
  held for one or more frames, blanks may separate sets and must separate
  two equal consecutive sets.

The loss is -log sum over alignments of prod_t P_t(symbol at t). Set
probabilities need not sum to one over the symbols of a target (most of the
2^K sets never occur), which is what makes the loss multi-label. For one-hot
targets MCTC is CTC over the alphabet {empty set, {0}, ..., {K-1}} with blank
logit 0, plus the log mass the sigmoids put outside that alphabet (see the
tests). The lattice, its optax-compatible penalties and the forward-backward
gradient are those of `losses.ctc_loss`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from losses import _checks, _ctc, _lattice


def _check_mctc_inputs(logits, logit_paddings, targets, target_paddings):
    logits, logit_paddings = _checks.logits_and_paddings(logits, logit_paddings)
    batch, frames, classes = logits.shape
    targets = _checks.as_float_array(targets, "targets", 3, "(B, N, K)")
    if targets.shape[0] != batch or targets.shape[2] != classes:
        raise ValueError(
            f"`targets` must have shape (B, N, K) with B = {batch} and K = {classes}, "
            f"got {targets.shape}."
        )
    target_paddings = _checks.as_float_array(target_paddings, "target_paddings", 2, "(B, N)")
    _checks.check_shape(target_paddings, "target_paddings", targets.shape[:2], "(B, N)")
    _checks.check_paddings(logit_paddings, "logit_paddings")
    _checks.check_paddings(target_paddings, "target_paddings")
    values = _checks.concrete_value(targets)
    if values is not None and not np.all((values == 0) | (values == 1)):
        raise ValueError("`targets` must be multi-hot: every entry 0 or 1.")
    return logits, logit_paddings, targets, target_paddings


def mctc_lattice(logits, logit_paddings, targets, target_paddings, log_epsilon):
    """MCTC as a lattice: time-major emissions, `(T, B)` valid frames, weights.

    Arguments as in `mctc_loss`, already checked.
    """
    logits_tbk = jnp.swapaxes(logits, 0, 1)
    log_blank = jnp.sum(jax.nn.log_sigmoid(-logits_tbk), axis=-1)  # (T, B)
    # log sigmoid(z) - log sigmoid(-z) = z, so a set adds the logits of its classes.
    log_label = log_blank[..., None] + jnp.einsum(
        "tbk,bnk->tbn", logits_tbk, targets.astype(logits.dtype)
    )
    emissions = _lattice.Emissions(log_blank=log_blank, log_label=log_label)
    frame_valid = jnp.swapaxes(logit_paddings, 0, 1) == 0
    repeats = jnp.pad(jnp.all(targets[:, 1:] == targets[:, :-1], axis=-1), ((0, 0), (1, 0)))
    transitions = _ctc.ctc_transitions(
        repeats, _ctc.label_lengths(target_paddings), log_epsilon, logits.dtype
    )
    return emissions, frame_valid, transitions


def mctc_loss(
    logits: jax.typing.ArrayLike,
    logit_paddings: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    target_paddings: jax.typing.ArrayLike,
    *,
    log_epsilon: float = -1e5,
) -> jax.Array:
    """Multi-label CTC loss for sequences of class sets (e.g. pitch-class sets).

    See the module docstring for the formulation. The gradient w.r.t.
    `logits[b, t, k]` is `sigmoid(logits) - expected target activity`: the
    posterior probability that frame t is aligned to a set containing k
    (custom VJP, one backward recursion).

    Args:
      logits: `(B, T, K)` array of per-class sigmoid logits, B batch, T
        frames, K classes (no blank class: the blank is "nothing active").
      logit_paddings: `(B, T)` array, 1.0 where a frame is padded.
      targets: `(B, N, K)` multi-hot array, N target sets per sequence,
        right-padded. A set should not be empty: an empty set is the blank.
      target_paddings: `(B, N)` array, 1.0 where a target set is padded;
        zeros followed by ones in each row.
      log_epsilon: log weight of transitions CTC forbids, as in
        `losses.ctc_loss`; impossible targets give a large finite loss.

    Returns:
      `(B,)` array, the negative log likelihood of each sequence.

    References:
      Wigington, Price, Cohen, Multi-label connectionist temporal
      classification, ICDAR 2019. Weiß, Peeters, Learning multi-pitch
      estimation from weakly aligned score-audio pairs using a multi-label
      CTC loss, WASPAA 2021.
    """
    _checks.check_negative_scalar(log_epsilon, "log_epsilon")
    checked = _check_mctc_inputs(logits, logit_paddings, targets, target_paddings)
    return _mctc_loss(*checked, log_epsilon)


@jax.jit
def _mctc_loss(logits, logit_paddings, targets, target_paddings, log_epsilon):
    emissions, frame_valid, transitions = mctc_lattice(
        logits, logit_paddings, targets, target_paddings, log_epsilon
    )
    log_z, _ = _lattice.log_partition(emissions, frame_valid, transitions)
    return -log_z
