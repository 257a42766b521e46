"""Shared fixtures: a tiny corpus built once per session in a temporary folder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    from experiments.data.corpus import CorpusConfig

    return CorpusConfig(name="tiny", pieces=("bach/bwv66.6", "bach/bwv1.6", "bach/bwv10.7"), versions_per_piece=2,
                        max_measures=5, theme_measures=2,
                        cache_dir=str(tmp_path_factory.mktemp("corpus-cache")))


@pytest.fixture(scope="session")
def tiny_corpus(tiny_config):
    from experiments.data.corpus import build_corpus

    return build_corpus(tiny_config, progress=False)
