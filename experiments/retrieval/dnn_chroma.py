"""Learned chroma for the theme-retrieval table (the seed's DNN rows, plus soft-DTW).

Each variant is the chroma CNN of :mod:`models` trained by
``python -m experiments.train experiment=<name>`` on the embedded corpus
(Zalkow & Müller 2021: strong alignment, linear scaling, CTC; Krause, Weiß &
Müller 2023: soft-DTW). :func:`trained_extractors` trains each one for a few
steps (or resumes it: runs live in ``run_root/<data>-<hash of the data config>/<name>-<hash of
the model, loss, optimizer and targets>``, so a second call with the same folder and configs only
loads the checkpoints, and another config trains afresh instead of failing on them) and wraps the network as a
``chroma_fn(audio, sr) -> (T, 12)`` for :func:`experiments.retrieval.theme.chroma_database`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from experiments import features
from experiments.config import compose, from_config
from experiments.retrieval.tempo import scale_tempo
from experiments.training.datasets import data_key

VARIANTS = {  # table row -> training experiment (conf/experiment/)
    "DNN (CTC)": "ctc_chroma",
    "DNN (linear scaling)": "linear_scaling_chroma",
    "DNN (strong alignment)": "strong_chroma",
    "DNN (soft-DTW)": "soft_dtw_chroma",
}


def run_key(cfg) -> str:
    """Short hash of what shapes a trained network besides its data and its number of steps: model,
    loss, optimizer, targets, batches (and the shingles of a shingle embedder)."""
    from omegaconf import OmegaConf

    from experiments.data import cache

    keys = ("model", "loss", "optim", "targets", *sorted(key for key in cfg if key.startswith("shingle_")))
    parts = {key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
             for key in keys}
    parts["batches"] = (cfg.trainer.batch_size, cfg.trainer.get("examples_per_label"))
    return cache.config_hash(parts, length=8)


def train_config(experiment: str, data: str, steps: int, output_dir: Path, overrides=()):
    """The composed training config of one variant, writing into ``output_dir``: validated on the
    val pieces 4 times, the best of those checkpoints kept."""
    from omegaconf import open_dict

    validations = f"trainer.val_every={max(1, steps // 4)}"
    cfg = compose([f"experiment={experiment}", f"data={data}", "logger=none", f"trainer.steps={steps}",
                   validations, f"trainer.save_every={steps}", *overrides], "train")
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


@dataclasses.dataclass(frozen=True)
class LearnedChroma:
    """A trained chroma network as a :data:`~experiments.retrieval.theme.ChromaExtractor`.

    ``LearnedChroma(audio, sr)`` computes the HCQT and applies the network;
    :meth:`from_features` starts from an HCQT computed (and cached) with ``features``,
    so several networks share one feature pass over a corpus.

    Attributes:
      apply: jitted network, ``(T, H, F)`` HCQT padded in time and its true length ``n`` ->
        ``(T, K)`` logits, those of the first ``n`` frames as without the padding.
      features: the HCQT settings the network was trained on.
      rate_hz: output rate of the chroma.
      pad_multiple: inputs are padded to a multiple of this many frames, so that a corpus of
        recordings of many lengths compiles a few shapes (compiling one per length took most
        of the time).
    """

    apply: Callable[[jax.Array, jax.Array], jax.Array]
    features: features.FeatureConfig
    rate_hz: float = 10.0
    pad_multiple: int = 128

    def from_features(self, hcqt: np.ndarray) -> np.ndarray:
        """Chroma posteriors ``(T, 12)`` at ``rate_hz`` from an HCQT ``(T, H, F)``.

        A 13-class (CTC) head gives softmax probabilities without the blank
        (class 0); a 12-class head gives sigmoid probabilities.
        """
        frames = len(hcqt)
        padding = -frames % self.pad_multiple
        padded = np.pad(np.asarray(hcqt, np.float32), ((0, padding),) + ((0, 0),) * (np.ndim(hcqt) - 1))
        logits = self.apply(jnp.asarray(padded), jnp.int32(frames))
        # Posteriors inside the compiled shape; the crop in NumPy (a jnp op per length compiles).
        probs = jax.nn.softmax(logits, axis=-1)[:, 1:] if logits.shape[-1] == 13 else jax.nn.sigmoid(logits)
        return scale_tempo(np.asarray(probs, np.float32)[:frames], self.features.rate_hz, self.rate_hz, 1.0)

    def __call__(self, audio: np.ndarray, sr: int) -> np.ndarray:
        return self.from_features(features.audio_features(audio, sr, self.features))


def chroma_extractor(model, cfg, rate_hz: float = 10.0) -> LearnedChroma:
    """Wrap a trained chroma network: audio -> its HCQT -> chroma posteriors ``(T, 12)`` at ``rate_hz``."""
    config = dataclasses.replace(from_config(features.FeatureConfig, cfg.data.get("features") or {}), kind="hcqt")
    return LearnedChroma(jax.jit(lambda x, n: model(x[None], lengths=n[None])[0]), config, rate_hz)


def train_run(experiment: str, data: str, steps: int, run_root: Path, overrides=()) -> Path:
    """Train (or resume) ``experiment`` for ``steps`` steps on corpus ``data``; its run folder
    ``run_root/<data key>/<experiment>-<run key>``."""
    from omegaconf import open_dict

    from experiments.train import train

    cfg = train_config(experiment, data, steps, Path(run_root), overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(Path(run_root) / data_key(cfg.data) / f"{experiment}-{run_key(cfg)}")
    logging.getLogger(__name__).info("training %s for %d steps on %s", experiment, steps, data)
    train(cfg)
    return Path(cfg.paths.output_dir)


def trained_extractors(data: str, steps: int, run_root: Path, *, overrides=()) -> Mapping[str, LearnedChroma]:
    """Train (or resume) every variant for ``steps`` steps on corpus ``data``; the chroma extractors of
    their checkpoints with the best validation score."""
    return {row: load_extractor(train_run(experiment, data, steps, run_root, overrides))
            for row, experiment in VARIANTS.items()}


class NoTrainedNetworkError(FileNotFoundError):
    """No run folder with a trained chroma network where one was looked for."""


TRAIN_COMMAND = "python -m experiments.train experiment=ctc_chroma data=small"
RUN_ROOTS = (Path("reports/latest/training"), Path("logs/ctc_chroma/runs"))  # the report's, then the train app's


def find_run(roots=RUN_ROOTS, experiment: str = "ctc_chroma", *, command: str = TRAIN_COMMAND,
             option: str = "--checkpoint") -> Path:
    """The newest run folder of ``experiment`` under ``roots`` that holds a best checkpoint.

    Raises:
      NoTrainedNetworkError: naming ``command``, which trains one, and the command-line ``option``
        that names a run folder instead.
    """
    from experiments.train import RUN_CONFIG

    runs = [config.parent for root in map(Path, roots) if root.is_dir() for config in root.rglob(RUN_CONFIG)
            if (config.parent / "checkpoints" / "best").is_dir() and _task_name(config) == experiment]
    if not runs:
        raise NoTrainedNetworkError(
            f"no trained network ({experiment}) under {', '.join(map(str, roots))}: train one with "
            f"`{command}` (or `python -m experiments.reproduce`), or pass {option} RUN_FOLDER")
    return max(runs, key=lambda run: (run / RUN_CONFIG).stat().st_mtime)


def _task_name(config_path: Path) -> str | None:
    from omegaconf import OmegaConf

    return OmegaConf.load(config_path).get("task_name")


def restore_run(run: str | Path, inputs: str, network: str, command: str = TRAIN_COMMAND):
    """(model with the best checkpoint's weights, run config) of a finished run folder that trained a
    network on ``inputs``.

    Raises:
      NoTrainedNetworkError: the folder holds no ``run_config.yaml`` or no best checkpoint (the message
        names ``command``), or its network reads other inputs (it is not a ``network``).
    """
    from omegaconf import OmegaConf

    from experiments.eval import restore_model
    from experiments.train import RUN_CONFIG

    run = Path(run)
    if not (run / RUN_CONFIG).is_file() or not (run / "checkpoints" / "best").is_dir():
        raise NoTrainedNetworkError(f"{run} is not a finished training run (no {RUN_CONFIG} or checkpoints/best): "
                                    f"train one with `{command}`")
    cfg = OmegaConf.load(run / RUN_CONFIG)
    if cfg.get("inputs") != inputs:
        raise NoTrainedNetworkError(f"{run} trained a {cfg.get('task_name')} network on {cfg.get('inputs')}, "
                                    f"not a {network}")
    model, _ = restore_model(cfg, run / "checkpoints")
    return model, cfg


def load_extractor(run: str | Path, rate_hz: float = 10.0) -> LearnedChroma:
    """The chroma network of a run folder (``experiments.train``'s or the report's), best checkpoint.

    Raises:
      NoTrainedNetworkError: see :func:`restore_run`.
    """
    return chroma_extractor(*restore_run(run, "hcqt", "chroma network on the HCQT"), rate_hz)
