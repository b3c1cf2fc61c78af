"""Run configuration: precedence, --set parsing, validation, hashing and run names."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.config import available_datasets, config_hash, load_config, parse_sets, run_dir_name
from benchmarks.errors import ConfigError


def test_precedence_defaults_dataset_method_user(tmp_path: Path) -> None:
    config, _ = load_config({"dataset": "la"})
    assert config.patch == (112, 112, 80) and config.eval.strides == (18, 18, 4)  # dataset protocol
    assert (config.iterations, config.labeled_bs, config.unlabeled_bs) == (6000, 4, 0)  # vnet recipe
    assert config.optimizer.lr == 0.01 and config.schedule.step_size == 2500  # defaults
    user = tmp_path / "user.yaml"
    user.write_text("dataset: la\niterations: 100\noptimizer: {lr: 0.1}\n")
    config, _ = load_config(parse_sets(["optimizer.lr=0.2"]), user)
    assert (config.iterations, config.optimizer.lr, config.optimizer.momentum) == (100, 0.2, 0.9)


def test_uniform_budget_unless_iterations_given() -> None:
    assert load_config({"budget": "uniform"})[0].iterations == 15000
    assert load_config({"budget": "uniform", "iterations": 7})[0].iterations == 7


def test_parse_sets_routes_method_options() -> None:
    assert parse_sets(["eval.lcc=true", "norm=instance", "patch=[96,96,96]", "labels=10%"]) == {
        "eval": {"lcc": True}, "options": {"norm": "instance"}, "patch": [96, 96, 96], "labels": "10%"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_sets(["novalue"])


def test_values_are_coerced_and_validated() -> None:
    config, options = load_config(parse_sets(["optimizer.lr=1e-3", "eval.lcc=yes", "dropout=false", "labels=16"]))
    assert config.optimizer.lr == 0.001 and config.eval.lcc is True and config.labels == "16"
    assert options.dropout is False
    for pairs, named in [
        (["eval.empty_policy=zero"], "eval.empty_policy"),
        (["optimizer.lr=-1"], "optimizer.lr"),
        (["eval.window=[96,96]"], "eval.window"),
        (["selection=heldout", "validation=0"], "validation"),
        (["dataset=mars"], "unknown dataset 'mars'"),
        (["norm=layer"], "norm"),
        (["seed=abc"], "seed"),
    ]:
        with pytest.raises(ConfigError, match=named):
            load_config(parse_sets(pairs))


def test_hash_ignores_operational_keys_and_names_runs() -> None:
    a, _ = load_config({"dataset": "la", "labels": 8})
    b, _ = load_config({"dataset": "la", "labels": 8, "num_workers": 4, "device": "cpu"})
    c, _ = load_config({"dataset": "la", "labels": 16})
    assert config_hash(a) == config_hash(b) != config_hash(c)
    assert run_dir_name(a) == Path("la/vnet/labels8/seed1337")
    assert run_dir_name(load_config({"labels": "10%"})[0]) == Path("synthetic/vnet/labels10pct/seed1337")
    lefed, _ = load_config({"method": "lefed", "options": {"variant": "official", "ablation": "IL+DL"}})
    assert run_dir_name(lefed) == Path("synthetic/lefed-official-IL+DL/labels4/seed1337")
    assert {"synthetic", "la", "pancreas_mcnet", "pancreas_coranet", "lung"} <= set(available_datasets())
