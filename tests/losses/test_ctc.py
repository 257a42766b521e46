"""Tests of losses.ctc_loss, ctc_loss_with_forward_probs and ctc_alignment."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import losses
from tests.losses import brute_force


def random_batch(seed, batch, frames, classes, max_labels, *, blank_id=0):
    """Random logits and labels with repeats, padded frames and padded labels.

    Example 0 has no padding; example 1 has a doubled label; later examples
    get shorter label sequences, padded frames at the end, and one example
    a padded frame in the middle (optax skips those too).
    """
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(batch, frames, classes)).astype(np.float32)
    non_blank = [k for k in range(classes) if k != blank_id]
    labels = rng.choice(non_blank, size=(batch, max_labels)).astype(np.int32)
    label_paddings = np.zeros((batch, max_labels), np.float32)
    logit_paddings = np.zeros((batch, frames), np.float32)
    if batch > 1 and max_labels > 1:
        labels[1, 1] = labels[1, 0]
    for b in range(2, batch):
        length = rng.integers(1, max_labels + 1)
        label_paddings[b, length:] = 1.0
        labels[b, length:] = 0  # padded entries are arbitrary
        logit_paddings[b, frames - rng.integers(0, frames // 3 + 1) :] = 1.0
    if batch > 3 and frames > 4:
        logit_paddings[3, 2] = 1.0
    return logits, logit_paddings, labels, label_paddings


def value_and_grad(loss_fn, logits, *args, **kwargs):
    """((sum of losses, its gradient w.r.t. logits), per-example losses), jitted."""

    def total(x):
        per_example = loss_fn(x, *args, **kwargs)
        return jnp.sum(per_example), per_example

    (total_value, per_example), grad = jax.jit(jax.value_and_grad(total, has_aux=True))(logits)
    return (total_value, grad), per_example


CASES = {
    "paddings_and_repeats": dict(seed=0, batch=5, frames=12, classes=5, max_labels=4),
    "one_frame": dict(seed=1, batch=3, frames=1, classes=4, max_labels=1),
    "one_label": dict(seed=2, batch=4, frames=9, classes=3, max_labels=1),
    "blank_in_middle": dict(seed=3, batch=5, frames=10, classes=6, max_labels=3, blank_id=2),
    "blank_last": dict(seed=4, batch=5, frames=10, classes=6, max_labels=3, blank_id=5),
    "long_labels": dict(seed=5, batch=4, frames=30, classes=4, max_labels=12),
}


class TestCTCLoss:
    @pytest.mark.parametrize("case", sorted(CASES))
    def test_matches_optax_value_and_gradient(self, case):
        blank_id = CASES[case].get("blank_id", 0)
        args = random_batch(**CASES[case])
        (total, grad), per_example = value_and_grad(losses.ctc_loss, *args, blank_id=blank_id)
        # optax takes the label log-probabilities with a one-hot matmul, which GPUs run in TF32
        # by default (10-bit mantissa): on an H200 its long_labels values moved 2.5e-5 relative,
        # as rounding them to TF32 does on the CPU. The reference runs at full precision.
        with jax.default_matmul_precision("float32"):
            (total_ref, grad_ref), per_example_ref = value_and_grad(
                optax.ctc_loss, *args, blank_id=blank_id
            )
        np.testing.assert_allclose(per_example, per_example_ref, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(grad, grad_ref, atol=2e-5)
        assert per_example.shape == (args[0].shape[0],)

    def test_no_matmul_rounds_the_emissions(self):
        """Label log-probabilities are gathered, not taken by a one-hot matmul, and the one-hot
        product of the gradient runs at full precision: exact in float32 on any backend, whatever
        its default matmul precision (TF32 on GPUs)."""
        args = random_batch(**CASES["long_labels"])
        jaxpr = jax.make_jaxpr(jax.value_and_grad(lambda x: losses.ctc_loss(x, *args[1:]).sum()))(args[0])
        products = re.findall(r"dot_general\[(.*?)\n\s*\]", str(jaxpr), re.S)  # their parameters
        assert len(products) == 1 and "precision=(Precision.HIGHEST, Precision.HIGHEST)" in products[0]
        value_only = jax.make_jaxpr(lambda x: losses.ctc_loss(x, *args[1:]).sum())(args[0])
        assert "dot_general" not in str(value_only)

    def test_float32_gradient_is_as_accurate_as_its_inputs(self, x64):
        """Occupancies normalized frame by frame: the float32 gradient within 1.5e-6 of float64
        (normalized by the final log Z instead, 5.3e-6 off on this case; optax 1.5e-7)."""
        args = random_batch(**CASES["long_labels"])
        as64 = [np.asarray(a, np.float64) if a.dtype == np.float32 else a for a in args]
        (_, grad32), _ = value_and_grad(losses.ctc_loss, *args)
        (_, grad64), _ = value_and_grad(losses.ctc_loss, *as64)
        assert grad32.dtype == np.float32 and grad64.dtype == np.float64
        np.testing.assert_allclose(grad32, grad64, atol=1.5e-6)

    def test_forward_probs_match_optax(self):
        args = random_batch(**CASES["paddings_and_repeats"])
        ours = losses.ctc_loss_with_forward_probs(*args)
        reference = optax.ctc_loss_with_forward_probs(*args)
        for name, value, expected in zip(("loss", "blank", "label"), ours, reference):
            assert value.shape == expected.shape, name
            # Entries near log_epsilon are penalised paths: equal up to float32
            # resolution at 1e5 (about 0.01).
            np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-3, err_msg=name)

    def test_one_frame_per_label_is_exact(self):
        # T == L with distinct labels: the only alignment emits label t at
        # frame t, so loss = -sum_t log p_t(label_t), gradient = softmax - onehot.
        rng = np.random.default_rng(7)
        frames, classes = 5, 7
        labels = rng.permutation(np.arange(1, classes))[:frames][None].astype(np.int32)
        logits = rng.normal(size=(1, frames, classes)).astype(np.float32)
        args = (logits, np.zeros((1, frames)), labels, np.zeros((1, frames)))
        loss, grad = jax.value_and_grad(lambda x: losses.ctc_loss(x, *args[1:])[0])(logits)
        log_probs = jax.nn.log_softmax(logits)
        onehot = jax.nn.one_hot(labels, classes)
        np.testing.assert_allclose(loss, -jnp.sum(log_probs * onehot), rtol=1e-6)
        np.testing.assert_allclose(grad, jnp.exp(log_probs) - onehot, atol=1e-6)

    @pytest.mark.parametrize("labels", [(1,), (1, 2), (2, 2), (1, 2, 1)])
    def test_matches_brute_force_enumeration(self, x64, labels):
        rng = np.random.default_rng(len(labels))
        frames, classes = 5, 3
        logits = rng.normal(scale=1.5, size=(1, frames, classes))
        label_array = np.array([labels], np.int32)
        value = losses.ctc_loss(
            logits, np.zeros((1, frames)), label_array, np.zeros(label_array.shape)
        )
        expected = brute_force.ctc_negative_log_likelihood(logits[0], labels, blank=0)
        np.testing.assert_allclose(value[0], expected, rtol=1e-12)

    def test_brute_force_with_padding(self, x64):
        rng = np.random.default_rng(11)
        logits = rng.normal(size=(1, 7, 3))
        logit_paddings = np.array([[0, 0, 1, 0, 0, 0, 1]], np.float64)
        labels = np.array([[2, 1, 0]], np.int32)
        label_paddings = np.array([[0, 0, 1]], np.float64)
        value = losses.ctc_loss(logits, logit_paddings, labels, label_paddings)
        valid = logit_paddings[0] == 0
        expected = brute_force.ctc_negative_log_likelihood(logits[0][valid], (2, 1), blank=0)
        np.testing.assert_allclose(value[0], expected, rtol=1e-12)

    def test_check_grads(self, x64):
        logits, *rest = random_batch(seed=8, batch=4, frames=7, classes=4, max_labels=3)
        rest = [jnp.asarray(x) for x in rest]
        check_grads(
            lambda x: losses.ctc_loss(x, *rest),
            (jnp.asarray(logits, jnp.float64),),
            order=1,
            modes=["rev"],
        )

    def test_gradient_is_softmax_minus_occupancy(self):
        logits, logit_paddings, labels, label_paddings = random_batch(**CASES["paddings_and_repeats"])
        grad = jax.grad(lambda x: jnp.sum(losses.ctc_loss(x, logit_paddings, labels, label_paddings)))(
            logits
        )
        alignment = losses.ctc_alignment(logits, logit_paddings, labels, label_paddings)
        batch, frames, classes = logits.shape
        extended = np.zeros((batch, 2 * labels.shape[1] + 1), np.int32)
        extended[:, 1::2] = labels
        class_occupancy = np.zeros(logits.shape)
        for s in range(extended.shape[1]):
            class_occupancy[np.arange(batch), :, extended[:, s]] += alignment.occupancy[:, :, s]
        valid = (1.0 - logit_paddings)[:, :, None]
        expected = jax.nn.softmax(logits) * valid - class_occupancy
        np.testing.assert_allclose(grad, expected, atol=2e-5)
        np.testing.assert_array_equal(np.asarray(grad)[logit_paddings == 1], 0.0)

    def test_impossible_alignment_is_large_finite_as_in_optax(self):
        logits = np.random.default_rng(9).normal(size=(3, 3, 4)).astype(np.float32)
        labels = np.array([[1, 2, 3, 1], [1, 1, 2, 0], [2, 2, 0, 0]], np.int32)
        label_paddings = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1]], np.float32)
        args = (logits, np.zeros((3, 3), np.float32), labels, label_paddings)
        (total, grad), value = value_and_grad(losses.ctc_loss, *args)
        (_, grad_ref), value_ref = value_and_grad(optax.ctc_loss, *args)
        # 4 labels or 1, 1, 2 (needs a blank between the 1s) do not fit in 3
        # frames; 2, 2 with a blank between them does.
        assert value[0] > 1e4 and value[1] > 1e4 and value[2] < 100
        np.testing.assert_allclose(value, value_ref, rtol=1e-6)
        assert np.all(np.isfinite(grad))
        np.testing.assert_allclose(grad, grad_ref, atol=0.05)  # float32 at 1e5

    def test_jit_and_float64(self, x64):
        logits, *rest = random_batch(**CASES["paddings_and_repeats"])
        logits = logits.astype(np.float64)
        value = jax.jit(losses.ctc_loss)(logits, *rest)
        assert value.dtype == jnp.float64
        np.testing.assert_allclose(value, optax.ctc_loss(logits, *rest), rtol=1e-10)

    BAD_INPUTS = {
        "logits rank": (dict(logits=np.zeros((2, 5))), "`logits`"),
        "logit_paddings shape": (dict(logit_paddings=np.zeros((2, 4))), "`logit_paddings`"),
        "logit_paddings values": (dict(logit_paddings=np.full((2, 5), 0.5)), "`logit_paddings`"),
        "labels dtype": (dict(labels=np.ones((2, 3), np.float32)), "`labels`"),
        "labels batch": (dict(labels=np.ones((3, 3), np.int32)), "`labels`"),
        "labels range": (dict(labels=np.array([[1, 4, 1], [1, 1, 1]])), "`labels`"),
        "labels negative": (dict(labels=np.array([[1, -1, 1], [1, 1, 1]])), "`labels`"),
        "label_paddings shape": (dict(label_paddings=np.zeros((2, 2))), "`label_paddings`"),
        "label_paddings order": (
            dict(label_paddings=np.array([[1.0, 0, 0], [0, 0, 0]])),
            "`label_paddings`",
        ),
        "blank_id": (dict(blank_id=4), "`blank_id`"),
        "log_epsilon positive": (dict(log_epsilon=1.0), "`log_epsilon` must be < 0"),
        "log_epsilon zero": (dict(log_epsilon=0.0), "`log_epsilon` must be < 0"),
    }

    @pytest.mark.parametrize("case", sorted(BAD_INPUTS))
    def test_bad_input_raises(self, case):
        arguments = dict(
            logits=np.zeros((2, 5, 4)),
            logit_paddings=np.zeros((2, 5)),
            labels=np.ones((2, 3), np.int32),
            label_paddings=np.zeros((2, 3)),
        )
        change, name = self.BAD_INPUTS[case]
        arguments.update(change)
        blank_id = arguments.pop("blank_id", 0)
        with pytest.raises(ValueError, match=name):
            losses.ctc_loss(**arguments, blank_id=blank_id)

    def test_empty_label_sequences(self):
        """Labels of shape (B, 0): the target is all blank; loss -sum log p(blank), gradient softmax - onehot."""
        rng = np.random.default_rng(5)
        logits = rng.normal(size=(2, 4, 3)).astype(np.float32)
        logit_paddings = np.array([[0, 0, 0, 0], [0, 0, 1, 1]], np.float32)
        empty = (np.zeros((2, 0), np.int32), np.zeros((2, 0), np.float32))
        value, grad = jax.value_and_grad(lambda x: losses.ctc_loss(x, logit_paddings, *empty).sum())(logits)
        log_probs = jax.nn.log_softmax(logits)
        valid = 1.0 - logit_paddings
        np.testing.assert_allclose(value, -(log_probs[..., 0] * valid).sum(), rtol=1e-5)
        expected = (np.exp(log_probs) - np.eye(3)[0]) * valid[..., None]
        np.testing.assert_allclose(grad, expected, atol=1e-5)

    def test_padded_label_values_are_ignored(self):
        logits, logit_paddings, labels, label_paddings = random_batch(**CASES["paddings_and_repeats"])
        other = np.where(label_paddings == 1, 3, labels)
        np.testing.assert_array_equal(
            losses.ctc_loss(logits, logit_paddings, labels, label_paddings),
            losses.ctc_loss(logits, logit_paddings, other, label_paddings),
        )


class TestCTCAlignment:
    @pytest.mark.parametrize("labels", [(1,), (2, 2), (1, 2, 1), (2, 1)])
    def test_viterbi_is_optimal_by_brute_force(self, x64, labels):
        rng = np.random.default_rng(20 + len(labels))
        frames, classes = 6, 3
        logits = rng.normal(scale=2.0, size=(1, frames, classes))
        label_array = np.array([labels], np.int32)
        alignment = losses.ctc_alignment(
            logits, np.zeros((1, frames)), label_array, np.zeros(label_array.shape)
        )
        paths = brute_force.ctc_paths(brute_force.log_softmax(logits[0]), labels, blank=0)
        best = max(score for score, _ in paths)
        np.testing.assert_allclose(alignment.score[0], best, rtol=1e-12)
        # The returned path is a valid alignment with exactly that score.
        states = np.asarray(alignment.states[0])
        extended = np.zeros(2 * len(labels) + 1, np.int32)
        extended[1::2] = labels
        classes_on_path = tuple(extended[states])
        assert brute_force.collapse(classes_on_path, 0) == labels
        assert np.all(np.diff(states) >= 0) and np.all(np.diff(states) <= 2)
        log_probs = brute_force.log_softmax(logits[0])
        path_score = sum(log_probs[t, k] for t, k in enumerate(classes_on_path))
        np.testing.assert_allclose(path_score, best, rtol=1e-12)

    def test_outputs_on_padded_batch(self):
        logits, logit_paddings, labels, label_paddings = random_batch(**CASES["long_labels"])
        alignment = losses.ctc_alignment(logits, logit_paddings, labels, label_paddings)
        batch, frames, _ = logits.shape
        assert alignment.states.shape == (batch, frames)
        assert alignment.occupancy.shape == (batch, frames, 2 * labels.shape[1] + 1)
        padded = logit_paddings == 1
        np.testing.assert_array_equal(np.asarray(alignment.states)[padded], -1)
        np.testing.assert_array_equal(np.asarray(alignment.occupancy)[padded], 0.0)
        np.testing.assert_allclose(
            np.asarray(alignment.occupancy.sum(-1))[~padded], 1.0, atol=1e-6
        )
        lengths = labels.shape[1] - label_paddings.sum(1)
        for b in range(batch):
            states = np.asarray(alignment.states[b])[~padded[b]]
            assert states[0] in (0, 1) and states[-1] in (2 * lengths[b], 2 * lengths[b] - 1)
            positions = np.asarray(alignment.label_positions[b])[~padded[b]]
            np.testing.assert_array_equal(positions, np.where(states % 2 == 1, states // 2, -1))
            emitted = [p for i, p in enumerate(positions) if p >= 0 and (i == 0 or positions[i - 1] != p)]
            assert emitted == list(range(int(lengths[b])))
