"""Train a model: `python -m experiments.train experiment=<name> [key=value ...]`.

Experiments (`conf/experiment/`): the chroma CNN trained four ways,
`strong_chroma` (a, BCE on strongly aligned frames), `linear_scaling_chroma`
(b, BCE on the stretched weak targets), `ctc_chroma` (c, CTC),
`soft_dtw_chroma` (d, soft-DTW, Krause et al. 2023); `deep_chroma`; and
`shingle_embedder_{6,12,30}` (triplet loss). Data: `data=synthetic`
(default, no corpus needed) or a corpus config (`data=tiny|small|full`).

Runs write to `logs/<task_name>/runs/<overrides>/`; running the same command
again resumes from that folder's latest checkpoint (also after kill -9).
Sweeps: `-m` over any value, locally in parallel with
`hydra/launcher=joblib`, on Slurm with `hydra/launcher=slurm`
(`pip install -e ".[slurm]"`). `main()` returns `optimized_metric`;
a sweep with a failed job names it at the end and exits 1.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

import hydra
import optax
from flax import nnx
from omegaconf import DictConfig
from omegaconf import OmegaConf

import models
from experiments import workers
from experiments.config import build_model
from experiments.data import cache
from experiments.config import register_schemas
from experiments.training import parallel
from experiments.training.checkpoints import CheckpointMismatchError
from experiments.training.checkpoints import Checkpoints
from experiments.training.datasets import ArrayDataset
from experiments.training.datasets import data_key
from experiments.training.datasets import synthetic_datasets
from experiments.training.loggers import FileLogger
from experiments.training.loop import LoopConfig
from experiments.training.loop import fit
from experiments.training.loop import make_loss_fn
from experiments.training.runlock import RunLockedError
from experiments.training.runlock import run_lock
from experiments.training.sweeps import ERROR_FILE

log = logging.getLogger(__name__)
register_schemas()  # conf/data and conf/sync start from these dataclasses


def run_name(override_dirname: str, max_length: int = 120) -> str:
    """Folder name of a run from its command-line overrides ("default" for none).

    Long override lists are cut and completed by a hash of the full list, so
    the name stays a valid file name and still identifies the command.
    """
    name = override_dirname.replace("/", "_") or "default"
    if len(name) <= max_length:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[:max_length - 11]}-{digest}"


OmegaConf.register_new_resolver("run_name", run_name, replace=True)


def build_optimizer(optim_cfg: DictConfig) -> optax.GradientTransformation:
    """`clip_by_global_norm` (if `clip_norm`) then the optimizer at the scheduled learning rate."""
    make_optimizer = hydra.utils.instantiate(optim_cfg.optimizer)
    schedule = hydra.utils.instantiate(optim_cfg.schedule)
    transforms = [make_optimizer(learning_rate=schedule)]
    if optim_cfg.get("clip_norm") is not None:
        transforms.insert(0, optax.clip_by_global_norm(optim_cfg.clip_norm))
    return optax.chain(*transforms)


def build_datasets(cfg: DictConfig) -> tuple[ArrayDataset, ArrayDataset]:
    """Synthetic examples (`data.name == synthetic`) or windows of a corpus (any corpus config)."""
    if cfg.data.get("name") == "synthetic":
        return synthetic_datasets(cfg.data, inputs=cfg.inputs, model_cfg=cfg.model, seed=cfg.seed)
    if cfg.inputs == "sheet_audio":
        from experiments.sheet.data import sheet_audio_datasets

        return sheet_audio_datasets(cfg.data, model_cfg=cfg.model)
    from experiments.training.corpus import corpus_datasets

    return corpus_datasets(cfg.data, inputs=cfg.inputs, model_cfg=cfg.model, targets=cfg.get("targets", "melody"),
                           shingle_rate_hz=cfg.get("shingle_rate_hz", 1.0), passage_q=cfg.get("shingle_passage_q"))


def build_loggers(cfg: DictConfig, output_dir: Path) -> list:
    """The metrics file logger, then every logger of the `logger` group, given the resolved run config.

    The run config is passed after instantiation: given to `instantiate`, its own `_target_` nodes
    (optimizer, loss, ...) would be instantiated too.
    """
    loggers: list[Any] = [FileLogger(output_dir)]
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for logger_cfg in (cfg.get("logger") or {}).values():
        loggers.append(hydra.utils.instantiate(logger_cfg, _partial_=True)(run_config=resolved))
    return loggers


class ConfigError(ValueError):
    """A config value out of its range; reported in one line, before any work."""


# trainer option -> smallest allowed value (`devices` and `examples_per_label` may also be null).
TRAINER_MINIMUM = {"steps": 1, "batch_size": 1, "log_every": 1, "val_every": 1, "save_every": 1,
                   "keep_latest": 1, "keep_best": 1, "devices": 1, "examples_per_label": 2}
NULLABLE = ("devices", "examples_per_label")


def check_trainer(trainer_cfg: DictConfig) -> None:
    """Raise `ConfigError` naming the first `trainer.<key>` that is not an integer >= its minimum."""
    for key, minimum in TRAINER_MINIMUM.items():
        value = trainer_cfg.get(key)
        if key in NULLABLE and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"trainer.{key}={value!r}: must be an integer >= {minimum}.")


def model_config(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg.model, resolve=True)


RUN_CONFIG = "run_config.yaml"


def write_run_config(cfg: DictConfig, output_dir: Path) -> None:
    """The resolved config of a run, next to its checkpoints: what loads the network later
    (``experiments.retrieval.dnn_chroma.load_extractor``) reads its model and features there."""
    values = OmegaConf.to_container(cfg, resolve=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    text = OmegaConf.to_yaml(OmegaConf.create(values))
    cache.atomic_write(output_dir / RUN_CONFIG, lambda tmp: tmp.write_text(text))


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Train as `cfg` says; returns (final metrics, built objects).

    Bad `trainer` values are refused before any work, and a run folder in use
    by another run is refused (`RunLockedError`). With several processes
    (`distributed`), all of them train and only process 0 holds the lock and
    writes logs. Loggers and checkpoint managers are closed in `finally`, so a
    failing run leaves its files consistent and a sweep goes on to the next run.
    """
    check_trainer(cfg.trainer)
    try:
        several = parallel.initialize_distributed(**OmegaConf.to_container(cfg.distributed, resolve=True))
    except parallel.DistributedConfigError as error:
        raise ConfigError(str(error)) from None
    if several and cfg.trainer.devices is not None:
        raise ConfigError("trainer.devices must be null with several processes: the mesh spans all their devices.")
    with parallel.main_process_only(run_lock(cfg.paths.output_dir)):
        return _train(cfg)


