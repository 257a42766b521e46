"""The fused Pallas kernel (interpret mode off GPUs) against brute force and the XLA wavefront."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sdtw
from sdtw import _api
from tests.sdtw import brute_force

pytestmark = pytest.mark.skipif(not sdtw._pallas.available(), reason="this JAX has no Pallas Triton back end")

SIZES = [(n, m) for n in (1, 3, 5, 8, 13) for m in (1, 4, 7, 16)]


def random_costs(shape, seed=0, scale=3.0, shift=-0.5):
    """Costs in [shift, shift + scale): some negative, as the recursion allows."""
    return np.random.default_rng(seed).random(shape) * scale + shift


def num_alignments(n, m):
    """Delannoy number D(n-1, m-1): how many alignments brute force would enumerate."""
    return sum(math.comb(n - 1, k) * math.comb(m - 1, k) * 2**k for k in range(min(n, m)))


def value_and_grad(C, gamma=0.5, impl="pallas", **options):
    return jax.value_and_grad(sdtw.soft_dtw)(C, gamma, impl=impl, **options)


def assert_matches_brute_force(got, C, gamma, rtol=1e-10, atol=1e-10, **options):
    value, grad = brute_force.soft_dtw(C, gamma, **options)
    np.testing.assert_allclose(got[0], value, rtol=rtol, atol=atol)
    np.testing.assert_allclose(got[1], grad, rtol=rtol, atol=atol)


@pytest.mark.usefixtures("x64")
class TestAgainstBruteForce:
    @pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (3, 4), (8, 4), (6, 5)])
    def test_value_and_gradient(self, shape):
        C = random_costs(shape, seed=shape[0] * 17 + shape[1])
        assert_matches_brute_force(value_and_grad(C), C, 0.5)
        np.testing.assert_allclose(sdtw.soft_dtw(C, 0.5, impl="pallas"), brute_force.soft_dtw(C, 0.5)[0], rtol=1e-10)

    @pytest.mark.parametrize("padded", [(13, 16), (16, 13)])
    def test_every_size_in_one_batch_with_lengths(self, padded):
        sizes = SIZES if padded == (13, 16) else [(m, n) for n, m in SIZES]
        Cs = random_costs((len(sizes), *padded), seed=1)
        lengths = np.array(sizes, np.int32)

        def batched(impl):
            fn = jax.value_and_grad(lambda c, l: sdtw.soft_dtw(c, 0.5, lengths=(l[0], l[1]), impl=impl))
            return jax.jit(jax.vmap(fn))(Cs, lengths)

        values, grads = batched("pallas")
        xla_values, xla_grads = batched("xla")
        np.testing.assert_allclose(values, xla_values, rtol=1e-12)
        np.testing.assert_allclose(grads, xla_grads, rtol=1e-12, atol=1e-14)
        checked = 0
        for C, value, grad, (n, m) in zip(Cs, values, grads, sizes):
            assert np.all(grad[n:] == 0) and np.all(grad[:, m:] == 0)
            if num_alignments(n, m) <= 3000:
                assert_matches_brute_force((value, grad[:n, :m]), C[:n, :m], 0.5)
                checked += 1
        assert checked >= 12

    @pytest.mark.parametrize("weights, shape", [((1.0, 1.0, 2.0), (4, 5)), ((2.0, 0.5, 1.5), (5, 3))])
    def test_weights(self, weights, shape):
        C = random_costs(shape, seed=2)
        assert_matches_brute_force(value_and_grad(C, weights=weights), C, 0.5, weights=weights)

    @pytest.mark.parametrize("weights, shape", [((1.0, 1.0, 1.0), (3, 5)), ((1.0, 2.0, 2.0), (4, 3))])
    def test_subsequence(self, weights, shape):
        C = random_costs(shape, seed=3)
        got = value_and_grad(C, weights=weights, subsequence=True)
        assert_matches_brute_force(got, C, 0.5, weights=weights, subsequence=True)

    def test_subsequence_with_lengths(self):
        C = random_costs((4, 7), seed=4)
        value, grad = value_and_grad(C, subsequence=True, lengths=(3, 5))
        assert_matches_brute_force((value, grad[:3, :5]), C[:3, :5], 0.5, subsequence=True)
        assert np.all(grad[3:] == 0) and np.all(grad[:, 5:] == 0)

    def test_band_mask_and_unreachable_end_in_one_batch(self):
        rows, cols = np.indices((5, 6))
        random_mask = np.random.default_rng(5).random((5, 6)) > 0.3
        random_mask[0, 0] = random_mask[-1, -1] = True
        no_path = np.ones((5, 6), bool)
        no_path[2] = False
        masks = np.stack([np.abs(rows - cols) <= 1, np.abs(rows - cols) <= 3, random_mask, no_path])
        C = random_costs((5, 6), seed=6)
        values, grads = jax.vmap(lambda mask: value_and_grad(C, mask=mask))(masks)
        for mask, value, grad in zip(masks[:3], values, grads):
            assert_matches_brute_force((value, grad), C, 0.5, allowed=mask)
        assert values[3] == np.inf and np.all(grads[3] == 0)
        assert_matches_brute_force(value_and_grad(C, band=1), C, 0.5, allowed=masks[0])

    def test_infinite_costs_are_inadmissible_cells(self):
        C = random_costs((5, 6), seed=7)
        allowed = np.random.default_rng(8).random(C.shape) > 0.3
        allowed[0, 0] = allowed[-1, -1] = True
        value, grad = value_and_grad(np.where(allowed, C, np.inf))
        assert np.all(np.isfinite(grad))
        assert_matches_brute_force((value, grad), C, 0.5, allowed=allowed)

    @pytest.mark.parametrize("shape, weights", [((4, 6), (1.0, 1.0, 1.0)), ((6, 4), (1.0, 1.0, 2.0))])
    def test_hard_dtw(self, shape, weights):
        C = random_costs(shape, seed=9)
        value, A = jax.value_and_grad(sdtw.dtw)(C, weights=weights, impl="pallas")
        assert_matches_brute_force((value, A), C, 0, weights=weights)
        np.testing.assert_array_equal(
            sdtw.dtw_path(C, weights=weights, impl="pallas"), sdtw.dtw_path(C, weights=weights, impl="xla")
        )

    def test_hard_subsequence(self):
        C = random_costs((3, 6), seed=10)
        got = jax.value_and_grad(sdtw.dtw)(C, subsequence=True, impl="pallas")
        assert_matches_brute_force(got, C, 0, subsequence=True)


@pytest.mark.usefixtures("x64")
class TestTransformations:
    def test_jit_and_vmap_over_gamma(self):
        C = random_costs((5, 4), seed=11)
        gammas = jnp.array([0.05, 0.5, 5.0])
        values = jax.jit(jax.vmap(lambda g: sdtw.soft_dtw(C, g, impl="pallas")))(gammas)
        np.testing.assert_allclose(values, [brute_force.soft_dtw(C, float(g))[0] for g in gammas], rtol=1e-10)

    def test_gamma_gradient(self):
        C = random_costs((4, 6), seed=12)
        grad = jax.grad(sdtw.soft_dtw, argnums=1)(C, 0.4, impl="pallas")
        eps = 1e-6
        numeric = (brute_force.soft_dtw(C, 0.4 + eps)[0] - brute_force.soft_dtw(C, 0.4 - eps)[0]) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6)

    def test_nested_vmap(self):
        Cs = random_costs((2, 3, 4, 5), seed=13)
        grads = jax.vmap(jax.vmap(jax.grad(lambda c: sdtw.soft_dtw(c, 0.5, impl="pallas"))))(Cs)
        for index in np.ndindex(2, 3):
            np.testing.assert_allclose(grads[index], brute_force.soft_dtw(Cs[index], 0.5)[1], rtol=1e-10, atol=1e-12)

    def test_second_order_falls_back_to_xla(self):
        # The kernels have no derivative rules: derivatives of the gradient take the XLA sweeps.
        C, direction = random_costs((4, 5), seed=14), random_costs((4, 5), seed=15)
        hvp = jax.grad(lambda c: jnp.sum(sdtw.expected_alignment(c, 0.5, impl="pallas") * direction))(C)
        eps = 1e-5
        numeric = (
            sdtw.expected_alignment(C + eps * direction, 0.5, impl="pallas")
            - sdtw.expected_alignment(C - eps * direction, 0.5, impl="pallas")
        ) / (2 * eps)
        np.testing.assert_allclose(hvp, numeric, rtol=1e-5, atol=1e-8)

    def test_central_difference(self):
        rng = np.random.default_rng(16)
        C, direction = rng.random((7, 9)), rng.standard_normal((7, 9))
        eps = 1e-6
        f = lambda c: sdtw.soft_dtw(c, 0.1, impl="pallas")  # noqa: E731
        numeric = (f(C + eps * direction) - f(C - eps * direction)) / (2 * eps)
        analytic = jnp.sum(sdtw.expected_alignment(C, 0.1, impl="pallas") * direction)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


class TestFloat32:
    def test_agrees_with_float64_and_xla(self, x64):
        C = random_costs((13, 16), seed=17, scale=5.0)
        v64, g64 = value_and_grad(jnp.asarray(C), 0.1, impl="xla")  # too many alignments to enumerate
        v32, g32 = value_and_grad(jnp.asarray(C, jnp.float32), 0.1)
        assert v32.dtype == g32.dtype == jnp.float32
        np.testing.assert_allclose(v32, v64, rtol=1e-5)
        np.testing.assert_allclose(g32, g64, atol=1e-5)
        xla32 = value_and_grad(jnp.asarray(C, jnp.float32), 0.1, impl="xla")
        np.testing.assert_allclose(v32, xla32[0], rtol=1e-6)
        np.testing.assert_allclose(g32, xla32[1], atol=1e-6)

    def test_large_costs_and_tiny_gamma(self):
        C = jnp.asarray(random_costs((20, 30), seed=18, scale=1e4, shift=0.0), jnp.float32)
        value, grad = value_and_grad(C, 1e-3)
        assert np.all(np.isfinite(grad)) and np.all(grad >= 0) and np.all(grad <= 1 + 1e-3)
        np.testing.assert_allclose(grad[0, 0], 1.0, rtol=1e-4)
        np.testing.assert_allclose(value, sdtw.dtw(C, impl="xla"), rtol=1e-5)

    def test_nan_propagates(self):
        C = jnp.ones((3, 4)).at[1, 2].set(jnp.nan)
        assert jnp.isnan(sdtw.soft_dtw(C, 0.1, impl="pallas"))


@pytest.mark.parametrize("shape, width", [((1, 1), 1), ((3, 5), 4), ((5, 3), 8), ((4, 4), 4)])
def test_skewed_rows_are_the_anti_diagonals(shape, width):
    table = jnp.asarray(random_costs(shape, seed=11))
    skewed = sdtw._pallas._skew(table, width, -1.0)
    assert skewed.shape == (shape[0] + shape[1] - 1, width)
    for k, row in enumerate(np.asarray(skewed)):
        diagonal = [table[i, k - i] if 0 <= k - i < shape[1] and i < shape[0] else -1.0 for i in range(width)]
        np.testing.assert_array_equal(row, diagonal)
    np.testing.assert_array_equal(sdtw._pallas._unskew(skewed, shape), table)


class TestImpl:
    def test_unknown_impl_is_an_error(self):
        C = jnp.ones((3, 4))
        for call in [
            lambda: sdtw.soft_dtw(C, 0.1, impl="triton"),
            lambda: sdtw.expected_alignment(C, 0.1, impl="gpu"),
            lambda: sdtw.dtw(C, impl="Pallas"),
            lambda: sdtw.dtw_path(C, impl=None),
        ]:
            with pytest.raises(ValueError, match="`impl` must be 'auto', 'xla' or 'pallas'"):
                call()

    def test_pallas_is_chosen_explicitly(self, monkeypatch):
        C = jnp.ones((3, 3, 4))
        traced = lambda impl: str(jax.make_jaxpr(jax.vmap(lambda c: sdtw.soft_dtw(c, 0.1, impl=impl)))(C))  # noqa: E731
        assert "pallas_call" not in traced("xla")
        assert ("pallas_call" in traced("auto")) == (jax.default_backend() == "gpu")
        assert "pallas_call" in traced("pallas") and "grid=(3,)" in traced("pallas")  # one program per pair
        monkeypatch.setattr(sdtw._pallas, "on_gpu", lambda: False)
        assert [_api._backend(impl) for impl in ("auto", "xla", "pallas")] == ["xla", "xla", "interpret"]
        monkeypatch.setattr(sdtw._pallas, "on_gpu", lambda: True)
        assert [_api._backend(impl) for impl in ("auto", "xla", "pallas")] == ["pallas", "xla", "pallas"]
        monkeypatch.setattr(sdtw._pallas, "plt", None)  # a JAX without Pallas's Triton back end
        assert _api._backend("auto") == "xla"
        with pytest.raises(RuntimeError, match="impl='pallas' needs the Triton back end"):
            _api._backend("pallas")


class TestTritonLowering:
    """The kernels as a GPU would run them lower to Triton IR, checked here without a GPU.

    Cross-platform lowering stops at the Triton dialect (the Pallas lowering
    checks that loads and stores have power-of-two sizes; the module is
    verified); compiling it to PTX and running it needs a GPU.
    """

    @pytest.fixture(autouse=True)
    def as_on_a_gpu(self, monkeypatch):
        monkeypatch.setattr(sdtw._pallas, "on_gpu", lambda: True)
        try:
            from jax._src.pallas.triton import lowering
        except ImportError:  # pragma: no cover - internal module moved: lower without verifying
            return
        original = lowering.lower_jaxpr_to_triton_module

        def verified(*args, **kwargs):
            result = original(*args, **kwargs)
            assert result.module.operation.verify()
            return result

        monkeypatch.setattr(lowering, "lower_jaxpr_to_triton_module", verified)

    @pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
    @pytest.mark.parametrize(
        "shape, options", [((5, 7), {}), ((13, 4), {"subsequence": True, "weights": (1.0, 2.0, 2.0)}), ((1, 1), {})]
    )
    def test_lowers_to_triton(self, dtype, shape, options, x64):
        functions = {
            "soft value": lambda c: sdtw.soft_dtw(c, 0.3, impl="pallas", **options),
            "soft value and gradient": jax.value_and_grad(lambda c: sdtw.soft_dtw(c, 0.3, impl="pallas", **options)),
            "hard value and gradient": jax.value_and_grad(lambda c: sdtw.dtw(c, impl="pallas", **options)),
        }
        for name, fn in functions.items():
            lowered = jax.jit(jax.vmap(fn)).trace(jnp.ones((2, *shape), dtype)).lower(lowering_platforms=("cuda",))
            kernels = lowered.as_text().count("xla.gpu.triton")
            assert kernels == (1 if name == "soft value" else 2), name
