"""Forward-backward and Viterbi on the CTC lattice.

This is the dynamic program behind CTC and multi-label CTC (Graves et al.
2006). For N target symbols the lattice has N + 1 blank states and N label
states; in the extended-label order of the paper they alternate
blank 0, label 0, blank 1, label 1, ..., label N-1, blank N (extended index
2n for blank n, 2n + 1 for label n). At every valid frame a path stays in
its state, steps to the next extended state, or jumps from label n-1 to
label n (skipping blank n); then it emits the frame. In log space, with
emission log probabilities `log_blank[t]` (shared by all blank states) and
`log_label[t, n]`:

    blank_t[n] = log_blank[t]    + LSE(blank_{t-1}[n], label_{t-1}[n-1] + blank_entry)
    label_t[n] = log_label[t, n] + LSE(label_{t-1}[n], blank_{t-1}[n] + label_entry,
                                       label_{t-1}[n-1] + skip_weights[n])

starting from the initial weights before frame 0, and log Z = LSE over the
states at the last frame plus their final weights. Invalid (padded) frames
leave every state unchanged, wherever they occur.

Blank and label states are kept in two arrays rather than one interleaved
array: a blank state has two predecessors, a label state three, so this
saves a third of the exp/log evaluations, which dominate the run time.
Forbidden transitions carry the finite weight `NEG` rather than -inf, so no
max shift ever meets (-inf) - (-inf).

The gradient of log Z w.r.t. the emissions is the posterior occupancy
(Rabiner 1989; Graves et al. 2006, eq. 14), computed in a custom VJP by one
backward recursion (a reverse scan), not by differentiating through the
forward scan. Its variables beta_t[s] weigh all paths from state s at frame t
to the end, frame t's emission excluded, so

    gamma_t[s] = exp(alpha_t[s] + beta_t[s] - log Z).

Both recursions are batched over B and vectorised over the states; they scan
over time, the leading axis of every per-frame array.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

# Log weight of a transition or state that does not exist. Finite, so that
# the max-shifted log-sum-exp stays finite; so negative that exp(NEG - x)
# underflows to exactly 0 for any attainable log probability x.
NEG = -1e30


class Transitions(NamedTuple):
    """Per-example log weights of a CTC lattice with N labels.

    Attributes:
      blank_entry: `(B, 1)` log weight of label n-1 -> blank n.
      label_entry: `(B, 1)` log weight of blank n -> label n.
      skip_weights: `(B, N)` log weight of label n-1 -> label n (column 0 is
        unused and should be `NEG`).
      initial_blank: `(B, N + 1)` log weight of starting in blank n.
      initial_label: `(B, N)` log weight of starting in label n.
      final_blank: `(B, N + 1)` log weight of ending in blank n.
      final_label: `(B, N)` log weight of ending in label n.
    """

    blank_entry: jax.Array
    label_entry: jax.Array
    skip_weights: jax.Array
    initial_blank: jax.Array
    initial_label: jax.Array
    final_blank: jax.Array
    final_label: jax.Array


class Emissions(NamedTuple):
    """Time-major emission log probabilities of a CTC lattice.

    Attributes:
      log_blank: `(T, B)` log probability of the blank at frame t.
      log_label: `(T, B, N)` log probability of target symbol n at frame t.
    """

    log_blank: jax.Array
    log_label: jax.Array


def _prepend(x: jax.Array, fill: float) -> jax.Array:
    """x with one more column `fill` at the start: `(B, N)` -> `(B, N + 1)`."""
    return jnp.concatenate([jnp.full(x.shape[:-1] + (1,), fill, x.dtype), x], axis=-1)


def _append(x: jax.Array, fill: float) -> jax.Array:
    """x with one more column `fill` at the end: `(B, N)` -> `(B, N + 1)`."""
    return jnp.concatenate([x, jnp.full(x.shape[:-1] + (1,), fill, x.dtype)], axis=-1)


def _logaddexp(a: jax.Array, b: jax.Array) -> jax.Array:
    """log(exp(a) + exp(b)) with one exp and one log.

    `jnp.logaddexp` uses log1p, which costs about four logs on XLA:CPU; the
    absolute error of log(1 + x) instead is below float epsilon.
    """
    m = jnp.maximum(a, b)
    return m + jnp.log(1.0 + jnp.exp(-jnp.abs(a - b)))


def _logsumexp3(a: jax.Array, b: jax.Array, c: jax.Array) -> jax.Array:
    """Elementwise log(exp(a) + exp(b) + exp(c)), shifted by the max."""
    m = jnp.maximum(jnp.maximum(a, b), c)
    return m + jnp.log(jnp.exp(a - m) + jnp.exp(b - m) + jnp.exp(c - m))


def _transition(
    blank: jax.Array, label: jax.Array, transitions: Transitions
) -> tuple[jax.Array, jax.Array]:
    """Log weight of entering each state from its predecessors (no emission)."""
    previous_label = _prepend(label, NEG)  # label n-1 for blank n and label n
    into_blank = _logaddexp(blank, previous_label + transitions.blank_entry)
    into_label = _logsumexp3(
        label,
        blank[:, :-1] + transitions.label_entry,
        previous_label[:, :-1] + transitions.skip_weights,
    )
    return into_blank, into_label


def _advance(alpha, frame, transitions):
    """One frame of the forward recursion; padded frames keep alpha."""
    blank, label = alpha
    log_blank, log_label, valid = frame
    into_blank, into_label = _transition(blank, label, transitions)
    valid = valid[:, None]
    return (
        jnp.where(valid, log_blank[:, None] + into_blank, blank),
        jnp.where(valid, log_label + into_label, label),
    )


def _log_z(alpha, transitions):
    blank, label = alpha
    return jax.nn.logsumexp(
        jnp.concatenate(
            [blank + transitions.final_blank, label + transitions.final_label], axis=-1
        ),
        axis=-1,
    )


def _forward(
    emissions: Emissions, frame_valid: jax.Array, transitions: Transitions
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """Log partition `(B,)` and forward variables `(T, B, N+1)`, `(T, B, N)`.

    The initial weights sit on a virtual frame before the first one, as in
    optax, and the first valid frame is entered by a transition.
    """

    def advance(alpha, frame):
        alpha = _advance(alpha, frame, transitions)
        return alpha, alpha

    start = (transitions.initial_blank, transitions.initial_label)
    frames = (emissions.log_blank, emissions.log_label, frame_valid)
    alpha_last, log_alpha = lax.scan(advance, start, frames)
    return _log_z(alpha_last, transitions), log_alpha


def _retreat(beta, frame, transitions):
    """One frame of the backward recursion: the suffix variables before frame t from those at t.

    `beta` holds, for every state at frame t, the log weight of all paths from it to the end,
    frame t's emission excluded; a state's successors at frame t are itself, blank n -> label n,
    label n -> blank n + 1 and label n -> label n + 1. Padded frames keep beta.
    """
    blank, label = beta
    log_blank, log_label, valid = frame
    from_blank = log_blank[:, None] + blank  # frame t's emission included
    from_label = log_label + label
    into_label = _append(from_label + transitions.label_entry, NEG)  # blank N has no label N
    next_skip = _append(transitions.skip_weights[:, 1:], NEG)
    back_blank = _logaddexp(from_blank, into_label)
    back_label = _logsumexp3(
        from_label,
        from_blank[:, 1:] + transitions.blank_entry,
        _append(from_label[:, 1:], NEG) + next_skip,
    )
    valid = valid[:, None]
    return jnp.where(valid, back_blank, blank), jnp.where(valid, back_label, label)


def _backward(emissions: Emissions, frame_valid: jax.Array, transitions: Transitions):
    """Suffix variables `(T, B, N+1)`, `(T, B, N)`: for every state at frame t, the log weight
    of all paths from it to the end, frame t's emission excluded (Rabiner's beta)."""

    def retreat(beta, frame):
        return _retreat(beta, frame, transitions), beta

    end = (transitions.final_blank, transitions.final_label)
    frames = (emissions.log_blank, emissions.log_label, frame_valid)
    _, log_beta = lax.scan(retreat, end, frames, reverse=True)
    return log_beta


def _forward_and_backward(emissions: Emissions, frame_valid: jax.Array, transitions: Transitions):
    """`(log_z, log_alpha, log_beta)`: the forward and the backward recursion, each one scan."""
    log_z, log_alpha = _forward(emissions, frame_valid, transitions)
    return log_z, log_alpha, _backward(emissions, frame_valid, transitions)


def _occupancy(frame_valid, log_alpha, log_beta):
    """Posterior occupancy of blank `(T, B, N+1)` and label `(T, B, N)` states.

    Zero on padded frames. Every path is in exactly one state at each valid
    frame, so each frame's joint weights are normalized by their own sum,
    which equals Z in exact arithmetic. Dividing by the Z of the last frame
    instead would leave the rounding error that the recursions accumulate
    over T frames in every exponent (`|log Z| * eps`, the order of 1e-5 in float32
    for `|log Z|` ~ 50); the frame's own sum carries the same error, which
    cancels, and the occupancies of a frame sum to 1. The exp runs on the whole
    `(T, B, states)` block at once, outside the scan, where XLA vectorises it well.
    """
    joint = [alpha + beta for alpha, beta in zip(log_alpha, log_beta)]
    peak = functools.reduce(jnp.maximum, [jnp.max(j, axis=-1, keepdims=True, initial=NEG) for j in joint])
    weights = [jnp.exp(j - peak) for j in joint]  # one exp per state, as with a global Z
    frame_z = sum(w.sum(axis=-1, keepdims=True) for w in weights)
    valid = frame_valid[:, :, None]
    return tuple(jnp.where(valid, w / frame_z, 0.0) for w in weights)


@jax.custom_vjp
def _log_partition(emissions, frame_valid, transitions):
    return _forward(emissions, frame_valid, transitions)


def _log_partition_fwd(emissions, frame_valid, transitions):
    log_z, log_alpha, log_beta = _forward_and_backward(emissions, frame_valid, transitions)
    residuals = (emissions, frame_valid, transitions, log_alpha, log_beta)
    return (log_z, log_alpha), residuals


def _log_partition_bwd(residuals, cotangents):
    # The alphas are an output for inspection only: `log_partition` stops
    # their gradient, so their cotangent is always zero and is ignored.
    g_log_z, _ = cotangents
    emissions, frame_valid, transitions, log_alpha, log_beta = residuals
    gamma_blank, gamma_label = _occupancy(frame_valid, log_alpha, log_beta)
    g_blank = g_log_z[None, :] * jnp.sum(gamma_blank, axis=-1)  # blanks share one emission
    g_label = g_log_z[None, :, None] * gamma_label
    g_emissions = Emissions(
        log_blank=g_blank.astype(emissions.log_blank.dtype),
        log_label=g_label.astype(emissions.log_label.dtype),
    )
    zero_transitions = jax.tree.map(jnp.zeros_like, transitions)
    return g_emissions, None, zero_transitions


_log_partition.defvjp(_log_partition_fwd, _log_partition_bwd)


def log_partition(
    emissions: Emissions, frame_valid: jax.Array, transitions: Transitions
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """Log partition function of the lattice and its forward variables.

    Args:
      emissions: time-major emission log probabilities, see `Emissions`.
      frame_valid: `(T, B)` bool array, False for padded frames.
      transitions: the lattice's per-example weights, see `Transitions`.

    Returns:
      `(log_z, (log_alpha_blank, log_alpha_label))`: `(B,)` log partition
      (log-sum over all paths of their total log weight) and the forward
      variables `(T, B, N + 1)`, `(T, B, N)`. The gradient of `log_z`
      w.r.t. the emissions is the posterior occupancy (custom VJP, one
      backward recursion); the forward variables carry no gradient, nor do
      `transitions`.
    """
    log_z, log_alpha = _log_partition(emissions, frame_valid, transitions)
    return log_z, lax.stop_gradient(log_alpha)


def posterior(
    emissions: Emissions, frame_valid: jax.Array, transitions: Transitions
) -> tuple[jax.Array, jax.Array]:
    """Posterior occupancy of blank `(T, B, N+1)` and label `(T, B, N)` states."""
    _, log_alpha, log_beta = _forward_and_backward(emissions, frame_valid, transitions)
    return _occupancy(frame_valid, log_alpha, log_beta)


def interleave(blank: jax.Array, label: jax.Array) -> jax.Array:
    """Blank `(..., N+1)` and label `(..., N)` arrays in extended-label order `(..., 2N+1)`."""
    pairs = jnp.stack([blank[..., :-1], label], axis=-1)
    pairs = pairs.reshape(label.shape[:-1] + (2 * label.shape[-1],))
    return jnp.concatenate([pairs, blank[..., -1:]], axis=-1)


def viterbi(
    emissions: Emissions, frame_valid: jax.Array, transitions: Transitions
) -> tuple[jax.Array, jax.Array]:
    """Best path through the lattice (max-product instead of sum-product).

    Args:
      emissions: time-major emission log probabilities, see `Emissions`.
      frame_valid: `(T, B)` bool array, False for padded frames.
      transitions: the lattice's per-example weights.

    Returns:
      `(states, score)`: `(T, B)` int32 extended-label state of the best path
      at each frame (2n blank n, 2n + 1 label n, -1 on padded frames) and
      `(B,)` its total log weight. Ties go to staying, then to the nearer
      predecessor.
    """
    blank_entry, label_entry = transitions.blank_entry, transitions.label_entry
    skip_weights = transitions.skip_weights

    def advance(score, frame):
        blank, label = score
        log_blank, log_label, valid = frame
        previous_label = _prepend(label, NEG)
        blank_options = jnp.stack([blank, previous_label + blank_entry])
        label_options = jnp.stack(
            [label, blank[:, :-1] + label_entry, previous_label[:, :-1] + skip_weights]
        )
        # How many extended states back the best predecessor lies.
        back = interleave(
            jnp.argmax(blank_options, axis=0), jnp.argmax(label_options, axis=0)
        ).astype(jnp.int8)
        valid = valid[:, None]
        new_blank = log_blank[:, None] + jnp.max(blank_options, axis=0)
        new_label = log_label + jnp.max(label_options, axis=0)
        score = (jnp.where(valid, new_blank, blank), jnp.where(valid, new_label, label))
        return score, back

    start = (transitions.initial_blank, transitions.initial_label)
    (blank, label), backs = lax.scan(
        advance, start, (emissions.log_blank, emissions.log_label, frame_valid)
    )
    ending = interleave(blank + transitions.final_blank, label + transitions.final_label)
    last_state = jnp.argmax(ending, axis=-1).astype(jnp.int32)

    def backtrack(state, frame):
        back, valid = frame
        state_t = jnp.where(valid, state, -1)
        jump = jnp.take_along_axis(back, state[:, None], axis=-1)[:, 0]
        return jnp.where(valid, state - jump.astype(jnp.int32), state), state_t

    _, states = lax.scan(backtrack, last_state, (backs, frame_valid), reverse=True)
    return states, jnp.max(ending, axis=-1)
