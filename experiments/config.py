"""One configuration system: dataclasses are the schemas of ``conf/``.

The corpus (with its performance ranges and features), synthetic data, synchronization and
search configs are dataclasses. :func:`register_schemas` stores them in Hydra's ConfigStore, and
the YAML files of ``conf/data``, ``conf/sync`` and ``conf/search`` start from them
(``defaults: [corpus_schema]``), so Hydra checks every key and type when it composes, before any work:

    python -m experiments.train data.max_pieces=abc      # error: could not be converted to Integer
    python -m experiments.reproduce data.tempo=2         # error: Key 'tempo' not in 'CorpusConfig'

:func:`from_config` turns such a node (or a plain dict: a manifest, a test's options) into the
dataclass with the same checks. Models are ``_target_`` nodes (``conf/model``), built by
:func:`build_model`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, TypeVar

from omegaconf import DictConfig, OmegaConf

__all__ = ["CONF", "build_model", "compose", "from_config", "register_schemas"]

CONF = Path(__file__).resolve().parents[1] / "conf"
T = TypeVar("T")


def _tuples(value: Any) -> Any:
    """OmegaConf returns lists for tuple fields: back to tuples, as the dataclasses declare them."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            setattr(value, field.name, _tuples(getattr(value, field.name)))
        return value
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def from_config(cls: type[T], node: Mapping[str, Any] | DictConfig | T) -> T:
    """The dataclass ``cls`` from a config node, checked as Hydra checks it.

    Args:
      cls: a config dataclass (e.g. ``CorpusConfig``); missing keys take its defaults.
      node: a ``DictConfig`` (e.g. ``cfg.data``), a plain mapping, or already a ``cls``.

    Raises:
      omegaconf.errors.ConfigKeyError: a key that ``cls`` does not have.
      omegaconf.errors.ValidationError: a value of the wrong type.
    """
    if isinstance(node, cls):
        return node
    if isinstance(node, DictConfig):  # as plain values: its schema may be this class under another module name
        node = OmegaConf.to_container(node, resolve=True)  # (``__main__`` when run with ``python -m``)
    merged = OmegaConf.merge(OmegaConf.structured(cls), node)
    return _tuples(OmegaConf.to_object(merged))


def register_schemas() -> None:
    """Store the config dataclasses in Hydra's ConfigStore (idempotent).

    ``data/corpus_schema``, ``data/synthetic_schema``, ``sync/sync_schema`` and ``search/search_schema``:
    the YAML files of those groups list them first in their defaults.
    """
    from hydra.core.config_store import ConfigStore

    from experiments.data.corpus import CorpusConfig
    from experiments.search import SearchConfig
    from experiments.sync import SyncConfig
    from experiments.training.synthetic import SyntheticConfig

    store = ConfigStore.instance()
    store.store(group="data", name="corpus_schema", node=CorpusConfig)
    store.store(group="data", name="synthetic_schema", node=SyntheticConfig)
    store.store(group="sync", name="sync_schema", node=SyncConfig)
    store.store(group="search", name="search_schema", node=SearchConfig)


def compose(overrides: list[str] | tuple[str, ...] = (), config_name: str | None = None, **options) -> DictConfig:
    """Compose ``conf/`` outside an app, e.g. ``compose(["+data=tiny"]).data`` or
    ``compose(["experiment=ctc_chroma", "debug=tiny"], "train")``; ``options`` go to Hydra's ``compose``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_schemas()
    if GlobalHydra.instance().is_initialized():  # inside one of the apps, which compose this same tree
        return hydra_compose(config_name=config_name, overrides=list(overrides), **options)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides), **options)


def build_model(node: Mapping[str, Any] | DictConfig, seed: int):
    """The Flax model that a ``_target_`` node names (``conf/model``), parameters initialised from ``seed``.

    Example: ``build_model({"_target_": "models.DeepChroma", "num_bins": 120}, seed=0)``;
    ``nnx.eval_shape(lambda: build_model(node, seed))`` gives its abstract structure.
    """
    from flax import nnx
    from hydra.utils import instantiate

    return instantiate(node, _convert_="all", rngs=nnx.Rngs(params=seed))
