"""Tests of losses.triplet_loss and losses.batch_triplet_loss against plain loops."""

import itertools

import jax
import numpy as np
import pytest

import losses


def distance(a, b, squared):
    d2 = float(np.sum((np.asarray(a, np.float64) - b) ** 2))
    return d2 if squared else np.sqrt(d2)


def loop_batch_triplet(embeddings, labels, margin, mining, squared, groups=None):
    """Per-anchor loss by explicit loops over positives and negatives."""
    batch = len(labels)
    groups = np.arange(batch) if groups is None else groups  # no groups: every example its own
    result = []
    for a in range(batch):
        positives = [p for p in range(batch) if p != a and labels[p] == labels[a]]
        negatives = [n for n in range(batch) if labels[n] != labels[a] and groups[n] != groups[a]]
        if not positives or not negatives:
            result.append(0.0)
            continue
        d = lambda i: distance(embeddings[a], embeddings[i], squared)  # noqa: E731
        if mining == "hard":
            hardest = max(d(p) for p in positives) - min(d(n) for n in negatives)
            result.append(max(hardest + margin, 0.0))
        elif mining == "semi-hard":
            losses_a = []
            for p in positives:
                farther = [d(n) for n in negatives if d(n) > d(p)]
                chosen = min(farther) if farther else max(d(n) for n in negatives)
                losses_a.append(max(d(p) - chosen + margin, 0.0))
            result.append(np.mean(losses_a))
        else:
            result.append(
                np.mean([max(d(p) - d(n) + margin, 0.0) for p, n in itertools.product(positives, negatives)])
            )
    return np.array(result)


class TestTripletLoss:
    @pytest.mark.parametrize("squared", [False, True])
    def test_matches_loop(self, squared):
        rng = np.random.default_rng(0)
        anchor, positive, negative = rng.normal(size=(3, 5, 4)).astype(np.float32)
        value = losses.triplet_loss(anchor, positive, negative, margin=0.5, squared=squared)
        expected = [
            max(distance(a, p, squared) - distance(a, n, squared) + 0.5, 0.0)
            for a, p, n in zip(anchor, positive, negative)
        ]
        np.testing.assert_allclose(value, expected, rtol=1e-5)

    def test_gradient_finite_for_coincident_points(self):
        x = np.ones((2, 3), np.float32)
        grad = jax.grad(lambda a: losses.triplet_loss(a, x, x + 1.0, margin=2.0).sum())(x)
        assert np.all(np.isfinite(grad))

    def test_nan_embedding_gives_nan_loss(self):
        """A NaN distance must not turn into 0 (which would give a finite loss of `margin`)."""
        x = np.ones((2, 3), np.float32)
        anchor = x.copy()
        anchor[0, 1] = np.nan
        value = np.asarray(losses.triplet_loss(anchor, x, x + 1.0, margin=2.0))
        assert np.isnan(value[0]) and np.isfinite(value[1])

    @pytest.mark.parametrize(
        "change, name",
        [
            (dict(anchor=np.zeros((4,))), "`anchor`"),
            (dict(positive=np.zeros((4, 2))), "`positive`"),
            (dict(negative=np.zeros((3, 3))), "`negative`"),
            (dict(margin=-1.0), "`margin`"),
        ],
    )
    def test_bad_input_raises(self, change, name):
        arguments = dict(anchor=np.zeros((4, 3)), positive=np.zeros((4, 3)), negative=np.zeros((4, 3)))
        margin = change.pop("margin", 0.1)
        arguments.update(change)
        with pytest.raises(ValueError, match=name):
            losses.triplet_loss(**arguments, margin=margin)


class TestBatchTripletLoss:
    @pytest.mark.parametrize("mining", ["hard", "semi-hard", "all"])
    @pytest.mark.parametrize("squared", [False, True])
    def test_matches_loop(self, mining, squared):
        rng = np.random.default_rng(1)
        embeddings = rng.normal(size=(10, 3)).astype(np.float32)
        labels = np.array([0, 0, 1, 1, 1, 2, 2, 3, 0, 1], np.int32)  # label 3 has no positive
        value = losses.batch_triplet_loss(
            embeddings, labels, margin=0.7, mining=mining, squared=squared
        )
        expected = loop_batch_triplet(embeddings, labels, 0.7, mining, squared)
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
        assert value[7] == 0.0

    @pytest.mark.parametrize("mining", ["hard", "semi-hard", "all"])
    def test_groups_keep_their_other_labels_out_of_the_negatives(self, mining):
        """label = passage, group = piece: another passage of the same piece is no negative."""
        rng = np.random.default_rng(3)
        embeddings = rng.normal(size=(10, 3)).astype(np.float32)
        labels = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4], np.int32)
        groups = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2], np.int32)
        value = losses.batch_triplet_loss(embeddings, labels, margin=0.5, mining=mining, groups=groups)
        expected = loop_batch_triplet(embeddings, labels, 0.5, mining, False, groups)
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
        assert not np.allclose(value, losses.batch_triplet_loss(embeddings, labels, margin=0.5, mining=mining))
        with pytest.raises(ValueError, match="`groups`"):
            losses.batch_triplet_loss(embeddings, labels, margin=0.5, groups=groups[:4])

    def test_single_label_batch_has_no_triplets(self):
        embeddings = np.random.default_rng(2).normal(size=(4, 3))
        for mining in ("hard", "semi-hard", "all"):
            value = losses.batch_triplet_loss(embeddings, np.zeros(4, np.int32), margin=1.0, mining=mining)
            np.testing.assert_array_equal(value, 0.0)

    @pytest.mark.parametrize("mining", ["hard", "semi-hard", "all"])
    def test_nan_embedding_gives_nan_loss(self, mining):
        embeddings = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
        embeddings[2] = np.nan
        value = losses.batch_triplet_loss(embeddings, np.array([0, 0, 1, 1, 2, 2]), margin=0.2, mining=mining)
        assert np.isnan(np.asarray(value)).any()

    def test_gradient_finite_and_jit(self):
        embeddings = np.zeros((4, 3), np.float32)  # all distances 0
        labels = np.array([0, 0, 1, 1], np.int32)
        loss = jax.jit(lambda e: losses.batch_triplet_loss(e, labels, margin=1.0).sum())
        value, grad = jax.value_and_grad(loss)(embeddings)
        np.testing.assert_allclose(value, 4.0)
        assert np.all(np.isfinite(grad))

    @pytest.mark.parametrize(
        "change, name",
        [
            (dict(embeddings=np.zeros((4,))), "`embeddings`"),
            (dict(labels=np.zeros((3,), np.int32)), "`labels`"),
            (dict(labels=np.zeros((4,), np.float32)), "`labels`"),
            (dict(mining="easy"), "`mining`"),
        ],
    )
    def test_bad_input_raises(self, change, name):
        arguments = dict(embeddings=np.zeros((4, 3)), labels=np.zeros((4,), np.int32), margin=0.1)
        arguments.update(change)
        with pytest.raises(ValueError, match=name):
            losses.batch_triplet_loss(**arguments)
