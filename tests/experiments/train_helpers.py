"""Composing the training config for tests: tiny models, tiny synthetic data, no wandb."""

from __future__ import annotations

from pathlib import Path

from hydra import compose
from hydra import initialize_config_dir
from omegaconf import open_dict

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")

EXPERIMENTS = sorted(p.stem for p in Path(CONF_DIR, "experiment").glob("*.yaml"))

TINY_MODEL = {
    "salience_cnn": ["model.num_harmonics=3", "model.num_bins=24", "model.channels=[4]",
                     "model.kernels=[[3,3]]", "model.wide_kernel=[3,9]", "model.wide_channels=2"],
    "deep_chroma": ["model.num_bins=24", "model.context=3", "model.hidden=[16]"],
    "shingle_embedder": ["model.channels=[2,4]", "model.hidden=16"],
}

TINY_RUN = ["logger=none", "data.num_train=8", "data.num_val=4", "data.num_frames=16",
            "trainer.steps=2", "trainer.batch_size=4", "trainer.log_every=1", "trainer.val_every=2",
            "trainer.save_every=2", "trainer.progress=false"]


def compose_train(output_dir, overrides=(), *, tiny=True):
    """The composed `train` config with `paths.output_dir = output_dir`."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
        if tiny:
            run = TINY_RUN if cfg.data.name == "synthetic" else [o for o in TINY_RUN if not o.startswith("data.")]
            cfg = compose("train", overrides=run + TINY_MODEL[cfg.model.name] + list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg
