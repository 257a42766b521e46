"""Tests of losses.mctc_loss (multi-label CTC)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import losses
from tests.losses import brute_force


def one_hot_batch(seed, batch=4, frames=9, classes=4, max_labels=3):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(batch, frames, classes)).astype(np.float32)
    labels = rng.integers(0, classes, size=(batch, max_labels)).astype(np.int32)
    labels[1, 1] = labels[1, 0]  # a repeated set
    label_paddings = np.zeros((batch, max_labels), np.float32)
    label_paddings[2, 2:] = 1.0
    logit_paddings = np.zeros((batch, frames), np.float32)
    logit_paddings[3, -2:] = 1.0
    return logits, logit_paddings, labels, label_paddings


class TestMCTCLoss:
    def test_reduces_to_ctc_for_one_hot_targets(self):
        # With singleton target sets, MCTC is CTC over the alphabet
        # {empty set, {0}, ..., {K-1}}: set log-probabilities equal CTC logits
        # [0, z] plus a per-frame constant, which factors out of every path.
        logits, logit_paddings, labels, label_paddings = one_hot_batch(0)
        targets = jax.nn.one_hot(labels, logits.shape[-1])

        def mctc(z):
            return losses.mctc_loss(z, logit_paddings, targets, label_paddings)

        def ctc_over_singletons(z):
            ctc_logits = jnp.concatenate([jnp.zeros(z.shape[:2] + (1,)), z], axis=-1)
            ctc = optax.ctc_loss(ctc_logits, logit_paddings, labels + 1, label_paddings)
            # log P_t(empty set or a singleton), the mass of the CTC alphabet.
            log_alphabet_mass = jnp.sum(jax.nn.log_sigmoid(-z), -1) + jax.nn.logsumexp(
                ctc_logits, -1
            )
            return ctc - jnp.sum((1.0 - logit_paddings) * log_alphabet_mass, axis=1)

        reference = jax.jit(ctc_over_singletons)
        np.testing.assert_allclose(mctc(logits), reference(logits), rtol=1e-5)
        grad = jax.grad(lambda z: jnp.sum(mctc(z)))(logits)
        expected = jax.jit(jax.grad(lambda z: jnp.sum(ctc_over_singletons(z))))(logits)
        np.testing.assert_allclose(grad, expected, atol=2e-5)

    @pytest.mark.parametrize(
        "targets", [((1, 0),), ((1, 1), (0, 1)), ((1, 0), (1, 0)), ((0, 1), (1, 1), (0, 1))]
    )
    def test_matches_brute_force_enumeration(self, x64, targets):
        rng = np.random.default_rng(len(targets))
        frames, classes = 4, 2
        logits = rng.normal(size=(1, frames, classes))
        target_array = np.array([targets], np.float64)
        value = losses.mctc_loss(
            logits, np.zeros((1, frames)), target_array, np.zeros((1, len(targets)))
        )
        expected = brute_force.mctc_negative_log_likelihood(logits[0], targets)
        np.testing.assert_allclose(value[0], expected, rtol=1e-12)

    def test_check_grads(self, x64):
        rng = np.random.default_rng(3)
        logits = jnp.asarray(rng.normal(size=(2, 6, 3)))
        targets = jnp.asarray([[[1, 0, 1], [0, 1, 0]], [[1, 1, 1], [0, 0, 1]]], jnp.float64)
        check_grads(
            lambda z: losses.mctc_loss(z, jnp.zeros((2, 6)), targets, jnp.zeros((2, 2))),
            (logits,),
            order=1,
            modes=["rev"],
        )

    def test_impossible_targets_are_finite(self):
        logits = np.zeros((1, 2, 3), np.float32)
        targets = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1]]], np.float32)
        value, grad = jax.value_and_grad(
            lambda z: losses.mctc_loss(z, np.zeros((1, 2)), targets, np.zeros((1, 3)))[0]
        )(logits)
        assert 1e4 < value < 1e6 and np.all(np.isfinite(grad))

    BAD_INPUTS = {
        "logits rank": (dict(logits=np.zeros((2, 5))), "`logits`"),
        "targets classes": (dict(targets=np.zeros((2, 3, 3))), "`targets`"),
        "targets values": (dict(targets=np.full((2, 3, 4), 0.5)), "`targets`"),
        "target_paddings shape": (dict(target_paddings=np.zeros((2, 2))), "`target_paddings`"),
        "logit_paddings shape": (dict(logit_paddings=np.zeros((1, 5))), "`logit_paddings`"),
    }

    @pytest.mark.parametrize("case", sorted(BAD_INPUTS))
    def test_bad_input_raises(self, case):
        arguments = dict(
            logits=np.zeros((2, 5, 4)),
            logit_paddings=np.zeros((2, 5)),
            targets=np.ones((2, 3, 4)),
            target_paddings=np.zeros((2, 3)),
        )
        change, name = self.BAD_INPUTS[case]
        arguments.update(change)
        with pytest.raises(ValueError, match=name):
            losses.mctc_loss(**arguments)
