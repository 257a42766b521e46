"""Composing the training config for tests: `debug=tiny` runs (2 steps, tiny models and data), no wandb."""

from __future__ import annotations

from pathlib import Path

from omegaconf import open_dict

from experiments.config import CONF
from experiments.config import compose

CONF_DIR = str(CONF)

EXPERIMENTS = sorted(p.stem for p in Path(CONF_DIR, "experiment").glob("*.yaml"))

# 2 steps of batch 4, logged every step, validated and saved at step 2 (conf/debug/{smoke,tiny}.yaml).
TINY_RUN = ["logger=none", "debug=tiny", "trainer.progress=false"]


def compose_train(output_dir, overrides=(), *, tiny=True, logger="none"):
    """The composed `train` config with `paths.output_dir = output_dir`."""
    run = [f"logger={logger}", *TINY_RUN[1:]] if tiny else []
    cfg = compose(run + list(overrides), config_name="train")
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg
