"""Agreement with OTT-JAX and tslearn where they overlap."""

import jax
import numpy as np
import pytest

import sdtw


@pytest.fixture
def sequences():
    rng = np.random.default_rng(0)
    return rng.standard_normal((12, 3)), rng.standard_normal((17, 3))


@pytest.mark.usefixtures("x64")
class TestOTT:
    @pytest.mark.parametrize("gamma", [0.1, 1.0])
    def test_soft_dtw_value_and_gradient(self, sequences, gamma):
        costs = pytest.importorskip("ott.geometry.costs")
        x, y = sequences
        ott_cost = costs.SoftDTW(gamma)
        ours = lambda a: sdtw.soft_dtw(sdtw.costs.squared_euclidean(a, y), gamma)  # noqa: E731
        np.testing.assert_allclose(ours(x), ott_cost(x, y), rtol=1e-10)
        np.testing.assert_allclose(jax.grad(ours)(x), jax.grad(lambda a: ott_cost(a, y))(x), rtol=1e-8)

    def test_debiased_equals_divergence(self, sequences):
        costs = pytest.importorskip("ott.geometry.costs")
        x, y = sequences
        np.testing.assert_allclose(
            sdtw.divergence(x, y, 0.5), costs.SoftDTW(0.5, debiased=True)(x, y), rtol=1e-10
        )


@pytest.mark.usefixtures("x64")
class TestTslearn:
    @pytest.mark.parametrize("gamma", [0.01, 0.5, 2.0])
    def test_soft_dtw(self, sequences, gamma):
        metrics = pytest.importorskip("tslearn.metrics")
        x, y = sequences
        C = sdtw.costs.squared_euclidean(x, y)
        np.testing.assert_allclose(sdtw.soft_dtw(C, gamma), metrics.soft_dtw(x, y, gamma=gamma), rtol=1e-10)

    def test_soft_dtw_alignment(self, sequences):
        metrics = pytest.importorskip("tslearn.metrics")
        x, y = sequences
        E, _ = metrics.soft_dtw_alignment(x, y, gamma=0.3)
        C = sdtw.costs.squared_euclidean(x, y)
        np.testing.assert_allclose(sdtw.expected_alignment(C, 0.3), E, rtol=1e-8, atol=1e-12)

    def test_dtw_and_path(self, sequences):
        metrics = pytest.importorskip("tslearn.metrics")
        x, y = sequences
        C = sdtw.costs.squared_euclidean(x, y)
        path, distance = metrics.dtw_path(x, y)
        np.testing.assert_allclose(np.sqrt(sdtw.dtw(C)), distance, rtol=1e-10)
        np.testing.assert_allclose(np.sqrt(sdtw.dtw(C, band=5)), metrics.dtw(x, y, global_constraint="sakoe_chiba", sakoe_chiba_radius=5), rtol=1e-10)
        np.testing.assert_allclose(
            np.sum(np.asarray(C)[tuple(np.array(path).T)]), sdtw.dtw(C), rtol=1e-10
        )
