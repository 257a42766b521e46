"""Forward-backward and Viterbi on a left-to-right lattice with skips.

This is the dynamic program behind CTC and multi-label CTC. Each example has
S states ordered left to right (for CTC: blank, label 1, blank, label 2, ...,
blank). At every valid frame a path either stays in its state, steps one
state right or skips one state; it then emits the frame with the state's log
emission probability. All quantities are log weights:

    alpha_t[s] = log_emissions[t, s] + logsumexp(alpha_{t-1}[s],
                                                 alpha_{t-1}[s-1] + step_weights[s],
                                                 alpha_{t-1}[s-2] + skip_weights[s])

with alpha_{-1} = initial_weights, and log Z = logsumexp_s(alpha_{T-1}[s] +
final_weights[s]). Invalid (padded) frames leave alpha unchanged, wherever
they occur. Forbidden transitions carry the finite weight `NEG` rather than
-inf, so that no max shift ever meets (-inf) - (-inf).

The gradient of log Z w.r.t. the log emissions is the posterior state
occupancy gamma_t[s] = exp(alpha_t[s] + beta_t[s] - log Z) (Rabiner 1989;
Graves et al. 2006, eq. 14), computed here by one backward (beta) recursion
over the stored alphas, not by differentiating through the forward scan.
Everything is batched over B and vectorised over the S states; the scans run
over time, which is the leading axis of every per-frame array.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

# Log weight of a transition or state that does not exist. Finite, so that
# the max-shifted log-sum-exp stays finite; so negative that exp(NEG - x)
# underflows to exactly 0 for any attainable log probability x.
NEG = -1e30

# Loop unrolling of the time scans: the per-step work is small (B x S
# elements), so the loop overhead matters on CPU.
_UNROLL = 1


class Transitions(NamedTuple):
    """Per-example log weights of the lattice, each a `(B, S)` array.

    Attributes:
      step_weights: log weight of the transition s-1 -> s (`NEG`: none).
      skip_weights: log weight of the transition s-2 -> s (`NEG`: none).
      initial_weights: log weight of being in state s before the first frame.
      final_weights: log weight of ending in state s after the last frame.
    """

    step_weights: jax.Array
    skip_weights: jax.Array
    initial_weights: jax.Array
    final_weights: jax.Array


def _shift_right(x: jax.Array, k: int, fill: float) -> jax.Array:
    """out[..., s] = x[..., s - k], `fill` where s < k (any S, even S < k)."""
    size = x.shape[-1]
    pad = [(0, 0)] * (x.ndim - 1) + [(k, 0)]
    return jnp.pad(x, pad, constant_values=fill)[..., :size]


def _shift_left(x: jax.Array, k: int, fill: float) -> jax.Array:
    """out[..., s] = x[..., s + k], `fill` where s + k >= S."""
    pad = [(0, 0)] * (x.ndim - 1) + [(0, k)]
    return jnp.pad(x, pad, constant_values=fill)[..., k:]


def _logsumexp3(a: jax.Array, b: jax.Array, c: jax.Array) -> jax.Array:
    """Elementwise log(exp(a) + exp(b) + exp(c)), shifted by the max."""
    m = jnp.maximum(jnp.maximum(a, b), c)
    return m + jnp.log(jnp.exp(a - m) + jnp.exp(b - m) + jnp.exp(c - m))


def _forward(
    log_emissions: jax.Array, frame_valid: jax.Array, transitions: Transitions
) -> tuple[jax.Array, jax.Array]:
    """Log partition `(B,)` and forward variables `(T, B, S)`."""
    step_weights, skip_weights, initial_weights, final_weights = transitions

    def advance(alpha, frame):
        log_emission, valid = frame
        stay = alpha
        step = _shift_right(alpha, 1, NEG) + step_weights
        skip = _shift_right(alpha, 2, NEG) + skip_weights
        moved = log_emission + _logsumexp3(stay, step, skip)
        alpha = jnp.where(valid[:, None], moved, alpha)
        return alpha, alpha

    alpha_last, log_alpha = lax.scan(
        advance, initial_weights, (log_emissions, frame_valid), unroll=_UNROLL
    )
    log_z = jax.nn.logsumexp(alpha_last + final_weights, axis=-1)
    return log_z, log_alpha


def _posterior(
    log_emissions: jax.Array,
    frame_valid: jax.Array,
    transitions: Transitions,
    log_alpha: jax.Array,
    log_z: jax.Array,
) -> jax.Array:
    """Posterior occupancy `(T, B, S)` by the backward recursion.

    beta_t[s] is the log weight of all path suffixes that leave state s
    after frame t; gamma_t[s] = exp(alpha_t[s] + beta_t[s] - log Z) on valid
    frames and 0 on padded ones (they emit nothing).
    """
    step_weights, skip_weights, _, final_weights = transitions
    # Weights of the transitions *out of* s: s -> s+1 and s -> s+2.
    step_out = _shift_left(step_weights, 1, NEG)
    skip_out = _shift_left(skip_weights, 2, NEG)
    next_valid = jnp.concatenate([frame_valid[1:], jnp.zeros_like(frame_valid[:1])])
    log_z = log_z[:, None]

    def retreat(carry, frame):
        # `entered` = log_emissions[t + 1] + beta_{t+1}: suffixes that enter
        # a state at frame t + 1. The carry holds it already summed, so the
        # step only shifts loop state; shifting a freshly computed sum
        # inside the loop body is several times slower on XLA:CPU.
        beta_next, entered = carry
        log_alpha_t, log_emission, valid, valid_next = frame
        leave = _logsumexp3(
            entered,
            _shift_left(entered, 1, NEG) + step_out,
            _shift_left(entered, 2, NEG) + skip_out,
        )
        beta = jnp.where(valid_next[:, None], leave, beta_next)
        gamma = jnp.where(valid[:, None], jnp.exp(log_alpha_t + beta - log_z), 0.0)
        return (beta, log_emission + beta), gamma

    # Past the last frame nothing is entered: `entered` starts at NEG and
    # next_valid is False there, so beta_{T-1} = final_weights.
    start = (final_weights, jnp.full_like(final_weights, NEG))
    _, gamma = lax.scan(
        retreat,
        start,
        (log_alpha, log_emissions, frame_valid, next_valid),
        reverse=True,
        unroll=_UNROLL,
    )
    return gamma


@jax.custom_vjp
def _log_partition(log_emissions, frame_valid, transitions):
    return _forward(log_emissions, frame_valid, transitions)


def _log_partition_fwd(log_emissions, frame_valid, transitions):
    log_z, log_alpha = _forward(log_emissions, frame_valid, transitions)
    residuals = (log_emissions, frame_valid, transitions, log_alpha, log_z)
    return (log_z, log_alpha), residuals


def _log_partition_bwd(residuals, cotangents):
    # The alphas are an output for inspection only; `log_partition` stops
    # their gradient, so their cotangent is always zero and is ignored here.
    g_log_z, _ = cotangents
    log_emissions, frame_valid, transitions, log_alpha, log_z = residuals
    gamma = _posterior(log_emissions, frame_valid, transitions, log_alpha, log_z)
    g_emissions = (g_log_z[None, :, None] * gamma).astype(log_emissions.dtype)
    zero_transitions = jax.tree.map(jnp.zeros_like, transitions)
    return g_emissions, None, zero_transitions


_log_partition.defvjp(_log_partition_fwd, _log_partition_bwd)


def log_partition(
    log_emissions: jax.Array, frame_valid: jax.Array, transitions: Transitions
) -> tuple[jax.Array, jax.Array]:
    """Log partition function of the lattice and its forward variables.

    Args:
      log_emissions: `(T, B, S)` array, log probability that state s emits
        frame t (time-major, so that the scan runs over the leading axis).
      frame_valid: `(T, B)` bool array, False for padded frames.
      transitions: the lattice's per-example weights, see `Transitions`.

    Returns:
      `(log_z, log_alpha)`: `(B,)` log partition (log-sum over all paths of
      their total log weight) and `(T, B, S)` forward variables. The gradient
      of `log_z` w.r.t. `log_emissions` is the posterior occupancy (custom
      VJP, one backward recursion); `log_alpha` carries no gradient, and no
      gradient flows to `transitions`.
    """
    log_z, log_alpha = _log_partition(log_emissions, frame_valid, transitions)
    return log_z, lax.stop_gradient(log_alpha)


def posterior(
    log_emissions: jax.Array, frame_valid: jax.Array, transitions: Transitions
) -> jax.Array:
    """Posterior occupancy `(T, B, S)`: probability of state s at frame t."""
    log_z, log_alpha = _forward(log_emissions, frame_valid, transitions)
    return _posterior(log_emissions, frame_valid, transitions, log_alpha, log_z)


def viterbi(
    log_emissions: jax.Array, frame_valid: jax.Array, transitions: Transitions
) -> tuple[jax.Array, jax.Array]:
    """Best path through the lattice (max-product instead of sum-product).

    Args:
      log_emissions: `(T, B, S)` array, see `log_partition`.
      frame_valid: `(T, B)` bool array, False for padded frames.
      transitions: the lattice's per-example weights.

    Returns:
      `(states, score)`: `(T, B)` int32 state of the best path at each frame
      (-1 on padded frames) and `(B,)` its total log weight. Ties go to the
      earliest of stay, step, skip.
    """
    step_weights, skip_weights, initial_weights, final_weights = transitions

    def advance(score, frame):
        log_emission, valid = frame
        candidates = jnp.stack(
            [
                score,
                _shift_right(score, 1, NEG) + step_weights,
                _shift_right(score, 2, NEG) + skip_weights,
            ]
        )
        # How far back the best predecessor lies: 0 stay, 1 step, 2 skip.
        back = jnp.argmax(candidates, axis=0).astype(jnp.int32)
        moved = log_emission + jnp.max(candidates, axis=0)
        return jnp.where(valid[:, None], moved, score), back

    score_last, backs = lax.scan(advance, initial_weights, (log_emissions, frame_valid))
    ending = score_last + final_weights
    last_state = jnp.argmax(ending, axis=-1).astype(jnp.int32)

    def backtrack(state, frame):
        back, valid = frame
        state_t = jnp.where(valid, state, -1)
        jump = jnp.take_along_axis(back, state[:, None], axis=-1)[:, 0]
        return jnp.where(valid, state - jump, state), state_t

    _, states = lax.scan(backtrack, last_state, (backs, frame_valid), reverse=True)
    return states, jnp.max(ending, axis=-1)
