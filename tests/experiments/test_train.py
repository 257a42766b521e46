"""The training app: every experiment runs, resume equals an uninterrupted run, sharding, bad input."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from hydra.errors import ConfigCompositionException
from hydra.errors import MissingConfigException

from experiments import train as train_app
from experiments.config import build_model
from experiments.config import compose
from experiments.training import loop
from experiments.training import parallel
from experiments.training import sweeps
from experiments.training import synthetic
from experiments.training.checkpoints import CheckpointMismatchError
from tests.experiments.train_helpers import CONF_DIR
from tests.experiments.train_helpers import EXPERIMENTS
from tests.experiments.train_helpers import TINY_RUN
from tests.experiments.train_helpers import compose_train

ROOT = Path(CONF_DIR).parent


def _params(model):
    return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))


class TestExperiments:
    def test_all_listed(self):
        assert set(EXPERIMENTS) == {
            "ctc_chroma", "strong_chroma", "linear_scaling_chroma", "soft_dtw_chroma", "deep_chroma",
            "shingle_embedder_6", "shingle_embedder_12", "shingle_embedder_30", "sheet_audio",
        }

    # The 6- and 30-dim embedders differ from the 12-dim one only in a size (test_shingle_dims);
    # sheet_audio trains on engraved corpus pieces (tests/experiments/test_sheet.py).
    @pytest.mark.parametrize("experiment", [e for e in EXPERIMENTS if e not in ("shingle_embedder_6",
                                                                                "shingle_embedder_30",
                                                                                "sheet_audio")])
    def test_runs_two_steps(self, experiment, tmp_path):
        cfg = compose_train(tmp_path, [f"experiment={experiment}"])
        metrics, objects = train_app.train(cfg)
        assert np.isfinite(metrics["val/loss"]) and 0.0 <= metrics["val/score"] <= 1.0
        assert int(objects["optimizer"].step[...]) == 2
        rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows if "train/loss" in r] == [1, 2]
        assert (tmp_path / "metrics.csv").read_text().startswith("step,")
        assert sorted(p.name for p in (tmp_path / "checkpoints" / "latest").iterdir()) == ["2"]
        assert sorted(p.name for p in (tmp_path / "checkpoints" / "best").iterdir()) == ["2"]

    def test_shingle_dims(self, tmp_path):
        for dim in (6, 12, 30):
            cfg = compose_train(tmp_path, [f"experiment=shingle_embedder_{dim}"])
            assert cfg.model.embedding_dim == dim and cfg.task == "embedding"
            model = build_model(cfg.model, cfg.seed)
            assert model(np.zeros((2, 240), np.float32)).shape == (2, dim)

    def test_tiny_corpus(self, tmp_path, monkeypatch):
        monkeypatch.setenv("SDTW_RETRIEVAL_CACHE", str(tmp_path / "cache"))
        cfg = compose_train(tmp_path / "run", ["experiment=ctc_chroma", "data=tiny", "model.num_harmonics=6",
                                               "model.num_bins=216"])
        metrics, _ = train_app.train(cfg)
        assert np.isfinite(metrics["val/loss"])


class TestResume:
    def test_interrupted_equals_uninterrupted(self, tmp_path, monkeypatch):
        overrides = ["experiment=deep_chroma", "trainer.steps=5", "trainer.save_every=2", "model.dropout=0.5"]
        _, reference = train_app.train(compose_train(tmp_path / "straight", overrides))

        make_train_step = loop.make_train_step

        def crashing_after_three(loss_fn):
            step_fn, calls = make_train_step(loss_fn), []

            def wrapped(*args):
                if len(calls) == 3:
                    raise KeyboardInterrupt("simulated interruption")
                calls.append(1)
                return step_fn(*args)
            return wrapped

        cfg = compose_train(tmp_path / "resumed", overrides)
        monkeypatch.setattr(loop, "make_train_step", crashing_after_three)
        with pytest.raises(KeyboardInterrupt):
            train_app.train(cfg)
        monkeypatch.setattr(loop, "make_train_step", make_train_step)
        log_file = tmp_path / "resumed" / "metrics.jsonl"
        with log_file.open("a") as f:
            f.write('{"step": 4, "train/lo')  # torn by a kill in the middle of an append
        metrics, resumed = train_app.train(cfg)

        assert metrics["train/start_step"] == 2  # latest checkpoint before the crash at step 4
        # Rows after the restored step are dropped and logged again: each step once, the torn line gone.
        rows = [json.loads(line) for line in log_file.read_text().splitlines()]
        assert [r["step"] for r in rows if "train/loss" in r] == [1, 2, 3, 4, 5]
        assert (tmp_path / "resumed" / "metrics.csv").read_text().count("\n3,") == 1
        assert int(resumed["optimizer"].step[...]) == 5
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                     _params(reference["model"]), _params(resumed["model"]))

    def test_other_model_config_refused(self, tmp_path):
        train_app.train(compose_train(tmp_path, ["experiment=deep_chroma"]))
        with pytest.raises(CheckpointMismatchError, match="another model config.*hidden"):
            train_app.train(compose_train(tmp_path, ["experiment=deep_chroma", "model.hidden=[8]"]))

    def test_other_data_refused(self, tmp_path):
        train_app.train(compose_train(tmp_path, ["experiment=deep_chroma"]))
        with pytest.raises(CheckpointMismatchError, match="trained on other data .*synthetic-"):
            train_app.train(compose_train(tmp_path, ["experiment=deep_chroma", "data.seed=7"]))
        train_app.train(compose_train(tmp_path, ["experiment=deep_chroma"]))  # the same data resumes

    def test_nan_loss_stops_with_step_and_checkpoint(self, tmp_path, monkeypatch):
        real = synthetic.chroma_examples

        def poisoned(*args, **kwargs):
            examples = real(*args, **kwargs)
            examples["inputs"][:] = np.nan
            return examples

        monkeypatch.setattr(synthetic, "chroma_examples", poisoned)
        with pytest.raises(loop.NonFiniteLossError, match=r"at step 1; .*Last good checkpoint: none"):
            train_app.train(compose_train(tmp_path, ["experiment=strong_chroma"]))


def _damage(step_dir: Path, kind: str) -> None:
    """Damage a saved state as a disk or a killed copy would."""
    chunk = next(p for p in sorted((step_dir / "state").glob("model.*kernel/*")) if not p.name.startswith("."))
    data = bytearray(chunk.read_bytes())
    if kind == "flipped bytes":
        for i in range(len(data) // 3, len(data) // 3 + 8):
            data[i] ^= 0xFF
        chunk.write_bytes(bytes(data))
    elif kind == "truncated chunk":
        chunk.write_bytes(bytes(data[: len(data) // 2]))
    else:
        (step_dir / "state" / "_METADATA").write_text("")


class TestCheckpointIntegrity:
    OVERRIDES = ["experiment=deep_chroma", "trainer.save_every=1", "trainer.keep_latest=3"]

    @pytest.mark.parametrize("kind", ["flipped bytes", "truncated chunk", "emptied metadata"])
    def test_damaged_latest_is_skipped_for_the_newest_intact(self, kind, tmp_path, caplog):
        train_app.train(compose_train(tmp_path, [*self.OVERRIDES, "trainer.steps=3"]))
        _damage(tmp_path / "checkpoints" / "latest" / "3", kind)
        with caplog.at_level(logging.WARNING, logger="experiments.training.checkpoints"):
            metrics, objects = train_app.train(compose_train(tmp_path, [*self.OVERRIDES, "trainer.steps=4"]))
        assert metrics["train/start_step"] == 2
        assert "resuming from step 2; skipped damaged checkpoint(s)" in caplog.text and "step 3 (" in caplog.text
        assert (tmp_path / "checkpoints" / "corrupt" / "latest-3").is_dir()
        assert int(objects["optimizer"].step[...]) == 4
        assert sorted(p.name for p in (tmp_path / "checkpoints" / "latest").iterdir()) == ["2", "3", "4"]

    def test_a_diverging_run_stops_before_saving_nan(self, tmp_path):
        """A learning rate of 1e30: the run stops with an error, and no checkpoint holds a NaN."""
        from experiments.training.checkpoints import NonFiniteStateError

        overrides = ["experiment=shingle_embedder_12", "optim.schedule.peak_value=1e30", "optim.clip_norm=null",
                     "trainer.steps=4", "trainer.save_every=1"]
        with pytest.raises((loop.NonFiniteLossError, NonFiniteStateError)):
            train_app.train(compose_train(tmp_path, overrides))
        import orbax.checkpoint as ocp

        for step_dir in (tmp_path / "checkpoints" / "latest").glob("[0-9]*"):
            with ocp.CheckpointManager((tmp_path / "checkpoints" / "latest").absolute()) as manager:
                state = manager.restore(int(step_dir.name), args=ocp.args.Composite(
                    state=ocp.args.StandardRestore())).state
            assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state) if np.issubdtype(
                np.asarray(leaf).dtype, np.inexact))

    def test_non_finite_state_is_never_saved(self, tmp_path):
        from experiments.training.checkpoints import Checkpoints, NonFiniteStateError

        state = {"model": {"kernel": np.array([1.0, np.nan], np.float32)}, "optimizer": {"step": np.int32(3)}}
        checkpoints = Checkpoints(tmp_path, {"name": "x"}, save_every=1)
        try:
            with pytest.raises(NonFiniteStateError, match=r"not finite at step 3 \(\['model'\]\['kernel'\]\)"):
                checkpoints.save_latest(3, state)
            assert checkpoints.latest.all_steps() == []
        finally:
            checkpoints.close()


def test_a_run_folder_in_use_is_refused(tmp_path):
    """Two identical commands at once: the second is refused, naming the first; the lock goes with it."""
    from experiments.training.runlock import RunLockedError, run_lock

    cfg = compose_train(tmp_path, ["experiment=deep_chroma"])
    with run_lock(tmp_path):
        with pytest.raises(RunLockedError, match=f"in use by a training run \\(pid {os.getpid()} on "):
            train_app.train(cfg)
    assert not (tmp_path / "metrics.jsonl").exists()
    train_app.train(cfg)  # released


class TestSharding:
    def test_two_devices_equal_one(self):
        assert len(jax.local_devices()) >= 2, "tests/conftest.py sets 2 fake CPU devices"
        cfg = {"_target_": "models.DeepChroma", "num_bins": 24, "context": 3, "hidden": (16,), "dropout": 0.5}
        examples = synthetic.chroma_examples(4, seed=0, num_frames=16, inputs="logfreq", num_bins=24)
        from experiments.training.objectives import strong_bce
        import optax

        results = []
        for devices in (1, 2):
            mesh = parallel.data_mesh(devices)
            model = build_model(cfg, seed=0)
            optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
            for obj in (model, optimizer):
                nnx.update(obj, parallel.replicate(nnx.state(obj), mesh))
            step = loop.make_train_step(loop.make_loss_fn(strong_bce))
            metrics = nnx.MultiMetric(loss=nnx.metrics.Average("loss"))
            batch = parallel.shard_batch(examples, mesh)
            assert len(batch["inputs"].sharding.device_set) == devices
            loss = step(model, optimizer, metrics, batch, jax.random.key(0))
            kernel = model.output.kernel[...]
            assert kernel.sharding.is_fully_replicated
            results.append((float(loss), _params(model)))
        np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                     results[0][1], results[1][1])

    def test_batch_not_divisible(self, tmp_path):
        with pytest.raises(ValueError, match="not divisible by 2 devices"):
            train_app.train(compose_train(tmp_path, ["experiment=deep_chroma", "trainer.batch_size=3"]))


class TestBadConfig:
    def test_unknown_key(self, tmp_path):
        with pytest.raises(ConfigCompositionException, match="trainer.stepz"):
            compose_train(tmp_path, ["trainer.stepz=3"], tiny=False)

    def test_unknown_experiment_lists_options(self, tmp_path):
        with pytest.raises(MissingConfigException, match="ctc_chroma"):
            compose_train(tmp_path, ["experiment=ctc_chromaa"], tiny=False)

    def test_launchers_compose(self, tmp_path):
        for launcher in ("joblib", "slurm"):
            cfg = compose([f"hydra/launcher={launcher}"], "train", return_hydra_config=True)
            assert cfg.hydra.launcher._target_.endswith("Launcher")
        cfg = compose(["hparams_search=ctc_lr"], "train", return_hydra_config=True)
        assert "optim.schedule.peak_value" in cfg.hydra.sweeper.params


class TestMultirun:
    def test_a_failing_job_does_not_stop_the_sweep_but_fails_it(self, tmp_path):
        """A 2-job joblib sweep: the good job trains; the bad one (batch not divisible) records its error,
        and the sweep names it at the end and exits 1."""
        overrides = TINY_RUN + [
            "experiment=deep_chroma", f"paths.log_dir={tmp_path}", "hydra/launcher=joblib",
            "trainer.batch_size=4,3"]
        env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "WANDB_MODE": "disabled"}
        result = subprocess.run([sys.executable, "-m", "experiments.train", "-m", *overrides], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 1, result.stderr[-3000:]
        runs = [p for p in (tmp_path / "deep_chroma" / "multiruns").iterdir() if p.is_dir()]
        assert len(runs) == 2
        (bad,) = [p for p in runs if (p / "error.txt").exists()]
        (good,) = [p for p in runs if p != bad]
        assert "trainer.batch_size=3 is not divisible" in (bad / "error.txt").read_text()
        assert (good / "metrics.csv").exists() and (good / "checkpoints" / "latest" / "2").exists()
        summary = result.stderr[result.stderr.index("sweep: 1 job(s) failed:"):]
        assert f"{bad.name}: ValueError: trainer.batch_size=3 is not divisible by 2 devices." in summary
        assert "is validated against ConfigStore schema" not in result.stderr  # no deprecation noise

    def test_summary_counts_only_this_sweep(self, tmp_path):
        old, new = tmp_path / "a=1", tmp_path / "a=2"
        for folder, message in ((old, "ValueError: old"), (new, "KeyError: 'x'")):
            folder.mkdir()
            (folder / sweeps.ERROR_FILE).write_text(f"Traceback (most recent call last):\n  ...\n{message}\n")
        os.utime(old / sweeps.ERROR_FILE, (1.0, 1.0))
        failed = sweeps.failed_jobs(tmp_path, since=1000.0)
        assert [(job.folder.name, job.error) for job in failed] == [("a=2", "KeyError: 'x'")]
        assert "a=2: KeyError: 'x'" in sweeps.summary(failed)


class TestLoggers:
    def test_default_logger_is_wandb_offline(self, tmp_path, monkeypatch):
        """The default `logger=wandb`: an offline run in the run folder holding the resolved config."""
        monkeypatch.delenv("WANDB_MODE", raising=False)
        cfg = compose_train(tmp_path, ["experiment=deep_chroma"], logger="wandb")
        assert cfg.logger.wandb.mode == "offline"
        train_app.train(cfg)
        (run,) = (tmp_path / "wandb").glob("offline-run-*")
        (records,) = run.glob("run-*.wandb")  # the config and every logged row, for `wandb sync`
        # wandb's service process may still be flushing the file when finish() returns.
        deadline = time.monotonic() + 60
        while not (b"deep_chroma" in records.read_bytes() and b"val/score" in records.read_bytes()):
            assert time.monotonic() < deadline, f"{records} lacks the run config or the metrics"
            time.sleep(0.2)


class TestTrainerOptions:
    @pytest.mark.parametrize("override", ["trainer.steps=-5", "trainer.steps=0", "trainer.batch_size=0",
                                          "trainer.val_every=0", "trainer.devices=0",
                                          "trainer.examples_per_label=1"])
    def test_out_of_range_refused_before_any_work(self, override, tmp_path):
        key = override.split("=")[0]
        with pytest.raises(train_app.ConfigError, match=f"{key}=.*must be an integer >= [12]"):
            train_app.train(compose_train(tmp_path, ["experiment=deep_chroma", override]))
        assert not (tmp_path / "checkpoints").exists()

    def test_one_line_and_exit_2_on_the_command_line(self, tmp_path):
        result = subprocess.run(
            [sys.executable, "-m", "experiments.train", *TINY_RUN, "experiment=deep_chroma", "trainer.steps=-5",
             f"paths.log_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={**os.environ, "WANDB_MODE": "disabled"})
        assert result.returncode == 2
        assert "trainer.steps=-5: must be an integer >= 1." in result.stderr
        assert "Traceback" not in result.stderr


class TestLabelSampler:
    LABELS = np.repeat(np.arange(10), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])  # label 0 has a single example

    def test_batches_of_labels_with_k_examples_each_drawn_from_seed_and_step(self):
        from experiments.training.datasets import LabelSampler

        sampler = LabelSampler(self.LABELS, batch_size=12, per_label=3, seed=5)
        batch = sampler.indices(7)
        labels, counts = np.unique(self.LABELS[batch], return_counts=True)
        assert len(batch) == 12 and list(counts) == [3, 3, 3, 3] and 0 not in labels
        np.testing.assert_array_equal(batch, LabelSampler(self.LABELS, 12, 3, seed=5).indices(7))  # resumable
        assert not np.array_equal(batch, sampler.indices(8))

    def test_k_is_capped_at_half_a_batch_and_must_divide_it(self):
        from experiments.training.datasets import ArrayDataset, LabelSampler, make_sampler

        data = ArrayDataset({"labels": self.LABELS})
        assert len(np.unique(self.LABELS[make_sampler(data, 4, 0, examples_per_label=4).indices(0)])) == 2
        with pytest.raises(ValueError, match="divide the batch size 10"):
            LabelSampler(self.LABELS, batch_size=10, per_label=4, seed=0)
        with pytest.raises(ValueError, match="needs 12 labels with 2 or more examples; the training set has 9"):
            LabelSampler(self.LABELS, batch_size=24, per_label=2, seed=0)


@pytest.mark.slow
def test_kill_9_then_rerun_equals_uninterrupted(tmp_path):
    """The real thing: SIGKILL the process after its first checkpoint, run the same command again."""
    import signal

    import orbax.checkpoint as ocp

    def command(log_dir):
        changed = {"trainer.steps": "300", "trainer.save_every": "20", "trainer.val_every": "100"}
        run = [o for o in TINY_RUN if o.split("=")[0] not in changed]
        return [sys.executable, "-m", "experiments.train", *run, "experiment=deep_chroma", *(f"{k}={v}" for k, v in changed.items()), f"paths.log_dir={log_dir}"]

    env = {**os.environ, "WANDB_MODE": "disabled"}
    subprocess.run(command(tmp_path / "straight"), cwd=ROOT, env=env, check=True, capture_output=True)
    process = subprocess.Popen(command(tmp_path / "killed"), cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list((tmp_path / "killed").glob("**/checkpoints/latest/20")) and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    subprocess.run(command(tmp_path / "killed"), cwd=ROOT, env=env, check=True, capture_output=True)

    def final_params(log_dir):
        (folder,) = list(log_dir.glob("**/checkpoints/latest"))
        with ocp.CheckpointManager(folder.absolute()) as manager:
            assert manager.latest_step() == 300
            return manager.restore(300, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state["model"]

    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 final_params(tmp_path / "straight"), final_params(tmp_path / "killed"))
