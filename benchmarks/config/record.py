"""A run's ``config.yaml``: the resolved configuration, with the schema version that wrote it.

Records are read back through :func:`read_record`, which keeps older runs usable when the schema grows: keys
the record's version did not have take that version's defaults, and the run's hash is computed under them
(:func:`~benchmarks.config.config_hash`), as Lightning migrates old checkpoints instead of refusing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import write_yaml
from . import RunConfig, config_hash, legacy_hash, load_config, migrate, read_yaml
from .coerce import to_dict
from .schema import SCHEMA_VERSION

RECORD = "config.yaml"


@dataclass(frozen=True)
class RunRecord:
    """``settings``: the recorded configuration with the keys its ``version`` lacked filled in (pass it to
    :func:`~benchmarks.config.load_config`); ``hash``: the run's configuration hash."""

    settings: dict[str, Any]
    version: int
    hash: str


def write_record(run_dir: Path, config: RunConfig) -> str:
    """Write ``run_dir/config.yaml`` under the current schema version; returns the run's hash."""
    write_yaml(Path(run_dir) / RECORD, {"schema_version": SCHEMA_VERSION, **to_dict(config)})
    return config_hash(config)


def read_record(run_dir: Path) -> RunRecord:
    """The configuration recorded in ``run_dir/config.yaml``, migrated to the current schema."""
    path = Path(run_dir) / RECORD
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory: {RECORD} is missing")
    raw = read_yaml(path, "run record") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    version = raw.pop("schema_version", 0)
    if not isinstance(version, int) or not 0 <= version <= SCHEMA_VERSION:
        raise ConfigError(f"{path}: invalid value {version!r} for 'schema_version'; this code reads versions "
                          f"0 to {SCHEMA_VERSION}")
    settings = migrate(raw, version)
    try:
        config, _ = load_config(settings)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return RunRecord(settings, version, legacy_hash(raw) if version == 0 else config_hash(config, version))
