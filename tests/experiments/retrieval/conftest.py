"""CENS at 10 Hz of the tiny corpus, computed once and not written to the shared corpus cache
(test_features checks that folder's contents)."""

import pytest


@pytest.fixture(scope="session")
def tiny_cens(tiny_corpus):
    from experiments.features import FeatureConfig, corpus_features

    return corpus_features(tiny_corpus, FeatureConfig(kind="cens", rate_hz=10.0), progress=False, use_cache=False)
