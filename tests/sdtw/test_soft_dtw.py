"""soft_dtw and expected_alignment against brute-force enumeration of all alignments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import sdtw
from tests.sdtw import brute_force

SHAPES = [(1, 1), (1, 5), (5, 1), (3, 4), (4, 3), (6, 6), (2, 6)]


def random_costs(shape, scale=1.0, seed=0):
    return np.random.default_rng(seed).random(shape) * scale


@pytest.mark.usefixtures("x64")
class TestAgainstBruteForce:
    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("gamma", [0.01, 0.3, 1.0, 10.0])
    def test_value_and_gradient(self, shape, gamma):
        for seed, scale in enumerate([0.1, 1.0, 50.0]):
            C = random_costs(shape, scale, seed)
            value, grad = brute_force.soft_dtw(C, gamma)
            np.testing.assert_allclose(sdtw.soft_dtw(C, gamma), value, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(
                sdtw.expected_alignment(C, gamma), grad, rtol=1e-9, atol=1e-10
            )

    @pytest.mark.parametrize("weights", [(1.0, 1.0, 2.0), (2.0, 0.5, 1.5), (0.3, 3.0, 1.0)])
    @pytest.mark.parametrize("shape", [(4, 5), (5, 3), (1, 4)])
    def test_weights(self, weights, shape):
        C = random_costs(shape, 2.0, 1)
        value, grad = brute_force.soft_dtw(C, 0.5, weights=weights)
        np.testing.assert_allclose(sdtw.soft_dtw(C, 0.5, weights=weights), value, rtol=1e-10)
        np.testing.assert_allclose(
            sdtw.expected_alignment(C, 0.5, weights=weights), grad, rtol=1e-9, atol=1e-12
        )

    @pytest.mark.parametrize("lengths", [(1, 1), (3, 2), (4, 6), (2, 5)])
    def test_lengths_use_the_top_left_block(self, lengths):
        C = random_costs((4, 6), 3.0, 2)
        n, m = lengths
        value, grad = brute_force.soft_dtw(C[:n, :m], 0.7)
        np.testing.assert_allclose(sdtw.soft_dtw(C, 0.7, lengths=lengths), value, rtol=1e-10)
        E = np.asarray(sdtw.expected_alignment(C, 0.7, lengths=lengths))
        np.testing.assert_allclose(E[:n, :m], grad, rtol=1e-9, atol=1e-12)
        assert np.all(E[n:, :] == 0) and np.all(E[:, m:] == 0)

    @pytest.mark.parametrize("band", [0, 1, 2])
    def test_band(self, band):
        C = random_costs((5, 5), 2.0, 3)
        rows, cols = np.indices(C.shape)
        value, grad = brute_force.soft_dtw(C, 0.4, allowed=np.abs(rows - cols) <= band)
        np.testing.assert_allclose(sdtw.soft_dtw(C, 0.4, band=band), value, rtol=1e-10)
        np.testing.assert_allclose(
            sdtw.expected_alignment(C, 0.4, band=band), grad, rtol=1e-9, atol=1e-12
        )

    def test_mask_and_infinite_costs_are_the_same(self):
        C = random_costs((5, 6), 2.0, 4)
        allowed = np.random.default_rng(5).random(C.shape) > 0.3
        allowed[0, 0] = allowed[-1, -1] = True
        value, grad = brute_force.soft_dtw(C, 0.4, allowed=allowed)
        np.testing.assert_allclose(sdtw.soft_dtw(C, 0.4, mask=allowed), value, rtol=1e-10)
        E = sdtw.expected_alignment(C, 0.4, mask=allowed)
        np.testing.assert_allclose(E, grad, rtol=1e-9, atol=1e-12)
        C_inf = np.where(allowed, C, np.inf)
        np.testing.assert_allclose(sdtw.soft_dtw(C_inf, 0.4), value, rtol=1e-10)
        E_inf = sdtw.expected_alignment(C_inf, 0.4)
        assert np.all(np.isfinite(E_inf))
        np.testing.assert_allclose(E_inf, grad, rtol=1e-9, atol=1e-12)

    @pytest.mark.parametrize("shape", [(1, 4), (3, 5), (2, 2), (4, 3)])
    @pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0), (1.0, 2.0, 2.0)])
    def test_subsequence(self, shape, weights):
        C = random_costs(shape, 3.0, 6)
        value, grad = brute_force.soft_dtw(C, 0.6, subsequence=True, weights=weights)
        got = sdtw.soft_dtw(C, 0.6, subsequence=True, weights=weights)
        np.testing.assert_allclose(got, value, rtol=1e-10)
        E = sdtw.expected_alignment(C, 0.6, subsequence=True, weights=weights)
        np.testing.assert_allclose(E, grad, rtol=1e-9, atol=1e-12)

    def test_subsequence_with_lengths(self):
        C = random_costs((4, 7), 3.0, 7)
        value, grad = brute_force.soft_dtw(C[:3, :5], 0.6, subsequence=True)
        got = sdtw.soft_dtw(C, 0.6, subsequence=True, lengths=(3, 5))
        np.testing.assert_allclose(got, value, rtol=1e-10)
        E = np.asarray(sdtw.expected_alignment(C, 0.6, subsequence=True, lengths=(3, 5)))
        np.testing.assert_allclose(E[:3, :5], grad, rtol=1e-9, atol=1e-12)
        assert np.all(E[3:] == 0) and np.all(E[:, 5:] == 0)

    def test_negative_costs(self):
        C = random_costs((4, 5), 2.0, 8) - 1.0
        value, grad = brute_force.soft_dtw(C, 0.5)
        np.testing.assert_allclose(sdtw.soft_dtw(C, 0.5), value, rtol=1e-10)
        np.testing.assert_allclose(sdtw.expected_alignment(C, 0.5), grad, rtol=1e-9)


@pytest.mark.usefixtures("x64")
class TestTransformations:
    def test_vmap_equals_loop_with_per_example_lengths(self):
        Cs = random_costs((5, 6, 7), 1.0, 9)
        lengths = np.array([[6, 7], [3, 2], [1, 7], [6, 1], [4, 4]], np.int32)
        batched = jax.vmap(lambda c, l: sdtw.soft_dtw(c, 0.3, lengths=(l[0], l[1])))
        looped = [sdtw.soft_dtw(c, 0.3, lengths=tuple(l)) for c, l in zip(Cs, lengths)]
        np.testing.assert_allclose(batched(Cs, lengths), looped, rtol=1e-12)
        grads = jax.vmap(jax.grad(lambda c, l: sdtw.soft_dtw(c, 0.3, lengths=(l[0], l[1]))))
        looped_grads = [sdtw.expected_alignment(c, 0.3, lengths=tuple(l)) for c, l in zip(Cs, lengths)]
        np.testing.assert_allclose(grads(Cs, lengths), looped_grads, rtol=1e-10, atol=1e-14)

    def test_jit_and_traced_gamma(self):
        C = random_costs((5, 4), 1.0, 10)
        f = jax.jit(lambda c, g: sdtw.soft_dtw(c, g))
        np.testing.assert_allclose(f(C, 0.2), sdtw.soft_dtw(C, 0.2), rtol=1e-12)
        gammas = jnp.array([0.1, 1.0, 5.0])
        np.testing.assert_allclose(
            jax.vmap(f, in_axes=(None, 0))(C, gammas),
            [brute_force.soft_dtw(C, float(g))[0] for g in gammas],
            rtol=1e-10,
        )

    @pytest.mark.parametrize("options", [{}, {"weights": (1.0, 1.0, 2.0)}, {"subsequence": True}, {"band": 1}])
    def test_check_grads(self, options):
        C = random_costs((5, 5), 1.0, 11)
        check_grads(lambda c: sdtw.soft_dtw(c, 0.5, **options), (C,), order=1, modes=["rev"])

    def test_central_difference_directional_derivative(self):
        rng = np.random.default_rng(12)
        C, direction = rng.random((7, 9)), rng.standard_normal((7, 9))
        eps = 1e-6
        numeric = (sdtw.soft_dtw(C + eps * direction, 0.1) - sdtw.soft_dtw(C - eps * direction, 0.1)) / (2 * eps)
        analytic = jnp.sum(sdtw.expected_alignment(C, 0.1) * direction)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6)

    def test_gamma_gradient(self):
        C = random_costs((4, 6), 2.0, 13)
        grad = jax.grad(sdtw.soft_dtw, argnums=1)(C, 0.4)
        eps = 1e-6
        numeric = (brute_force.soft_dtw(C, 0.4 + eps)[0] - brute_force.soft_dtw(C, 0.4 - eps)[0]) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6)

    def test_second_order_through_the_backward_sweep(self):
        C = random_costs((4, 4), 1.0, 14)
        direction = random_costs((4, 4), 1.0, 15)
        hvp = jax.grad(lambda c: jnp.sum(sdtw.expected_alignment(c, 0.5) * direction))(C)
        eps = 1e-5
        numeric = (
            sdtw.expected_alignment(C + eps * direction, 0.5)
            - sdtw.expected_alignment(C - eps * direction, 0.5)
        ) / (2 * eps)
        # The Hessian is symmetric: H d computed both ways.
        np.testing.assert_allclose(hvp, numeric, rtol=1e-5, atol=1e-8)

    def test_small_gamma_approaches_dtw(self):
        C = random_costs((6, 5), 1.0, 16)
        hard = sdtw.dtw(C)
        num_paths = len(brute_force.alignments(6, 5))
        for gamma in [1e-1, 1e-2, 1e-3]:
            gap = float(hard - sdtw.soft_dtw(C, gamma))
            assert 0 <= gap <= gamma * np.log(num_paths) + 1e-12


class TestNumerics:
    @pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
    def test_dtype_is_kept(self, dtype, x64):
        C = jnp.asarray(random_costs((4, 5)), dtype)
        assert sdtw.soft_dtw(C, 0.1).dtype == dtype
        assert sdtw.expected_alignment(C, 0.1).dtype == dtype

    def test_large_costs_and_tiny_gamma_in_float32(self):
        C = jnp.asarray(random_costs((200, 150), 1e4, 17), jnp.float32)
        value, grad = jax.value_and_grad(sdtw.soft_dtw)(C, 1e-3)
        assert np.isfinite(value)
        assert np.all(np.isfinite(grad))
        # The expected alignment of a (near) unique path: entries in [0, 1], mass along a path.
        assert np.all(grad >= 0) and np.all(grad <= 1 + 1e-3)
        np.testing.assert_allclose(grad[0, 0], 1.0, rtol=1e-4)
        np.testing.assert_allclose(value, sdtw.dtw(C), rtol=1e-5)

    def test_float32_agrees_with_float64(self, x64):
        C = random_costs((30, 40), 5.0, 18)
        v64, g64 = jax.value_and_grad(sdtw.soft_dtw)(jnp.asarray(C), 0.1)
        v32, g32 = jax.value_and_grad(sdtw.soft_dtw)(jnp.asarray(C, jnp.float32), 0.1)
        np.testing.assert_allclose(v32, v64, rtol=1e-5)
        np.testing.assert_allclose(g32, g64, atol=1e-4)

    def test_no_admissible_alignment_gives_inf_and_zero_gradient(self):
        C = jnp.ones((3, 3))
        mask = jnp.ones((3, 3), bool).at[1, :].set(False)
        value, grad = jax.value_and_grad(lambda c: sdtw.soft_dtw(c, 0.1, mask=mask))(C)
        assert value == jnp.inf
        assert np.all(grad == 0)

    def test_checked_raises_on_nan(self):
        C = jnp.ones((3, 4)).at[1, 2].set(jnp.nan)
        assert jnp.isnan(sdtw.soft_dtw(C, 0.1))
        with pytest.raises(Exception, match="nan"):
            sdtw.checked(sdtw.soft_dtw)(C, 0.1)
        sdtw.checked(sdtw.soft_dtw)(jnp.ones((3, 4)), 0.1)  # finite: no error

    def test_integer_costs_are_promoted(self):
        value = sdtw.soft_dtw(np.arange(12).reshape(3, 4), 1.0)
        assert jnp.issubdtype(value.dtype, jnp.floating)


class TestBadInput:
    @pytest.mark.parametrize(
        "call, message",
        [
            (lambda: sdtw.soft_dtw(jnp.ones(3), 0.1), "`C` must be a cost matrix"),
            (lambda: sdtw.soft_dtw(jnp.ones((2, 3, 4)), 0.1), "`C` must be a cost matrix"),
            (lambda: sdtw.soft_dtw(jnp.ones((0, 3)), 0.1), "`C` must be non-empty"),
            (lambda: sdtw.soft_dtw(jnp.ones((3, 3)), 0.0), "`gamma` must be > 0"),
            (lambda: sdtw.soft_dtw(jnp.ones((3, 3)), -1.0), "`gamma` must be > 0"),
            (lambda: sdtw.soft_dtw(jnp.ones((3, 3)), jnp.inf), "`gamma` must be finite"),
            (lambda: sdtw.soft_dtw(jnp.ones((3, 3)), 0.1, lengths=(2.5, 3)), "`lengths` must be two ints"),
            (lambda: sdtw.soft_dtw(jnp.ones((3, 3)), 0.1, lengths=jnp.array([2.0, 3.0])), "`lengths` must be two ints"),
            (lambda: sdtw.soft_dtw(jnp.ones((3, 3)), 0.1, lengths=(4, 1)), "`lengths`"),
            (lambda: sdtw.soft_dtw(jnp.ones((3, 3)), 0.1, lengths=(0, 2)), "`lengths`"),
            (lambda: sdtw.soft_dtw(jnp.ones((3, 6)), 0.1, band=2), "`band` = 2 admits no alignment"),
            (lambda: sdtw.soft_dtw(jnp.ones((5, 5)), 0.1, band=1, lengths=(5, 2)), "`band` = 1 admits"),
            (lambda: sdtw.soft_dtw(jnp.ones((3, 3)), 0.1, band=-1), "`band` must be"),
            (lambda: sdtw.soft_dtw(jnp.ones((3, 3)), 0.1, mask=jnp.ones((3, 2), bool)), "`mask` must have"),
            (lambda: sdtw.soft_dtw(jnp.ones((3, 3)), 0.1, mask=jnp.ones((3, 3))), "`mask` must be boolean"),
            (lambda: sdtw.soft_dtw(jnp.ones((3, 3)), 0.1, weights=(1.0, 0.0, 1.0)), "`weights`"),
            (lambda: sdtw.soft_dtw(jnp.ones((3, 3)), 0.1, weights=(1.0, 1.0)), "`weights`"),
            (lambda: sdtw.soft_dtw(jnp.ones((3, 3)), 0.1, subsequence=True, band=1), "`band` is not defined"),
        ],
    )
    def test_errors_name_the_argument(self, call, message):
        with pytest.raises(ValueError, match=message):
            call()


class TestMemory:
    """XLA's buffer assignment of the compiled value+grad: exact, deterministic, no timing."""

    @staticmethod
    def tables(fn, *args) -> float:
        """Temporaries + outputs of the compiled ``fn``, in units of N * M float32 values."""
        analysis = jax.jit(fn).lower(*args).compile().memory_analysis()
        n, m = args[0].shape[0], args[-1].shape[0] if len(args) > 1 else args[0].shape[1]
        return (analysis.temp_size_in_bytes + analysis.output_size_in_bytes) / (4 * n * m)

    def test_value_and_grad_from_features_holds_five_tables(self):
        # The cost matrix, its packed copy, two recorded step probabilities and the gradient: the
        # squared Euclidean cost keeps no (N, M) mask for its backward pass.
        x, y = jnp.zeros((512, 12)), jnp.zeros((384, 12))
        loss = lambda x, y: sdtw.soft_dtw(sdtw.costs.squared_euclidean(x, y), 0.1)  # noqa: E731
        assert self.tables(jax.value_and_grad(loss), x, y) < 5.1

    def test_value_and_grad_from_cost_holds_five_tables(self):
        cost = jnp.zeros((512, 384))
        assert self.tables(jax.value_and_grad(lambda c: sdtw.soft_dtw(c, 0.1)), cost) < 5.1
