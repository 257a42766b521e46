"""Soft-DTW divergence and sharp soft-DTW (Blondel, Mensch & Vert 2021)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sdtw
from tests.sdtw import brute_force


@pytest.mark.usefixtures("x64")
class TestDivergence:
    def test_definition_and_zero_on_the_diagonal(self):
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((5, 3)), rng.standard_normal((7, 3))
        cost = sdtw.costs.squared_euclidean
        expected = sdtw.soft_dtw(cost(x, y), 1.0) - 0.5 * (
            sdtw.soft_dtw(cost(x, x), 1.0) + sdtw.soft_dtw(cost(y, y), 1.0)
        )
        np.testing.assert_allclose(sdtw.divergence(x, y, 1.0), expected, rtol=1e-12)
        np.testing.assert_allclose(sdtw.divergence(x, x, 1.0), 0.0, atol=1e-12)
        assert sdtw.divergence(x, y, 1.0) > 0

    def test_lengths_and_gradient(self):
        rng = np.random.default_rng(1)
        x, y = rng.standard_normal((6, 2)), rng.standard_normal((8, 2))
        padded = sdtw.divergence(x, y, 0.5, lengths=(4, 5))
        np.testing.assert_allclose(padded, sdtw.divergence(x[:4], y[:5], 0.5), rtol=1e-12)
        gx = jax.grad(lambda a: sdtw.divergence(a, y, 0.5, lengths=(4, 5)))(x)
        assert np.all(gx[4:] == 0) and np.all(np.isfinite(gx))


@pytest.mark.usefixtures("x64")
class TestSharpSoftDTW:
    def test_is_the_cost_of_the_expected_alignment(self):
        C = np.random.default_rng(2).random((4, 5))
        _, E = brute_force.soft_dtw(C, 0.5)
        np.testing.assert_allclose(sdtw.sharp_soft_dtw(C, 0.5), np.sum(E * C), rtol=1e-10)

    def test_approaches_dtw_from_above_and_has_finite_gradient(self):
        C = np.random.default_rng(3).random((6, 6))
        hard = float(sdtw.dtw(C))
        values = [float(sdtw.sharp_soft_dtw(C, g)) for g in (1.0, 0.1, 0.001)]
        assert all(v >= hard - 1e-9 for v in values)
        np.testing.assert_allclose(values[-1], hard, rtol=1e-6)
        grad = jax.grad(sdtw.sharp_soft_dtw)(jnp.asarray(C), 0.5)
        eps = 1e-6
        d = np.random.default_rng(4).standard_normal(C.shape)
        numeric = (sdtw.sharp_soft_dtw(C + eps * d, 0.5) - sdtw.sharp_soft_dtw(C - eps * d, 0.5)) / (2 * eps)
        np.testing.assert_allclose(jnp.sum(grad * d), numeric, rtol=1e-5)
