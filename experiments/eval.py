"""Evaluate a trained network: `python -m experiments.eval experiment=<name> [ckpt_path=...]`.

The same config tree and overrides as `experiments.train`: without
`ckpt_path` the app finds the run folder that the training command with the
same overrides wrote, restores its best checkpoint (`checkpoint=latest` for
the newest) and scores it on the validation examples of the data config
(`data=...`; loss and the task's score, e.g. chroma F-measure or embedding
accuracy). The checkpoint's model config must match the composed one. Prints
the metrics and writes them to `eval.json` in the app's own folder
(`logs/<task>/eval/<overrides>/`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from flax import nnx
from omegaconf import DictConfig

from experiments.config import build_model
from experiments.train import ConfigError, build_datasets, build_optimizer, check_trainer, model_config
from experiments.training import parallel
from experiments.training.checkpoints import CheckpointMismatchError, Checkpoints
from experiments.training.checkpoints import load_training_state, training_state
from experiments.training.loop import make_eval_step, make_loss_fn, place_state, validate


def locate_checkpoint(path: str | Path, prefer: str = "best") -> tuple[Path, str, int | None]:
    """(checkpoints folder, "best" or "latest", step or None for the preferred one) named by `path`:
    a run folder, its `checkpoints/`, `checkpoints/<kind>` or `checkpoints/<kind>/<step>`."""
    if prefer not in ("best", "latest"):
        raise ConfigError(f"checkpoint={prefer!r}: use best or latest")
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"ckpt_path={path} does not exist: train first (python -m experiments.train with the "
                          "same overrides) or give the run folder")
    if path.name.isdigit() and path.parent.name in ("best", "latest"):
        return path.parent.parent, path.parent.name, int(path.name)
    if path.name in ("best", "latest"):
        return path.parent, path.name, None
    for folder in (path, path / "checkpoints"):
        if (folder / prefer).is_dir():
            return folder, prefer, None
    raise ConfigError(f"ckpt_path={path} holds no checkpoints/{prefer} folder")


def restore_model(cfg, folder: Path, kind: str = "best", step: int | None = None, mesh=None):
    """The model of `cfg` with the weights of a saved training state: (model, step).

    `mesh`: place the state replicated on it first (the layout the eval step expects).
    Raises FileNotFoundError when `folder` holds no such checkpoint.
    """
    model = build_model(cfg.model, cfg.seed)
    optimizer = nnx.Optimizer(model, build_optimizer(cfg.optim), wrt=nnx.Param)  # the saved state holds it too
    if mesh is not None:
        place_state(model, optimizer, mesh=mesh)
    checkpoints = Checkpoints(folder, model_config(cfg), save_every=1)
    try:
        step, state = checkpoints.restore(training_state(model, optimizer), kind=kind, step=step)
    finally:
        checkpoints.close()
    load_training_state(model, optimizer, state)
    return model, step


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Restore the checkpoint `cfg.ckpt_path` names into the composed model; its validation metrics."""
    check_trainer(cfg.trainer)
    folder, kind, step = locate_checkpoint(cfg.ckpt_path, cfg.checkpoint)
    mesh = parallel.data_mesh(cfg.trainer.devices)
    try:
        model, step = restore_model(cfg, folder, kind, step, mesh)
    except FileNotFoundError as error:
        raise ConfigError(str(error)) from None
    _, val_set = build_datasets(cfg)
    loss_fn = make_loss_fn(hydra.utils.instantiate(cfg.loss))
    metrics = validate(make_eval_step(loss_fn, cfg.task), model, val_set, cfg.trainer.batch_size, mesh, cfg.task)
    return {**metrics, "checkpoint": str(folder / kind / str(step)), "step": step, "examples": len(val_set)}


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> dict[str, float]:
    """Hydra entry point: a bad path or a checkpoint of another model ends with one line and exit status 2."""
    try:
        metrics = evaluate(cfg)
    except (ConfigError, CheckpointMismatchError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    out = Path(cfg.paths.output_dir, "eval.json")
    out.write_text(json.dumps(metrics, indent=1))
    print(f"{metrics['checkpoint']} (step {metrics['step']}) on {metrics['examples']} validation examples:")
    for key, value in metrics.items():
        if key.startswith("val/"):
            print(f"  {key} = {value:.4f}")
    print(f"written to {out}")
    return metrics


if __name__ == "__main__":
    main()
