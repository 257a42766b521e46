"""Connectionist temporal classification: loss, forward variables, alignment.

A drop-in for `optax.ctc_loss` (same signature, semantics and values) whose
gradient comes from the forward-backward algorithm: a custom VJP returns the
posterior occupancy of the lattice, so d loss / d logits is

    softmax(logits) - expected label occupancy

on valid frames (0 on padded frames), computed in one backward recursion
instead of by differentiating through the forward scan.

The lattice over the extended label sequence (Graves et al. 2006) has
S = 2N + 1 states per example: state 2n is the blank before label n
(state 2N the trailing blank), state 2n + 1 is label n. To reproduce optax
exactly, transitions that CTC forbids are not removed but penalised by
`log_epsilon` (optax's "numerically-stable approximation of log(+0)"):

* every state other than the first leading blank may start a path, at
  weight `log_epsilon`;
* label n-1 -> label n directly (skipping the blank) when the two labels are
  equal costs `log_epsilon`;
* label -> next blank carries log(1 + exp(log_epsilon)) (== 0 in floating
  point for the default), because optax sums an extra penalised copy of it.

For feasible targets these penalised paths are smaller by a factor
exp(log_epsilon) = exp(-1e5), i.e. exactly 0 in float32 and float64. For
impossible targets (too few frames for the labels and their repeats) they
are all there is: the loss is then a large finite number (about
-log_epsilon per violated constraint) with a finite gradient, as in optax.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from losses import _checks, _lattice


def _check_ctc_inputs(logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon):
    """Validated `(logits, logit_paddings, labels, label_paddings)`.

    Empty label sequences of shape `(B, 0)` become one padded label each, the
    same target (every frame blank) in a shape the recursion can scan.
    """
    _checks.check_negative_scalar(log_epsilon, "log_epsilon")
    logits, logit_paddings = _checks.logits_and_paddings(logits, logit_paddings)
    batch, frames, classes = logits.shape
    labels = _checks.as_int_array(labels, "labels", 2, "(B, N)")
    if labels.shape[0] != batch:
        raise ValueError(f"`labels` must have batch size B = {batch}, got shape {labels.shape}.")
    label_paddings = _checks.as_float_array(label_paddings, "label_paddings", 2, "(B, N)")
    _checks.check_shape(label_paddings, "label_paddings", labels.shape, "(B, N)")
    if labels.shape[1] == 0:
        labels = jnp.zeros((batch, 1), labels.dtype)
        label_paddings = jnp.ones((batch, 1), label_paddings.dtype)
    _checks.check_paddings(logit_paddings, "logit_paddings")
    _checks.check_paddings(label_paddings, "label_paddings")
    if not isinstance(blank_id, (int, np.integer)) or not 0 <= blank_id < classes:
        raise ValueError(f"`blank_id` must be an int in [0, K) = [0, {classes}), got {blank_id!r}.")
    _check_label_values(labels, label_paddings, classes)
    return logits, logit_paddings, labels, label_paddings


def _check_label_values(labels, label_paddings, classes):
    """Raise if concrete labels leave [0, K) or their padding is not a suffix."""
    label_values = _checks.concrete_value(labels)
    padding_values = _checks.concrete_value(label_paddings)
    if label_values is None or padding_values is None:
        return
    valid = padding_values == 0
    if np.any(valid & ((label_values < 0) | (label_values >= classes))):
        raise ValueError(
            f"`labels` must lie in [0, K) = [0, {classes}) where not padded, got "
            f"values in [{label_values[valid].min()}, {label_values[valid].max()}]."
        )
    if np.any(np.diff(padding_values, axis=1) < 0):
        raise ValueError("`label_paddings` must be right-padded: zeros, then ones, in each row.")


def label_lengths(label_paddings: jax.Array) -> jax.Array:
    """`(B,)` int32 number of valid labels, N minus the padded count."""
    max_labels = label_paddings.shape[1]
    return max_labels - jnp.sum(label_paddings, axis=1).astype(jnp.int32)


def ctc_transitions(
    repeats: jax.Array, lengths: jax.Array, log_epsilon, dtype
) -> _lattice.Transitions:
    """Lattice weights of CTC over `(B, N)` target positions, as optax has them.

    Args:
      repeats: `(B, N)` bool, True where symbol n equals symbol n - 1
        (column 0 is ignored).
      lengths: `(B,)` int number of valid symbols L.
      log_epsilon: log weight of a forbidden transition or start.
      dtype: float dtype of the weights.

    Returns:
      `_lattice.Transitions` of a lattice with N + 1 blank and N label states.
    """
    batch, max_labels = repeats.shape
    log_epsilon = jnp.asarray(log_epsilon, dtype)
    position = jnp.arange(max_labels)[None, :]
    blank_position = jnp.arange(max_labels + 1)[None, :]
    # optax adds a second, penalised copy of label -> blank.
    blank_entry = jnp.logaddexp(jnp.zeros((), dtype), log_epsilon)
    skip = jnp.where(repeats, log_epsilon, jnp.zeros((), dtype))
    skip = jnp.where(position == 0, _lattice.NEG, skip).astype(dtype)
    initial_blank = jnp.where(blank_position == 0, 0.0, log_epsilon).astype(dtype)
    lengths = lengths[:, None]
    return _lattice.Transitions(
        blank_entry=jnp.full((batch, 1), blank_entry, dtype),
        label_entry=jnp.zeros((batch, 1), dtype),
        skip_weights=skip,
        initial_blank=jnp.broadcast_to(initial_blank, (batch, max_labels + 1)),
        initial_label=jnp.full((batch, max_labels), log_epsilon, dtype),
        final_blank=jnp.where(blank_position == lengths, 0.0, _lattice.NEG).astype(dtype),
        final_label=jnp.where(position == lengths - 1, 0.0, _lattice.NEG).astype(dtype),
    )


@jax.custom_vjp
def _label_log_probs(log_probs: jax.Array, labels: jax.Array) -> jax.Array:
    """`(T, B, N)` log probability of label n at frame t, from `(B, T, K)` log probabilities.

    Out-of-range labels (only possible at padded positions, or under `jit`
    where values are not checked) get log probability 0 like optax's one-hot
    product, and no gradient. The gradient is a product with the labels' one-hot
    matrix: on XLA:CPU that is twice as fast as the scatter-add that transposes a gather.
    """
    classes = log_probs.shape[-1]
    in_range = (labels >= 0) & (labels < classes)
    index = jnp.where(in_range, labels, classes)[:, None, :]
    gathered = jnp.take_along_axis(log_probs, index, axis=-1, mode="fill", fill_value=0.0)
    return jnp.swapaxes(gathered, 0, 1)


def _label_log_probs_fwd(log_probs, labels):
    one_hot = jax.nn.one_hot(labels, log_probs.shape[-1], dtype=log_probs.dtype)  # out of range: zeros
    return _label_log_probs(log_probs, labels), one_hot


def _label_log_probs_bwd(one_hot, cotangent):
    # HIGHEST: a GPU's default TF32 would round the occupancies to a 10-bit mantissa.
    return jnp.einsum("tbn,bnk->btk", cotangent, one_hot, precision=jax.lax.Precision.HIGHEST), None


_label_log_probs.defvjp(_label_log_probs_fwd, _label_log_probs_bwd)


def ctc_lattice(
    logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon
) -> tuple[_lattice.Emissions, jax.Array, _lattice.Transitions]:
    """CTC as a lattice: time-major emissions, `(T, B)` valid frames, weights.

    Arguments as in `ctc_loss`, already checked.
    """
    log_probs = jax.nn.log_softmax(logits, axis=-1)  # (B, T, K); time-major after the gather
    emissions = _lattice.Emissions(
        log_blank=log_probs[..., blank_id].T, log_label=_label_log_probs(log_probs, labels)
    )
    frame_valid = jnp.swapaxes(logit_paddings, 0, 1) == 0
    repeats = jnp.pad(labels[:, 1:] == labels[:, :-1], ((0, 0), (1, 0)))
    transitions = ctc_transitions(
        repeats, label_lengths(label_paddings), log_epsilon, log_probs.dtype
    )
    return emissions, frame_valid, transitions


@functools.partial(jax.jit, static_argnums=4)
def _ctc_forward_probs(logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon):
    emissions, frame_valid, transitions = ctc_lattice(
        logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon
    )
    log_z, (log_alpha_blank, log_alpha_label) = _lattice.log_partition(
        emissions, frame_valid, transitions
    )
    # optax's last row already includes the final label -> blank transition.
    last_blank = log_alpha_blank[-1]
    last_blank = last_blank.at[:, 1:].set(jnp.logaddexp(last_blank[:, 1:], log_alpha_label[-1]))
    log_alpha_blank = log_alpha_blank.at[-1].set(last_blank)
    return -log_z, log_alpha_blank, log_alpha_label


def ctc_loss_with_forward_probs(
    logits: jax.typing.ArrayLike,
    logit_paddings: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    label_paddings: jax.typing.ArrayLike,
    *,
    blank_id: int = 0,
    log_epsilon: float = -1e5,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""CTC loss and forward variables, laid out as `optax.ctc_loss_with_forward_probs`.

    Args:
      logits: `(B, T, K)` array, B batch, T frames, K classes including the
        blank; unnormalised log probabilities (a log-softmax is applied).
      logit_paddings: `(B, T)` array of 0.0 (valid) and 1.0 (padded); padded
        frames are skipped wherever they occur.
      labels: `(B, N)` int array of target labels in [0, K), right-padded.
      label_paddings: `(B, N)` array of 0.0 (valid) and 1.0 (padded); each
        row is zeros followed by ones.
      blank_id: class index of the blank.
      log_epsilon: log weight given to transitions CTC forbids (see the
        module docstring); finite, so impossible targets give a large finite
        loss instead of inf.

    Returns:
      `(loss, log_alpha_blank, log_alpha_label)`: `(B,)` negative log
      likelihood; `(T, B, N + 1)` log forward variable of the blank before
      label n (after the last label for n = N); `(T, B, N)` log forward
      variable of label n. As in optax, the last frame's blank row already
      includes the final label -> blank transition, so
      `loss[b] == -log_alpha_blank[-1, b, L_b]`. The forward variables carry
      no gradient; differentiate `loss`.

    References:
      Graves et al., Connectionist temporal classification: labelling
      unsegmented sequence data with recurrent neural networks, ICML 2006.
    """
    checked = _check_ctc_inputs(logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon)
    return _ctc_forward_probs(*checked, blank_id, log_epsilon)


def ctc_loss(
    logits: jax.typing.ArrayLike,
    logit_paddings: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    label_paddings: jax.typing.ArrayLike,
    *,
    blank_id: int = 0,
    log_epsilon: float = -1e5,
) -> jax.Array:
    """CTC loss, a drop-in for `optax.ctc_loss` with a forward-backward gradient.

    The value is -log p(labels | logits), summed over all alignments
    (Graves et al. 2006). The gradient w.r.t. `logits` is
    `softmax(logits) - occupancy` on valid frames and 0 on padded ones, where
    `occupancy[b, t, k]` is the posterior probability that frame t is
    aligned to class k (see `ctc_alignment`). No gradient flows to the other
    arguments.

    Args:
      logits: `(B, T, K)` array, B batch, T frames, K classes including the
        blank.
      logit_paddings: `(B, T)` array, 1.0 where a frame is padded.
      labels: `(B, N)` int array of labels in [0, K), right-padded.
      label_paddings: `(B, N)` array, 1.0 where a label is padded.
      blank_id: class index of the blank.
      log_epsilon: log weight of transitions CTC forbids; impossible targets
        (fewer valid frames than labels plus repeats) give a large finite
        loss of about `-log_epsilon` per violation, as in optax.

    Returns:
      `(B,)` array, the loss of each sequence.
    """
    loss, _, _ = ctc_loss_with_forward_probs(
        logits, logit_paddings, labels, label_paddings,
        blank_id=blank_id, log_epsilon=log_epsilon,
    )
    return loss


