"""Hard DTW, optimal paths and subsequence DTW against brute force."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sdtw
from tests.sdtw import brute_force


def random_costs(shape, seed=0):
    return np.random.default_rng(seed).random(shape)


def assert_valid_path(path, start, end):
    path = np.asarray(path)
    assert tuple(path[0]) == start and tuple(path[-1]) == end
    steps = np.diff(path, axis=0)
    assert all(tuple(s) in [(1, 0), (0, 1), (1, 1)] for s in steps)


def path_cost(C, path, weights=(1.0, 1.0, 1.0)):
    total = C[tuple(path[0])]
    for (i0, j0), (i, j) in zip(path[:-1], path[1:]):
        step = {(1, 0): 0, (0, 1): 1, (1, 1): 2}[(i - i0, j - j0)]
        total += weights[step] * C[i, j]
    return total


@pytest.mark.usefixtures("x64")
class TestDTW:
    @pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (4, 6), (6, 4), (6, 6)])
    @pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0), (1.0, 1.0, 2.0)])
    def test_value_and_path_are_optimal(self, shape, weights):
        for seed in range(3):
            C = random_costs(shape, seed)
            best, _ = brute_force.soft_dtw(C, 0, weights=weights)
            np.testing.assert_allclose(sdtw.dtw(C, weights=weights), best, rtol=1e-12)
            path = sdtw.dtw_path(C, weights=weights)
            assert_valid_path(path, (0, 0), (shape[0] - 1, shape[1] - 1))
            np.testing.assert_allclose(path_cost(C, path, weights), best, rtol=1e-12)

    def test_alignment_matrix_is_the_path_and_the_gradient(self):
        C = random_costs((7, 9), 1)
        A = np.asarray(sdtw.alignment_matrix(C))
        path = sdtw.dtw_path(C)
        expected = np.zeros_like(A)
        expected[tuple(path.T)] = 1
        np.testing.assert_array_equal(A, expected)
        # A subgradient: the directional derivative of dtw along A's support.
        np.testing.assert_allclose(jnp.sum(A * C), sdtw.dtw(C), rtol=1e-12)

    def test_band_mask_and_lengths(self):
        C = random_costs((6, 6), 2)
        rows, cols = np.indices(C.shape)
        best, _ = brute_force.soft_dtw(C, 0, allowed=np.abs(rows - cols) <= 1)
        np.testing.assert_allclose(sdtw.dtw(C, band=1), best, rtol=1e-12)
        path = sdtw.dtw_path(C, band=1)
        assert np.all(np.abs(path[:, 0] - path[:, 1]) <= 1)
        best, _ = brute_force.soft_dtw(C[:4, :3], 0)
        np.testing.assert_allclose(sdtw.dtw(C, lengths=(4, 3)), best, rtol=1e-12)
        assert_valid_path(sdtw.dtw_path(C, lengths=(4, 3)), (0, 0), (3, 2))

    def test_jit_and_vmap(self):
        Cs = random_costs((4, 5, 6), 3)
        batched = jax.jit(jax.vmap(sdtw.dtw))(Cs)
        np.testing.assert_allclose(batched, [brute_force.soft_dtw(c, 0)[0] for c in Cs], rtol=1e-12)
        matrices = jax.jit(jax.vmap(sdtw.alignment_matrix))(Cs)
        assert matrices.shape == Cs.shape

    def test_accumulated_cost_table(self):
        C = random_costs((4, 5), 4)
        R = np.asarray(sdtw.accumulated_cost(C))
        for i in range(4):
            for j in range(5):
                np.testing.assert_allclose(R[i, j], brute_force.soft_dtw(C[: i + 1, : j + 1], 0)[0])
        R_soft = np.asarray(sdtw.accumulated_cost(C, 0.5))
        np.testing.assert_allclose(R_soft[-1, -1], sdtw.soft_dtw(C, 0.5), rtol=1e-12)


@pytest.mark.usefixtures("x64")
class TestSubsequenceDTW:
    @pytest.mark.parametrize("shape", [(1, 5), (3, 8), (4, 4), (5, 3)])
    def test_matching_function_and_starts(self, shape):
        C = random_costs(shape, 5)
        n, m = shape
        delta, starts = sdtw.subsequence_dtw(C)
        for end in range(m):
            allowed = np.ones(shape, bool)
            allowed[:, end + 1 :] = False
            best, _ = brute_force.soft_dtw(C, 0, subsequence=True, allowed=allowed)
            # Brute force over alignments that end in column `end` exactly.
            ends_here = [
                p for p in brute_force.alignments(n, m, subsequence=True, allowed=allowed) if p[-1][1] == end
            ]
            costs = [brute_force.path_cost_and_grad(C, p, (1.0, 1.0, 1.0))[0] for p in ends_here]
            np.testing.assert_allclose(delta[end], min(costs), rtol=1e-12)
            # The reported start column gives an alignment of that cost.
            segment = C[:, int(starts[end]) : end + 1]
            np.testing.assert_allclose(brute_force.soft_dtw(segment, 0)[0], delta[end], rtol=1e-12)
        np.testing.assert_allclose(jnp.min(delta), sdtw.dtw(C, subsequence=True), rtol=1e-12)

    def test_finds_a_planted_query(self):
        rng = np.random.default_rng(6)
        database = rng.standard_normal((60, 4))
        query = database[20:35] + 0.01 * rng.standard_normal((15, 4))
        C = sdtw.costs.squared_euclidean(query, database)
        delta, starts = sdtw.subsequence_dtw(C)
        end = int(jnp.argmin(delta))
        assert (int(starts[end]), end) == (20, 34)
        path = sdtw.dtw_path(C, subsequence=True)
        assert tuple(path[0]) == (0, 20) and tuple(path[-1]) == (14, 34)

    def test_lengths_mask_out_the_tail(self):
        C = random_costs((3, 8), 7)
        delta, _ = sdtw.subsequence_dtw(C, lengths=(3, 5))
        assert np.all(np.isinf(delta[5:]))
        full, _ = sdtw.subsequence_dtw(C[:, :5])
        np.testing.assert_allclose(delta[:5], full, rtol=1e-12)


class TestContracts:
    """Only +inf (a cost, a masked cell, or a sum beyond the float range) means "no alignment"; NaN stays NaN."""

    @pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
    def test_large_finite_costs_are_admissible(self, dtype, x64):
        C = jnp.full((4, 5), 1e29, dtype).at[2, 3].set(3e29)
        value, grad = jax.value_and_grad(sdtw.soft_dtw)(C, 1.0)
        np.testing.assert_allclose(value, 5e29, rtol=1e-5)  # 5 cells on the cheapest paths
        np.testing.assert_allclose(sdtw.dtw(C), 5e29, rtol=1e-6)
        assert np.isfinite(grad).all() and grad.sum() > 0
        assert len(sdtw.dtw_path(C)) == 5

    def test_sums_beyond_float32_are_inf_not_nan(self):
        C = jnp.full((6, 6), 1e38, jnp.float32)
        value, grad = jax.value_and_grad(sdtw.soft_dtw)(C, 0.1)
        assert value == jnp.inf and np.all(grad == 0)
        assert sdtw.dtw(C) == jnp.inf

    def test_nan_cost_gives_nan_in_subsequence_dtw(self):
        C = jnp.ones((3, 6)).at[1, 2].set(jnp.nan)
        delta, _ = sdtw.subsequence_dtw(C)
        assert np.isnan(delta[2:]).all() and np.isfinite(delta[:2]).all()

    def test_dtw_path_refuses_nan_and_no_alignment(self):
        with pytest.raises(ValueError, match="`C` holds NaN"):
            sdtw.dtw_path(jnp.ones((3, 4)).at[1, 2].set(jnp.nan))
        with pytest.raises(ValueError, match="no admissible alignment"):
            sdtw.dtw_path(jnp.ones((3, 4)), mask=jnp.ones((3, 4), bool).at[1, :].set(False))
