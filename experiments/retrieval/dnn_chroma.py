"""Learned chroma for the theme-retrieval table (the seed's DNN rows, plus soft-DTW).

Each variant is the chroma CNN of :mod:`models` trained by
``python -m experiments.train experiment=<name>`` on the embedded corpus
(Zalkow & Müller 2021: strong alignment, linear scaling, CTC; Krause, Weiß &
Müller 2023: soft-DTW). :func:`trained_extractors` trains each one for a few
steps (or resumes it: runs live in ``run_root/<data>-<hash of the data config>/<name>-<hash of
the model config>``, so a second call with the same folder, data and model only loads the
checkpoints, and another data or model config trains afresh instead of failing on them) and wraps the network as a
``chroma_fn(audio, sr) -> (T, 12)`` for :func:`experiments.retrieval.theme.chroma_database`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from experiments import features
from experiments.config import compose, from_config
from experiments.retrieval.tempo import scale_tempo
from experiments.retrieval.theme import ChromaExtractor
from experiments.training.datasets import data_key

VARIANTS = {  # table row -> training experiment (conf/experiment/)
    "DNN (CTC)": "ctc_chroma",
    "DNN (linear scaling)": "linear_scaling_chroma",
    "DNN (strong alignment)": "strong_chroma",
    "DNN (soft-DTW)": "soft_dtw_chroma",
}


def model_key(model_cfg) -> str:
    """Short hash of a resolved model config."""
    from omegaconf import OmegaConf

    from experiments.data import cache

    return cache.config_hash(OmegaConf.to_container(model_cfg, resolve=True), length=8)


def train_config(experiment: str, data: str, steps: int, output_dir: Path, overrides=()):
    """The composed training config of one variant, writing into ``output_dir``."""
    from omegaconf import open_dict

    cfg = compose([f"experiment={experiment}", f"data={data}", "logger=none", f"trainer.steps={steps}",
                   f"trainer.val_every={steps}", f"trainer.save_every={steps}", *overrides], "train")
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def chroma_extractor(model, cfg, rate_hz: float = 10.0) -> ChromaExtractor:
    """Wrap a trained chroma network: audio -> its HCQT -> chroma posteriors ``(T, 12)`` at ``rate_hz``.

    A 13-class (CTC) head gives softmax probabilities without the blank
    (class 0); a 12-class head gives sigmoid probabilities.
    """
    config = dataclasses.replace(from_config(features.FeatureConfig, cfg.data.features), kind="hcqt")
    apply = jax.jit(lambda x: model(x[None])[0])

    def chroma(audio: np.ndarray, sr: int) -> np.ndarray:
        logits = apply(jnp.asarray(features.audio_features(audio, sr, config)))
        if logits.shape[-1] == 13:
            probs = jax.nn.softmax(logits, axis=-1)[:, 1:]
        else:
            probs = jax.nn.sigmoid(logits)
        return scale_tempo(np.asarray(probs, np.float32), config.rate_hz, rate_hz, 1.0)

    return chroma


def trained_extractors(data: str, steps: int, run_root: Path, *, overrides=()) -> Mapping[str, ChromaExtractor]:
    """Train (or resume) every variant for ``steps`` steps on corpus ``data``; their chroma extractors."""
    from omegaconf import open_dict

    from experiments.train import train

    extractors = {}
    for row, experiment in VARIANTS.items():
        cfg = train_config(experiment, data, steps, Path(run_root), overrides)
        with open_dict(cfg):
            cfg.paths.output_dir = str(Path(run_root) / data_key(cfg.data) / f"{experiment}-{model_key(cfg.model)}")
        logging.getLogger(__name__).info("training %s for %d steps on %s", experiment, steps, data)
        _, objects = train(cfg)
        extractors[row] = chroma_extractor(objects["model"], cfg)
    return extractors
