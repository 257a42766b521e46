"""The evaluation app (experiments.eval): a trained run's checkpoint scored on the validation set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import open_dict

from experiments import eval as eval_app
from experiments import train as train_app
from experiments.config import compose
from experiments.training.checkpoints import CheckpointMismatchError
from tests.experiments.train_helpers import TINY_RUN, compose_train

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = ["experiment=deep_chroma"]


def compose_eval(output_dir: Path, overrides) -> object:
    cfg = compose([*TINY_RUN, *EXPERIMENT, *overrides], config_name="eval")
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step run: its folder and final validation metrics (step 2 is both best and latest)."""
    run = tmp_path_factory.mktemp("run")
    metrics, _ = train_app.train(compose_train(run, EXPERIMENT))
    return run, metrics


@pytest.mark.parametrize("where", ["run folder", "checkpoints", "best step", "latest"])
def test_scores_equal_those_of_the_training_run(trained, tmp_path, where):
    run, metrics = trained
    path, choice = {"run folder": (run, "best"), "checkpoints": (run / "checkpoints", "best"),
                    "best step": (run / "checkpoints" / "best" / "2", "best"),
                    "latest": (run, "latest")}[where]
    result = eval_app.evaluate(compose_eval(tmp_path, [f"ckpt_path={path}", f"checkpoint={choice}"]))
    assert result["step"] == 2 and result["checkpoint"].endswith(f"{choice}/2")
    assert result["val/loss"] == pytest.approx(metrics["val/loss"], rel=1e-6)
    assert result["val/score"] == pytest.approx(metrics["val/score"], abs=1e-6)


def test_a_missing_run_or_another_model_is_refused(trained, tmp_path):
    run, _ = trained
    with pytest.raises(train_app.ConfigError, match="does not exist: train first"):
        eval_app.evaluate(compose_eval(tmp_path, [f"ckpt_path={tmp_path / 'nowhere'}"]))
    with pytest.raises(train_app.ConfigError, match="holds no checkpoints/best"):
        eval_app.evaluate(compose_eval(tmp_path, [f"ckpt_path={tmp_path}"]))
    with pytest.raises(CheckpointMismatchError, match="another model config"):
        eval_app.evaluate(compose_eval(tmp_path, [f"ckpt_path={run}", "model.hidden=[8]"]))


def test_the_command_finds_the_run_of_the_same_overrides(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "XLA_FLAGS": ""}
    overrides = [*TINY_RUN, "experiment=deep_chroma", f"paths.log_dir={tmp_path}"]

    def run(app: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", f"experiments.{app}", *overrides, *extra], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    assert run("train").returncode == 0
    done = run("eval")
    assert done.returncode == 0, done.stderr[-2000:]
    (written,) = tmp_path.glob("deep_chroma/eval/*/eval.json")
    assert json.loads(written.read_text())["step"] == 2 and "val/loss = " in done.stdout
    refused = run("eval", f"ckpt_path={tmp_path / 'missing'}")
    assert refused.returncode == 2 and "does not exist" in refused.stderr and "Traceback" not in refused.stderr
