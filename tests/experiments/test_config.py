"""One configuration system: the dataclass schemas of conf/, from_config, _target_ models and the apps' defaults."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

import models
from experiments import config, search, sync
from experiments.data import CorpusConfig
from experiments.training.synthetic import SyntheticConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(p.stem for p in (config.CONF / "data").glob("*.yaml")))
def test_every_data_config_is_its_schema(name):
    node = config.compose([f"+data={name}"]).data
    schema = SyntheticConfig if name == "synthetic" else CorpusConfig
    built = config.from_config(schema, node)
    assert built.name == name and isinstance(built, schema)


def test_sync_and_search_defaults_are_the_dataclass_defaults():
    assert sync.default_config() == sync.SyncConfig()
    assert search.default_config() == search.SearchConfig()


def test_the_command_lines_read_their_defaults_from_conf(tmp_path, monkeypatch, capsys):
    conf = tmp_path / "conf"
    shutil.copytree(config.CONF, conf)
    (conf / "sync" / "default.yaml").write_text("defaults: [sync_schema, _self_]\nrate_hz: 25.0\n")
    (conf / "search" / "default.yaml").write_text("defaults: [search_schema, _self_]\ntop: 7\n")
    monkeypatch.setattr(config, "CONF", conf)
    for main in (sync.main, search.main):
        with pytest.raises(SystemExit):
            main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "feature rate in Hz (default: 25.0)" in text and "every recording to the CSV) (default: 7)" in text


def test_a_bad_default_is_refused_naming_the_key(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    shutil.copytree(config.CONF, conf)
    (conf / "sync" / "default.yaml").write_text("defaults: [sync_schema, _self_]\nrate: 25.0\n")
    monkeypatch.setattr(config, "CONF", conf)
    with pytest.raises(ConfigCompositionException, match="Key 'rate' not in 'SyncConfig'"):
        sync.default_config()


def test_from_config_fills_defaults_and_checks_keys_and_types():
    built = config.from_config(sync.SyncConfig, {"weights": [1, 1, 2], "rate_hz": 10})
    assert built == sync.SyncConfig(weights=(1.0, 1.0, 2.0), rate_hz=10.0)  # lists come back as tuples
    assert config.from_config(sync.SyncConfig, built) is built
    with pytest.raises(ConfigKeyError, match="rate"):
        config.from_config(sync.SyncConfig, {"rate": 10})
    with pytest.raises(ValidationError, match="multiscale"):
        config.from_config(sync.SyncConfig, {"multiscale": "sometimes"})


@pytest.mark.parametrize("name, cls", [("ctc_chroma", models.SalienceCNN), ("salience_chroma", models.SalienceCNN),
                                       ("deep_chroma", models.DeepChroma),
                                       ("shingle_embedder", models.ShingleEmbedder)])
def test_models_are_target_nodes(name, cls):
    node = config.compose([f"model={name}", "debug=tiny"], "train").model
    model = config.build_model(node, seed=0)
    assert type(model) is cls and models.count_params(model) > 0


def test_an_unknown_model_class_is_named():
    with pytest.raises(Exception, match="models.ResNet"):
        config.build_model({"_target_": "models.ResNet"}, seed=0)


@pytest.mark.parametrize("overrides, message", [
    (["report.dnn_steps=-1"], "error: report.dnn_steps must be >= 0, got -1"),
    (["debug=smoke", "record=true"], "error: debug=smoke tables mean nothing: they are not recorded"),
    (["data=synthetic"], "error: data=synthetic holds training examples, not recordings"),
])
def test_the_report_app_refuses_bad_options_before_any_work(tmp_path, overrides, message):
    result = subprocess.run([sys.executable, "-m", "experiments.reproduce", f"out={tmp_path}", *overrides],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "SDTW_RETRIEVAL_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "cache").exists()  # nothing was built