def _train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    output_dir = Path(cfg.paths.output_dir)
    mesh = parallel.data_mesh(cfg.trainer.devices, global_devices=True)
    if cfg.trainer.batch_size % mesh.size:
        raise ValueError(f"trainer.batch_size={cfg.trainer.batch_size} is not divisible by {mesh.size} devices.")
    model = build_model(cfg.model, cfg.seed)
    optimizer = nnx.Optimizer(model, build_optimizer(cfg.optim), wrt=nnx.Param)
    loss_fn = make_loss_fn(hydra.utils.instantiate(cfg.loss))
    train_set, val_set = build_datasets(cfg)
    log.info("%s: %s, %d parameters, %d train / %d val examples, %d device(s)", cfg.task_name,
             cfg.model._target_, models.count_params(model), len(train_set), len(val_set), mesh.size)
    checkpoints = Checkpoints(cfg.paths.checkpoint_dir, model_config(cfg), data_key=data_key(cfg.data),
                              save_every=cfg.trainer.save_every,
                              keep_latest=cfg.trainer.keep_latest, keep_best=cfg.trainer.keep_best)
    loggers: list = []
    try:
        if parallel.is_main_process():
            loggers = build_loggers(cfg, output_dir)
            write_run_config(cfg, output_dir)
        result = fit(
            model, optimizer, loss_fn, task=cfg.task, train_set=train_set, val_set=val_set,
            checkpoints=checkpoints, loggers=loggers, mesh=mesh,
            config=LoopConfig(steps=cfg.trainer.steps, batch_size=cfg.trainer.batch_size,
                              log_every=cfg.trainer.log_every, val_every=cfg.trainer.val_every,
                              seed=cfg.seed, examples_per_label=cfg.trainer.get("examples_per_label"),
                              progress=cfg.trainer.progress,
                              description=f"train {cfg.task_name}"),
        )
    finally:
        for logger in loggers:
            logger.close()
        checkpoints.close()
    metrics = {**result.metrics, "train/seconds": result.seconds, "train/start_step": result.start_step}
    log.info("%s done: %s", cfg.task_name, metrics)
    return metrics, {"model": model, "optimizer": optimizer, "checkpoints": checkpoints}


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns `cfg.optimized_metric` (NaN for a failed job of a sweep).

    A bad config value or a run folder in use ends a single run with one line and exit status 2. In a
    sweep a failing job records its traceback in `error.txt` and the others go
    on; `experiments.training.sweeps.SweepSummary` names it at the end.
    """
    error_file = Path(cfg.paths.output_dir, ERROR_FILE)
    error_file.unlink(missing_ok=True)  # a rerun of a job that failed before
    try:
        metrics, _ = train(cfg)
    except Exception as error:
        if not _in_sweep():
            if isinstance(error, (ConfigError, RunLockedError, CheckpointMismatchError)):
                print(f"error: {error}", file=sys.stderr)
                raise SystemExit(2) from None
            raise
        log.error("run failed:\n%s", traceback.format_exc())
        error_file.write_text(traceback.format_exc())
        return float("nan")
    return metrics.get(cfg.optimized_metric) if cfg.get("optimized_metric") else None


if __name__ == "__main__":
    workers.use_all_cores()  # renders and features over every core (this module is guarded)
    main()
