"""Every run of the paper suite gets the recipe its method's spec prescribes on its dataset (``bcp.md`` §5,
``fussnet.md`` table, ``admt.md``; lung follows the pancreas path, ours)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks.config import load_config
from benchmarks.config.dataset import load_dataset
from benchmarks.report.suites import SUITES_DIR, load_suite

#: Dataset -> the recipe BCP, FUSSNet and AD-MT must train with there.
RECIPE = {"pancreas_mcnet": "pancreas", "pancreas_coranet": "pancreas", "lung": "pancreas", "la": "la"}
#: What each recipe sets (bcp.md §5; fussnet.md, the table of official budgets; admt.md: the longest
#: alternation period, ``period``).
EXPECTED = {
    ("bcp", "la"): {"optimizer.name": "sgd", "labeled_bs": 4, "network": "SSNetVNet"},
    ("bcp", "pancreas"): {"optimizer.name": "adam", "optimizer.lr": 1e-3, "schedule.name": "constant",
                          "network": "BranchedVNet"},
    ("fussnet", "la"): {"options.al_weight": 0.8, "options.pretrain_epochs": 40, "options.epochs": 301,
                        "options.pretrain_batch_size": 4},
    ("fussnet", "pancreas"): {"options.al_weight": 0.1, "options.pretrain_epochs": 60, "options.epochs": 201,
                              "options.pretrain_batch_size": 2},
    ("admt", "la"): {"period": 19},
    ("admt", "pancreas"): {"period": 14},
}


def _value(config, key: str):
    node = config
    for part in key.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


@pytest.fixture
def paper_suite(tmp_path: Path) -> Path:
    """The paper suite plus the CoraNet pancreas protocol, with every dataset's marker file present."""
    spec = yaml.safe_load((SUITES_DIR / "paper.yaml").read_text())
    spec["datasets"].append({"name": "pancreas_coranet", "data_root": "{data_root}/Pancreas_coranet", "labels": [12]})
    for d in spec["datasets"]:
        root = Path(d["data_root"].replace("{data_root}", str(tmp_path)))
        root.mkdir(parents=True)
        (root / load_dataset(d["name"]).marker_file).write_text("x\n")
    path = tmp_path / "paper_all.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_every_paper_run_has_its_datasets_recipe(paper_suite: Path) -> None:
    import methods

    suite = load_suite(paper_suite, data_root=str(paper_suite.parent), dedup=False)
    checked = set()
    for run in suite.runs:
        config, options = load_config(run.overrides())
        if not hasattr(options, "recipe"):
            continue
        recipe = RECIPE[run.dataset]
        assert options.recipe == recipe and config.options["recipe"] == recipe, (run.path, options.recipe)
        for key, value in EXPECTED[(run.method, recipe)].items():
            if key == "network":
                net = methods.get_method(run.method)(options, filters=2).segmenter()
                assert type(net).__name__ == value, run.path
            elif key == "period":
                assert options.longest_period == value, run.path
            else:
                assert _value(config, key) == value, (run.path, key)
        checked.add((run.method, run.dataset))
    assert checked == {(m, d) for m in ("bcp", "fussnet", "admt") for d in RECIPE}


def test_explicit_recipe_wins_over_auto() -> None:
    _, options = load_config({"method": "bcp", "dataset": "lung", "options": {"recipe": "la"}})
    assert options.recipe == "la"
    _, options = load_config({"method": "fussnet", "dataset": "la", "options": {"recipe": "auto"}})
    assert (options.recipe, options.al_weight) == ("la", 0.8)
