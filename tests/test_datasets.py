"""Datasets as one YAML each: built-in files, files named by path, the layouts and suite enum derived from them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks.config import dataset_info, load_config, run_dir_name
from benchmarks.config.dataset import available_datasets, layouts, load_dataset
from benchmarks.errors import ConfigError
from benchmarks.report.suites import SUITES_DIR, load_suite

KITS = {"name": "kits19", "family": "other",
        "layout": {"name": "prepared", "case_pattern": "cases/{id}.h5", "train_lists": ["train.list"],
                   "test_lists": ["test.list"], "spacing": [1.0, 1.0, 1.0], "manifest": "manifest.json"},
        "run": {"labels": 4, "validation": 2, "patch": [64, 64, 64]}}


def test_builtin_datasets_declare_layouts_tables_and_markers() -> None:
    assert {"synthetic", "la", "pancreas_mcnet", "pancreas_coranet", "lung"} <= set(available_datasets())
    assert set(layouts()) == {"la", "pancreas_mcnet", "pancreas_coranet", "prepared"}
    coranet = load_dataset("pancreas_coranet")
    assert coranet.marker_file == "test.txt" and coranet.table_stem == "table_I_pancreas_coranet"
    assert load_dataset("la").info().family == "la" and load_dataset("lung").info().family == "lung"
    assert load_dataset("synthetic").table.number is None and load_dataset("synthetic").table_stem == "table_synthetic"


def test_a_dataset_file_named_by_path(tmp_path: Path) -> None:
    path = tmp_path / "kits19" / "dataset.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(KITS))
    config, _ = load_config({"method": "bcp", "dataset": str(path)})
    assert (config.dataset, config.data_root, config.layout, config.patch) == (str(path), str(path.parent), "prepared",
                                                                               (64, 64, 64))
    assert dataset_info(config).name == "kits19" and config.options["recipe"] == "la"
    assert run_dir_name(config) == Path("kits19/bcp/labels4/seed1337")


def test_bad_dataset_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**KITS, "colour": "blue"}))
    with pytest.raises(ConfigError, match=r"dataset file .*bad.yaml: unknown key 'colour'"):
        load_dataset(str(bad))
    bad.write_text(yaml.safe_dump({**KITS, "name": "kits-19"}))
    with pytest.raises(ConfigError, match="invalid name 'kits-19'"):
        load_dataset(str(bad))
    with pytest.raises(ConfigError, match="unknown dataset 'kits'; available: la, lung"):
        load_config({"dataset": "kits"})


def test_suite_datasets_are_the_dataset_files(tmp_path: Path) -> None:
    spec = yaml.safe_load((SUITES_DIR / "smoke.yaml").read_text())
    spec["datasets"][0]["name"] = "kits"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"datasets/0/name: 'kits' is not one of \['la', 'lung'"):
        load_suite(tmp_path / "s.yaml")
