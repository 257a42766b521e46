"""Tests of losses.soft_dtw_loss against sdtw and a naive recursion."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losses
import sdtw


def naive_soft_dtw(C, gamma):
    """Cuturi & Blondel's recursion, cell by cell, in float64 NumPy."""
    N, M = C.shape
    R = np.full((N + 1, M + 1), np.inf)
    R[0, 0] = 0.0
    for i in range(1, N + 1):
        for j in range(1, M + 1):
            previous = np.array([R[i - 1, j], R[i, j - 1], R[i - 1, j - 1]])
            finite = previous[np.isfinite(previous)]
            softmin = -gamma * np.log(np.sum(np.exp(-(finite - finite.min()) / gamma))) + finite.min()
            R[i, j] = C[i - 1, j - 1] + softmin
    return R[N, M]


def random_pair(seed, batch=3, frames=7, target_frames=4, features=3):
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=(batch, frames, features)).astype(np.float32)
    target = (rng.random(size=(batch, target_frames, features)) < 0.5).astype(np.float32)
    return pred, target


class TestSoftDTWLoss:
    def test_matches_naive_recursion_with_lengths(self, x64):
        pred, target = random_pair(0)
        pred, target = pred.astype(np.float64), target.astype(np.float64)
        pred_lengths, target_lengths = np.array([7, 5, 2]), np.array([4, 1, 3])
        values = losses.soft_dtw_loss(
            pred, target, gamma=0.5, pred_lengths=pred_lengths, target_lengths=target_lengths
        )
        for b in range(3):
            x, y = pred[b, : pred_lengths[b]], target[b, : target_lengths[b]]
            C = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
            np.testing.assert_allclose(values[b], naive_soft_dtw(C, 0.5), rtol=1e-10)

    @pytest.mark.parametrize(
        "cost",
        [sdtw.costs.squared_euclidean, sdtw.costs.binary_cross_entropy_with_logits, sdtw.costs.cosine],
    )
    def test_matches_sdtw_per_example(self, cost):
        pred, target = random_pair(1)
        values = losses.soft_dtw_loss(pred, target, gamma=0.1, cost=cost)
        expected = [sdtw.soft_dtw(cost(pred[b], target[b]), 0.1) for b in range(3)]
        np.testing.assert_allclose(values, expected, rtol=1e-5)

    def test_gradient_matches_sdtw_and_vanishes_beyond_length(self):
        pred, target = random_pair(2)
        lengths = jnp.array([7, 4, 6])
        grad = jax.grad(
            lambda p: jnp.sum(losses.soft_dtw_loss(p, target, gamma=0.3, pred_lengths=lengths))
        )(pred)
        for b in range(3):
            n = int(lengths[b])
            expected = jax.grad(
                lambda x: sdtw.soft_dtw(sdtw.costs.squared_euclidean(x, target[b]), 0.3)
            )(pred[b, :n])
            np.testing.assert_allclose(grad[b, :n], expected, rtol=1e-4, atol=1e-5)
            np.testing.assert_array_equal(grad[b, n:], 0.0)

    def test_jit_and_vmap_with_traced_lengths(self):
        pred, target = random_pair(3)
        pred_lengths, target_lengths = jnp.array([7, 3, 5]), jnp.array([2, 4, 3])

        @jax.jit
        def loss(p, t, n, m):
            return losses.soft_dtw_loss(p, t, gamma=0.2, pred_lengths=n, target_lengths=m)

        eager = losses.soft_dtw_loss(
            pred, target, gamma=0.2, pred_lengths=pred_lengths, target_lengths=target_lengths
        )
        np.testing.assert_allclose(loss(pred, target, pred_lengths, target_lengths), eager, rtol=1e-6)
        # vmap over an extra leading axis (e.g. several augmentations).
        stacked = jax.vmap(loss, in_axes=(0, None, None, None))(
            jnp.stack([pred, pred + 1.0]), target, pred_lengths, target_lengths
        )
        np.testing.assert_allclose(stacked[0], eager, rtol=1e-6)
        assert stacked.shape == (2, 3)

    def test_divergence_is_zero_for_identical_sequences(self):
        pred, _ = random_pair(4)
        values = losses.soft_dtw_loss(pred, pred, gamma=1.0, divergence=True)
        np.testing.assert_allclose(values, 0.0, atol=1e-5)
        plain = losses.soft_dtw_loss(pred, pred, gamma=1.0)
        assert np.all(plain < -1e-3)  # soft-DTW's entropic bias, removed above

    def test_divergence_matches_sdtw(self):
        pred, target = random_pair(5)
        lengths = jnp.array([5, 7, 6])
        values = losses.soft_dtw_loss(
            pred, target, gamma=0.5, divergence=True, pred_lengths=lengths
        )
        for b in range(3):
            n = int(lengths[b])
            np.testing.assert_allclose(
                values[b], sdtw.divergence(pred[b, :n], target[b], 0.5), rtol=1e-5
            )

    def test_normalize(self):
        pred, target = random_pair(6)
        n, m = jnp.array([7, 3, 5]), jnp.array([4, 2, 1])
        kwargs = dict(gamma=0.1, pred_lengths=n, target_lengths=m)
        raw = losses.soft_dtw_loss(pred, target, **kwargs)
        np.testing.assert_allclose(
            losses.soft_dtw_loss(pred, target, normalize="pred_length", **kwargs), raw / n, rtol=1e-6
        )
        np.testing.assert_allclose(
            losses.soft_dtw_loss(pred, target, normalize="total_length", **kwargs),
            raw / (n + m),
            rtol=1e-6,
        )

    def test_any_callable_cost(self):
        pred, target = random_pair(7)

        def absolute(x, y):
            return jnp.sum(jnp.abs(x[:, None, :] - y[None, :, :]), axis=-1)

        values = losses.soft_dtw_loss(pred, target, gamma=0.1, cost=absolute)
        np.testing.assert_allclose(
            values, [sdtw.soft_dtw(absolute(pred[b], target[b]), 0.1) for b in range(3)], rtol=1e-5
        )

    BAD_INPUTS = {
        "pred rank": (dict(pred=np.zeros((3, 7))), "`pred`"),
        "target features": (dict(target=np.zeros((3, 4, 2))), "`target`"),
        "target batch": (dict(target=np.zeros((2, 4, 3))), "`target`"),
        "gamma zero": (dict(gamma=0.0), "`gamma`"),
        "pred_lengths range": (dict(pred_lengths=np.array([8, 1, 1])), "`pred_lengths`"),
        "target_lengths zero": (dict(target_lengths=np.array([0, 1, 1])), "`target_lengths`"),
        "target_lengths shape": (dict(target_lengths=np.array([1, 1])), "`target_lengths`"),
        "normalize": (dict(normalize="mean"), "`normalize`"),
        "cost": (dict(cost="euclidean"), "`cost`"),
        # A per-frame distance instead of a pairwise matrix: vmap would broadcast it silently.
        "cost shape": (dict(cost=lambda x, y: ((x[:, None] - y[None]) ** 2).sum(-1).T),
                       r"`cost` must return an \(N, M\) = \(7, 4\) matrix"),
    }

    @pytest.mark.parametrize("case", sorted(BAD_INPUTS))
    def test_bad_input_raises(self, case):
        pred, target = random_pair(8)
        arguments = dict(pred=pred, target=target, gamma=0.1)
        change, name = self.BAD_INPUTS[case]
        arguments.update(change)
        with pytest.raises(ValueError, match=name):
            losses.soft_dtw_loss(**arguments)