class CTCAlignment(NamedTuple):
    """Best path and posterior of a CTC lattice, see `ctc_alignment`.

    Attributes:
      states: `(B, T)` int32 extended-label state of the best path at each
        frame: 2n is the blank before label n (2L the trailing blank),
        2n + 1 is label n; -1 on padded frames.
      label_positions: `(B, T)` int32 index n into `labels` of the label the
        best path emits at each frame; -1 on blank and padded frames.
      score: `(B,)` log probability of the best path.
      occupancy: `(B, T, 2N + 1)` posterior probability that frame t is in
        extended state s (the expected alignment); each valid frame sums to
        1, padded frames are 0. Even columns are blanks, odd column 2n + 1 is
        label n.
    """

    states: jax.Array
    label_positions: jax.Array
    score: jax.Array
    occupancy: jax.Array


def ctc_alignment(
    logits: jax.typing.ArrayLike,
    logit_paddings: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    label_paddings: jax.typing.ArrayLike,
    *,
    blank_id: int = 0,
    log_epsilon: float = -1e5,
) -> CTCAlignment:
    """Viterbi (best) alignment and posterior occupancy of CTC.

    The best path maximises the product of frame probabilities over all CTC
    alignments of `labels`; the occupancy is the posterior of each frame's
    extended-label state under all alignments, the quantity whose
    class-wise sum is subtracted from the softmax in the CTC gradient.
    Arguments as in `ctc_loss`.

    Returns:
      A `CTCAlignment` (states, label_positions, score, occupancy).
    """
    checked = _check_ctc_inputs(logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon)
    return _ctc_alignment(*checked, blank_id, log_epsilon)


@functools.partial(jax.jit, static_argnums=4)
def _ctc_alignment(logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon):
    emissions, frame_valid, transitions = ctc_lattice(
        logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon
    )
    states, score = _lattice.viterbi(emissions, frame_valid, transitions)
    occupancy = _lattice.interleave(*_lattice.posterior(emissions, frame_valid, transitions))
    states = states.T
    label_positions = jnp.where((states >= 0) & (states % 2 == 1), (states - 1) // 2, -1)
    return CTCAlignment(states, label_positions, score, jnp.swapaxes(occupancy, 0, 1))
