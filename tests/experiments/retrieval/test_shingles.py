"""Shingles: shapes, unit norm, tempo variants, version identification on the tiny corpus."""

import numpy as np
import pytest

from experiments.retrieval import shingles


def test_make_shingles_shapes_and_norm():
    frames = np.random.default_rng(0).random((25, 12)).astype(np.float32)
    s = shingles.make_shingles(frames, length=20, hop=2)
    assert s.shape == (3, 240)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(s[1], frames[2:22].ravel() / np.linalg.norm(frames[2:22]), rtol=1e-5)
    assert shingles.make_shingles(frames[:10], length=20).shape == (0, 240)


def test_query_variants_cover_scaled_durations():
    frames = np.random.default_rng(1).random((400, 12)).astype(np.float32)  # 40 s at 10 Hz
    q = shingles.query_shingles(frames, 10.0, 0.0, rate_hz=1.0, length=20, scales=(0.4, 0.66, 1.0, 1.5))
    assert q.shape == (3, 240)  # the 0.4 variant would need 20 / 0.4 = 50 s of query: left out


def test_pca_embedding_keeps_dimension():
    x = np.random.default_rng(2).normal(size=(50, 240)).astype(np.float32)
    assert shingles.pca_embedding(x, 6)(x[:4]).shape == (4, 6)


@pytest.mark.parametrize("kind", ["brute", "kdtree", "hnsw"])
def test_version_identification_on_tiny(tiny_corpus, tiny_cens, kind):
    cens = tiny_cens
    database = shingles.build_shingle_database(cens, 10.0, rate_hz=3.0)
    queries, owners, relevant = shingles.corpus_shingle_queries(tiny_corpus, cens, 10.0, rate_hz=3.0,
                                                                query_hop_s=3.0)
    assert len(queries) > 0 and relevant.shape == (len(queries), len(cens))
    result = shingles.version_identification(database, queries, owners, relevant, index_kind=kind)
    assert result["p@1"] >= 0.9
    # The query's own recording is never ranked first.
    assert np.all(np.argmax(result["scores"], axis=1) != np.asarray(owners))


def test_training_shingles_are_the_databases_shingles(tiny_corpus, tiny_config):
    """An embedder learns on exactly what it embeds at search time: unit-norm shingles at the table's rate."""
    import dataclasses

    from experiments.features import FeatureConfig, corpus_features
    from experiments.training.corpus import corpus_datasets

    train, val = corpus_datasets(dataclasses.asdict(tiny_config), inputs="shingles", model_cfg={}, shingle_rate_hz=4.0)
    part = tiny_corpus.subset("train")
    cens = corpus_features(part, FeatureConfig(kind="cens", rate_hz=10.0))
    expected = np.concatenate([shingles.recording_shingles(cens[v.version_id], 10.0, rate_hz=4.0)
                               for v in part.versions])
    np.testing.assert_allclose(train.arrays["inputs"], expected, rtol=1e-6)
    assert len(val) and np.all(train.arrays["labels"] == 0)  # one piece, one label without passages
    assert not set(np.unique(val.arrays["groups"])) & set(np.unique(train.arrays["groups"]))


def test_passage_labels_follow_the_score(tiny_corpus, tiny_config):
    """Shingles of two versions that start in the same 2 quarter notes of the score share a label."""
    import dataclasses

    from experiments.features import FeatureConfig, corpus_features
    from experiments.training.corpus import corpus_datasets

    train, _ = corpus_datasets(dataclasses.asdict(tiny_config), inputs="shingles", model_cfg={},
                               shingle_rate_hz=4.0, passage_q=2.0)
    part = tiny_corpus.subset("train")
    (v0, v1) = part.versions
    cens = corpus_features(part, FeatureConfig(kind="cens", rate_hz=10.0))
    counts = [len(shingles.recording_shingles(cens[v.version_id], 10.0, rate_hz=4.0)) for v in (v0, v1)]
    labels = np.split(train.arrays["labels"], [counts[0]])
    starts_q = [v.time_map.to_quarters(np.arange(n) / 4.0) for v, n in zip((v0, v1), counts)]
    for i in range(0, counts[0], 3):
        same = np.floor(starts_q[1] / 2.0) == np.floor(starts_q[0][i] / 2.0)
        assert np.all((labels[1] == labels[0][i]) == same)
    assert len(np.unique(train.arrays["labels"])) > 3 and np.all(train.arrays["groups"] == train.arrays["groups"][0])


def test_a_trained_embedder_embeds_any_number_of_shingles(tiny_corpus, tmp_path):
    """load_embedding: the best checkpoint of a (two-step) run, batched and padded without changing a row."""
    from tests.experiments.train_helpers import compose_train

    from experiments.retrieval.shingle_embedding import load_embedding
    from experiments.train import train

    run = tmp_path / "run"
    train(compose_train(run, ["experiment=shingle_embedder_6", "data=tiny", "data.max_measures=5",
                              "data.max_pieces=null", "shingle_rate_hz=4",
                              f"data.cache_dir={tiny_corpus.config.cache_dir}"]))
    embed = load_embedding(run, batch_size=8)
    x = shingles.make_shingles(np.random.default_rng(3).random((40, 12)), length=20)   # 21 shingles
    out = embed(x)
    assert out.shape == (21, 6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(embed(x[:3]), out[:3], rtol=1e-5, atol=1e-6)


def test_a_chroma_run_is_not_taken_for_an_embedder(tmp_path):
    from experiments.retrieval.dnn_chroma import NoTrainedNetworkError
    from experiments.retrieval.shingle_embedding import load_embedding

    (tmp_path / "checkpoints" / "best").mkdir(parents=True)
    (tmp_path / "run_config.yaml").write_text("task_name: ctc_chroma\ninputs: hcqt\n")
    with pytest.raises(NoTrainedNetworkError, match="ctc_chroma network on hcqt, not a shingle embedder"):
        load_embedding(tmp_path)
    with pytest.raises(NoTrainedNetworkError, match="experiment=shingle_embedder_12"):
        load_embedding(tmp_path / "nothing")
