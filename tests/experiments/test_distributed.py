"""Data parallelism over processes (jax.distributed), proven on one machine: two CPU processes
talking through gloo train exactly what one process trains with the same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments import train as train_app
from experiments.training import parallel
from tests.experiments.train_helpers import compose_train

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_command(log_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "experiments.train", "experiment=ctc_chroma", "data=synthetic", "logger=none",
            "debug=smoke", "trainer.steps=20", "trainer.log_every=5", "trainer.val_every=10",
            "trainer.save_every=10", "trainer.progress=false", f"paths.log_dir={log_dir}", *extra]


def run_folders(log_dir: Path) -> list[Path]:
    return sorted((log_dir / "ctc_chroma" / "runs").iterdir())


def final_validation_loss(run: Path) -> float:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "val/loss" in r][-1]["val/loss"]


ENV = {**os.environ, "XLA_FLAGS": "", "PYTHONPATH": str(ROOT)}  # one CPU device per process


def start_pair(log_dir: Path) -> list[subprocess.Popen]:
    """Two processes of one distributed run, coordinated on a free local port."""
    port = free_port()
    return [subprocess.Popen(train_command(log_dir, "distributed.num_processes=2", f"distributed.process_id={i}",
                                           f"distributed.coordinator_address=127.0.0.1:{port}"),
                             cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for i in range(2)]


def finish(pair: list[subprocess.Popen]) -> list[str]:
    outputs = [process.communicate(timeout=600)[0] for process in pair]
    for process, output in zip(pair, outputs):
        assert process.returncode == 0, output[-3000:]
    return outputs


def test_two_processes_train_what_one_process_trains(tmp_path):
    pair = start_pair(tmp_path / "two")
    single = subprocess.run(train_command(tmp_path / "one"), cwd=ROOT, env=ENV, capture_output=True, text=True,
                            timeout=600)
    outputs = finish(pair)
    assert single.returncode == 0, single.stderr[-3000:]
    assert all("2 device(s)" in output for output in outputs)  # one mesh over both processes

    (shared,) = run_folders(tmp_path / "two")  # both processes in one run folder ...
    (alone,) = run_folders(tmp_path / "one")
    assert shared.name == alone.name
    records = (shared / "metrics.jsonl").read_text().splitlines()
    assert len(records) == len(set(records))  # ... and only process 0 wrote its metrics
    assert final_validation_loss(shared) == pytest.approx(final_validation_loss(alone), abs=1e-5)
    assert sorted(p.name for p in (shared / "checkpoints" / "latest").iterdir()) == ["10", "20"]


@pytest.mark.slow
def test_two_processes_resume_from_their_checkpoint(tmp_path):
    finish(start_pair(tmp_path))
    (run,) = run_folders(tmp_path)
    before = final_validation_loss(run)
    outputs = finish(start_pair(tmp_path))  # the same command again: both processes restore step 20
    assert all("'train/start_step': 20" in output for output in outputs)
    assert final_validation_loss(run) == pytest.approx(before, abs=1e-6)


def test_incomplete_distributed_options_are_refused(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=deep_chroma", "distributed.num_processes=2"])
    with pytest.raises(train_app.ConfigError, match="also needs distributed.coordinator_address, "
                                                    "distributed.process_id"):
        train_app.train(cfg)
    cfg = compose_train(tmp_path, ["experiment=deep_chroma", "distributed.num_processes=2",
                                   "distributed.process_id=2", "distributed.coordinator_address=127.0.0.1:1"])
    with pytest.raises(train_app.ConfigError, match=r"process_id=2: must lie in \[0, 2\)"):
        train_app.train(cfg)


def test_one_process_needs_no_coordinator():
    assert parallel.initialize_distributed() is False
    assert parallel.initialize_distributed(num_processes=1) is False


def test_local_rows_of_one_process_are_the_whole_batch():
    mesh = parallel.data_mesh()  # the test session's fake CPU devices, all in this process
    assert parallel.local_rows(8, mesh) == slice(0, 8)
    np.testing.assert_array_equal(parallel.local_part({"x": np.arange(8)}, mesh)["x"], np.arange(8))


def test_the_processes_of_a_run_share_its_folder(tmp_path):
    """Process id, count and coordinator stay out of the run folder's name."""
    from experiments.config import compose

    names = set()
    for i in range(2):
        cfg = compose(["experiment=ctc_chroma", "distributed.num_processes=2", f"distributed.process_id={i}",
                       "distributed.coordinator_address=h:1"], "train", return_hydra_config=True)
        excluded = set(cfg.hydra.job.config.override_dirname.exclude_keys)
        names.add(",".join(o for o in cfg.hydra.overrides.task if o.split("=")[0] not in excluded))
    assert names == {"experiment=ctc_chroma"}
