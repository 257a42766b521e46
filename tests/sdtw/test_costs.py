"""Pairwise cost matrices against direct formulas."""

import jax
import numpy as np
import pytest

import sdtw

rng = np.random.default_rng(0)
X, Y = rng.standard_normal((5, 4)), rng.standard_normal((6, 4))
P, T = rng.random((5, 3)), (rng.random((6, 3)) > 0.5).astype(float)


@pytest.mark.usefixtures("x64")
class TestCosts:
    def test_squared_euclidean(self):
        expected = ((X[:, None] - Y[None]) ** 2).sum(-1)
        np.testing.assert_allclose(sdtw.costs.squared_euclidean(X, Y), expected, rtol=1e-12)

    def test_cosine(self):
        unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
        np.testing.assert_allclose(sdtw.costs.cosine(X, Y), 1 - unit(X) @ unit(Y).T, rtol=1e-12)
        silent = np.zeros((2, 4))
        np.testing.assert_allclose(sdtw.costs.cosine(silent, Y), 1.0)

    def test_negative_dot(self):
        np.testing.assert_allclose(sdtw.costs.negative_dot(X, Y), -X @ Y.T, rtol=1e-12)

    def test_binary_cross_entropy_and_logits_form(self):
        expected = -(T[None] * np.log(P[:, None]) + (1 - T[None]) * np.log(1 - P[:, None])).sum(-1)
        np.testing.assert_allclose(sdtw.costs.binary_cross_entropy(P, T), expected, rtol=1e-10)
        logits = np.log(P / (1 - P))
        np.testing.assert_allclose(
            sdtw.costs.binary_cross_entropy_with_logits(logits, T), expected, rtol=1e-9
        )

    def test_differentiable(self):
        g = jax.grad(lambda x: sdtw.soft_dtw(sdtw.costs.cosine(x, Y), 0.1))(X)
        assert g.shape == X.shape and np.all(np.isfinite(g))

    def test_bad_shapes(self):
        with pytest.raises(ValueError, match="same feature size"):
            sdtw.costs.squared_euclidean(X, Y[:, :2])
        with pytest.raises(ValueError, match=r"shape \(N, D\)"):
            sdtw.costs.cosine(X[0], Y)


def test_squared_euclidean_gradient_is_that_of_the_exact_distance():
    # The clip at 0 (rounding) does not change the derivative: 2 (x_i - y_j) per cell,
    # also where a frame equals another and the computed distance is clipped.
    x, y = np.asarray(X, np.float32), np.asarray(np.vstack([Y, X[:2]]), np.float32)
    weights = rng.random((len(x), len(y))).astype(np.float32)
    grad = jax.grad(lambda x: (sdtw.costs.squared_euclidean(x, y) * weights).sum())(x)
    expected = 2 * (weights.sum(1)[:, None] * x - weights @ y)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-5)
