"""Output shapes, input checks and a small overfit of every model."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import models

TINY = {
    "deep_chroma": functools.partial(models.DeepChroma, 24, context=3, hidden=(32,), dropout=0.0),
    "salience_cnn": functools.partial(models.SalienceCNN, 3, 24, num_classes=13, channels=(8,),
                                      kernels=((3, 3),), wide_kernel=(3, 9), wide_channels=4),
    "shingle_embedder": functools.partial(models.ShingleEmbedder, embedding_dim=6, channels=(4, 8), hidden=32, dropout=0.0),
}


def tiny(name: str, **options) -> nnx.Module:
    """The small model `name`, parameters from seed 0 (`options` replace its keyword arguments)."""
    return TINY[name](**options, rngs=nnx.Rngs(params=0))


def _inputs(name, batch=2, frames=10, seed=0):
    rng = np.random.default_rng(seed)
    shape = {"deep_chroma": (batch, frames, 24), "salience_cnn": (batch, frames, 3, 24),
             "shingle_embedder": (batch, 240)}[name]
    return jnp.asarray(rng.random(shape, dtype=np.float32))


class TestShapes:
    def test_deep_chroma(self):
        model = tiny("deep_chroma")
        assert model(_inputs("deep_chroma")).shape == (2, 10, 12)

    def test_deep_chroma_paper_size(self):
        model = models.DeepChroma(120, rngs=nnx.Rngs(0))
        assert models.count_params(model) == 1_453_580
        assert model(jnp.zeros((1, 5, 120))).shape == (1, 5, 12)

    def test_ctc_chroma(self):
        model = tiny("salience_cnn")
        assert model(_inputs("salience_cnn")).shape == (2, 10, 13)

    def test_salience_head(self):
        model = tiny("salience_cnn", num_classes=None)
        assert model(_inputs("salience_cnn")).shape == (2, 10, 24)

    def test_salience_paper_size(self):
        model = models.SalienceCNN(6, 216, rngs=nnx.Rngs(0))
        assert models.count_params(model) == 428_053

    @pytest.mark.parametrize("dim", [6, 12, 30])
    def test_shingle_embedder_unit_norm(self, dim):
        model = tiny("shingle_embedder", embedding_dim=dim)
        out = model(_inputs("shingle_embedder"))
        assert out.shape == (2, dim)
        np.testing.assert_allclose(jnp.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
        flat, framed = out, model(_inputs("shingle_embedder").reshape(2, 20, 12))
        np.testing.assert_allclose(flat, framed, rtol=1e-6)

    def test_context_windows_line_up(self):
        x = jnp.arange(5.0).reshape(1, 5, 1)
        windows = models.context_windows(x, 3)[0, :, :, 0]
        np.testing.assert_array_equal(windows, [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 0]])

    @pytest.mark.parametrize("lengths", [(10, 7), (4, 10)])
    def test_padded_frames_do_not_change_the_valid_ones(self, lengths):
        # Two stacked time-convolutions: padding reaches the valid frames unless it is masked
        # after every layer.
        model = tiny("salience_cnn", channels=(8, 8), kernels=((3, 3), (3, 3)))
        x = _inputs("salience_cnn")
        padded = jnp.concatenate([x, jnp.ones_like(x[:, :6])], axis=1)  # not even zero padding
        out = model(padded, lengths=jnp.asarray(lengths))
        for row, n in enumerate(lengths):
            np.testing.assert_allclose(out[row, :n], model(x[row:row + 1, :n])[0], rtol=1e-5, atol=1e-6)

    def test_dropout_only_with_key(self):
        model = models.DeepChroma(24, context=3, hidden=(32,), dropout=0.5, rngs=nnx.Rngs(0))
        x = _inputs("deep_chroma")
        np.testing.assert_array_equal(model(x), model(x))
        assert not np.allclose(model(x), model(x, dropout_key=jax.random.key(1)))


class TestBadInput:
    @pytest.mark.parametrize("name", sorted(TINY))
    def test_wrong_input_shape(self, name):
        model = tiny(name)
        with pytest.raises(ValueError, match="must have shape"):
            model(jnp.zeros((2, 7)))

    def test_kernels_per_channel(self):
        with pytest.raises(ValueError, match="one entry per channel"):
            models.SalienceCNN(3, 24, channels=(4, 4), kernels=((3, 3),), rngs=nnx.Rngs(0))


def _overfit(model, loss_of_outputs, inputs, steps=150, learning_rate=1e-2):
    """(first loss, last loss) of `steps` Adam steps on one fixed batch."""
    optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: loss_of_outputs(m(inputs)))(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(steps)]
    return losses[0], losses[-1]


class TestOverfit:
    """Each model drives its loss on a tiny batch down by 10x."""

    def test_deep_chroma_bce(self):
        targets = jnp.asarray(np.random.default_rng(1).random((2, 10, 12)) > 0.7, jnp.float32)
        model = tiny("deep_chroma")
        first, last = _overfit(model, lambda out: optax.sigmoid_binary_cross_entropy(out, targets).mean(),
                               _inputs("deep_chroma"))
        assert last < first / 10

    def test_ctc_chroma_frame_labels(self):
        labels = jnp.asarray(np.random.default_rng(1).integers(0, 13, (2, 10)))
        model = tiny("salience_cnn")
        first, last = _overfit(
            model, lambda out: optax.softmax_cross_entropy_with_integer_labels(out, labels).mean(),
            _inputs("salience_cnn"), steps=200)
        assert last < first / 10

    def test_shingle_embedder(self):
        targets = models.l2_normalize(jax.random.normal(jax.random.key(3), (4, 6)))
        model = tiny("shingle_embedder")
        first, last = _overfit(model, lambda out: jnp.sum((out - targets) ** 2, axis=1).mean(),
                               _inputs("shingle_embedder", batch=4))
        assert last < first / 10
