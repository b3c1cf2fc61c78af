"""Runs survive a schema that grows: hashes and the same-configuration check ignore keys added with defaults,
so an old run still resumes and evaluates (``benchmarks/config/record.py``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from benchmarks.config import RunConfig, config_hash, legacy_hash, load_config
from benchmarks.config.coerce import to_dict
from benchmarks.config.record import read_record
from benchmarks.errors import ConfigError
from benchmarks.evaluate.run import evaluate_run
from benchmarks.train.checkpoint import load_checkpoint
from benchmarks.train.trainer import LATEST, Trainer
from methods.vnet import SupervisedVNet


def test_a_key_added_with_its_default_keeps_the_hash() -> None:
    config, _ = load_config({"method": "lefed", "labels": "4"})
    grown = dataclasses.make_dataclass("RunConfig", [("new_key", int, dataclasses.field(default=3))], bases=(RunConfig,))
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(RunConfig)}
    assert config_hash(grown(**fields)) == config_hash(config)
    assert config_hash(grown(**fields, new_key=4)) != config_hash(config)
    other, _ = load_config({"method": "lefed", "labels": "8"})
    assert config_hash(other) != config_hash(config)


def test_old_record_without_new_keys_resumes_and_evaluates(tiny_synthetic: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = {"dataset": "synthetic", "data_root": str(tiny_synthetic), "filters": 4, "patch": [32, 32, 16],
                 "labels": "4", "iterations": 4, "checkpoint_every": 1, "selection": "last", "device": "cpu",
                 "eval": {"window": [32, 32, 16], "strides": [16, 16, 8]}}
    config, options = load_config(overrides)
    run = tmp_path / "run"
    original = SupervisedVNet.training_step

    def crash_at_two(self, ctx, batch):  # type: ignore[no-untyped-def]
        if ctx.iteration == 2:
            raise KeyboardInterrupt
        original(self, ctx, batch)

    monkeypatch.setattr(SupervisedVNet, "training_step", crash_at_two)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, options, run, progress=False).fit()
    monkeypatch.setattr(SupervisedVNet, "training_step", original)
    # The record as a release before ``eval.lcc`` and the option ``dropout`` existed wrote it.
    record = yaml.safe_load((run / "config.yaml").read_text())
    del record["eval"]["lcc"], record["options"]["dropout"]
    (run / "config.yaml").write_text(yaml.safe_dump(record))
    assert read_record(run).hash == config_hash(config) == load_checkpoint(run / LATEST)["config_hash"]

    Trainer(config, options, run, progress=False).fit()  # resumes: same configuration, same hash
    assert load_checkpoint(run / LATEST)["stage_index"] == 1
    summary = evaluate_run(run, progress=False)
    assert summary["status"] == "completed" and summary["config_hash"] == config_hash(config)

    changed, _ = load_config({**overrides, "eval": {**overrides["eval"], "lcc": True}})
    with pytest.raises(ConfigError, match=r"differing keys: eval\.lcc"):
        Trainer(changed, options, run, progress=False).fit()


def test_records_before_schema_versions_keep_their_hash(tmp_path: Path) -> None:
    config, _ = load_config({"method": "vnet"})
    raw = to_dict(config)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    record = read_record(tmp_path)
    assert record.version == 0 and record.hash == legacy_hash(raw)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"schema_version": 99, **raw}))
    with pytest.raises(ConfigError, match="schema_version"):
        read_record(tmp_path)
