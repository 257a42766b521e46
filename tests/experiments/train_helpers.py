"""Composing the training config for tests: tiny models, `debug=smoke` runs (2 steps, tiny data), no wandb."""

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

# 2 steps of batch 4, logged every step, validated and saved at step 2 (conf/debug/smoke.yaml).
TINY_RUN = ["logger=none", "debug=smoke", "trainer.progress=false"]


def compose_train(output_dir, overrides=(), *, tiny=True, logger="none"):
    """The composed `train` config with `paths.output_dir = output_dir`."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
        if tiny:
            run = [f"logger={logger}", *TINY_RUN[1:]]
            cfg = compose("train", overrides=run + TINY_MODEL[cfg.model.name] + list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg
