"""Tests of losses.bce_loss."""

import jax
import numpy as np
import optax
import pytest

import losses


def random_batch(seed=0, shape=(3, 6, 4)):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=shape).astype(np.float32)
    targets = (rng.random(size=shape) < 0.4).astype(np.float32)
    return logits, targets


class TestBCELoss:
    def test_matches_optax_mean_per_example(self):
        logits, targets = random_batch()
        expected = optax.sigmoid_binary_cross_entropy(logits, targets).mean(axis=(1, 2))
        np.testing.assert_allclose(losses.bce_loss(logits, targets), expected, rtol=1e-6)

    def test_paddings_and_mask_exclude_entries(self):
        logits, targets = random_batch(1)
        paddings = np.zeros(logits.shape[:2], np.float32)
        paddings[1, 4:] = 1.0
        mask = np.ones(logits.shape, bool)
        mask[2, :, 0] = False
        value = losses.bce_loss(logits, targets, paddings=paddings, mask=mask)
        elementwise = np.asarray(optax.sigmoid_binary_cross_entropy(logits, targets))
        counted = mask & (paddings == 0)[:, :, None]
        expected = [elementwise[b][counted[b]].mean() for b in range(3)]
        np.testing.assert_allclose(value, expected, rtol=1e-6)
        # Values under padding do not matter, and get no gradient.
        grad = jax.grad(lambda z: losses.bce_loss(z, targets, paddings=paddings).sum())(logits)
        np.testing.assert_array_equal(np.asarray(grad)[1, 4:], 0.0)

    def test_extreme_logits_are_stable(self):
        logits = np.array([[[1e4, -1e4, 80.0, -80.0]]], np.float32)
        targets = np.array([[[1.0, 0.0, 0.0, 1.0]]], np.float32)
        value, grad = jax.value_and_grad(lambda z: losses.bce_loss(z, targets)[0])(logits)
        np.testing.assert_allclose(value, (0.0 + 0.0 + 80.0 + 80.0) / 4, rtol=1e-6)
        np.testing.assert_allclose(grad, [[[0.0, 0.0, 0.25, -0.25]]], atol=1e-7)

    def test_all_padded_gives_zero(self):
        logits, targets = random_batch(2)
        value = losses.bce_loss(logits, targets, paddings=np.ones(logits.shape[:2]))
        np.testing.assert_array_equal(value, 0.0)

    BAD_INPUTS = {
        "logits rank": (dict(logits=np.zeros((3, 6))), "`logits`"),
        "targets shape": (dict(targets=np.zeros((3, 6, 5))), "`targets`"),
        "targets range": (dict(targets=np.full((3, 6, 4), 2.0)), "`targets`"),
        "paddings shape": (dict(paddings=np.zeros((3, 5))), "`paddings`"),
        "mask shape": (dict(mask=np.ones((3, 6), bool)), "`mask`"),
    }

    @pytest.mark.parametrize("case", sorted(BAD_INPUTS))
    def test_bad_input_raises(self, case):
        logits, targets = random_batch(3)
        arguments = dict(logits=logits, targets=targets)
        change, name = self.BAD_INPUTS[case]
        arguments.update(change)
        with pytest.raises(ValueError, match=name):
            losses.bce_loss(**arguments)
