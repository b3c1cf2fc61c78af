"""The Snakemake workflow end to end on the tiny `smoke` suite, a throw-away method beside a diverging one,
kill and resume.

Each test runs `snakemake` in a temporary working directory (`--directory`), so the repository's
`results/` is untouched. Together they take about two minutes on 2 CPU cores.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from prepare.rawdata import make_msd
from workflows import BIN, REPO, small_suite, workflow_env

pytestmark = pytest.mark.skipif(shutil.which("snakemake", path=str(BIN)) is None and shutil.which("snakemake") is None,
                                reason="snakemake not installed")

TOY = '''
import methods
from methods.vnet import SupervisedVNet


@methods.register
class ThrowAway(SupervisedVNet):
    """A throw-away method registered by the workflow test (a renamed supervised V-Net)."""

    name = "toy"
    paper = "throw-away test method"
'''


def snakemake(workdir: Path, *args: str, env: dict[str, str] | None = None, check: bool = True,
              **kw) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2", *args]
    proc = subprocess.run(cmd, check=False, env=env or workflow_env(), capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("smoke")
    snakemake(work, "--config", "suite=smoke")
    return work


def test_smoke_tables(smoke: Path) -> None:
    tables = smoke / "results" / "tables" / "smoke"
    for stem in ("table_synthetic", "table_IV_ablation", "table_V_passes", "table_VI_lambda"):
        for ext in ("csv", "md", "tex"):
            assert (tables / f"{stem}.{ext}").is_file(), f"{stem}.{ext} missing"
    main = pd.read_csv(tables / "table_synthetic.csv")
    cells = main[main.row_key != "lefed_minus_bcp"]
    # 3 rows x 1 label group x 5 metrics (the paper's four and NSD), one seed each: std blank, no paper column
    assert len(cells) == 3 * 5
    assert list(cells.row_key.unique()) == ["vnet_lower", "vnet_upper", "lefed"]
    assert set(cells.metric) == {"dice", "jaccard", "asd", "hd95", "nsd"}
    assert cells[cells.metric == "nsd"]["mean"].between(0, 100).all() and (cells.checkpoint != "").all()
    # paired statistics against LeFeD (the default reference; the smoke suite has no BCP row)
    dice_rows = cells[cells.metric == "dice"].set_index("row_key")
    assert (dice_rows.loc[["vnet_lower", "vnet_upper"], "reference"] == "lefed").all()
    assert dice_rows.loc[["vnet_lower", "vnet_upper"], "p_value"].between(0, 1).all()
    assert (dice_rows["device_hours"] > 0).all()
    paired = pd.read_csv(tables / "table_synthetic_stats.csv")
    assert set(paired.row) == {"vnet_lower", "vnet_upper"} and set(paired.reference) == {"lefed"}
    assert (cells.n_runs == 1).all() and cells["std"].isna().all() and cells["paper"].isna().all()
    dice = cells[cells.metric == "dice"]["mean"]
    assert dice.between(0, 100).all()
    runs = pd.read_csv(tables / "runs.csv")
    summary = yaml.safe_load((smoke / runs.run_dir[0] / "eval" / "summary.json").read_text())
    first = cells[(cells.row_key == runs.row[0]) & (cells.metric == "dice")]["mean"].iloc[0]
    assert first == pytest.approx(summary["dice_mean"], abs=1e-3)
    # the ablation's `full` row and the sweeps' default rows reuse Table I's LeFeD run (config-hash dedup)
    abl = pd.read_csv(tables / "table_IV_ablation.csv")
    assert list(abl.row_key.unique()) == ["baseline", "full"]
    lefed_dir = cells[cells.row_key == "lefed"].run_dirs.iloc[0]
    assert abl[abl.row_key == "full"].run_dirs.iloc[0] == lefed_dir
    t = pd.read_csv(tables / "table_V_passes.csv")
    assert list(t.row_key.unique()) == ["t2", "t3"] and t[t.row_key == "t3"].run_dirs.iloc[0] == lefed_dir
    md = (tables / "table_synthetic.md").read_text()
    assert "V-Net (labeled only)" in md and "Selection:" in md and "voxel" in md
    assert "Checkpoint shown:" in md and "NSD (%)" in md and "Δ Dice vs LeFeD [95 % CI]" in md
    figures = smoke / "figures" / "smoke"
    for stem in ("fig7_complexity", "fig_training_curves", "fig5_encodings", "fig_t_sweep", "fig_lambda_sweep",
                 "fig3_qualitative", "fig6_features", "fig_last_vs_best_synthetic", "fig_paired_synthetic"):
        assert (figures / f"{stem}.png").stat().st_size > 1000
        assert (figures / f"{stem}.pdf").is_file()
    fig6 = pd.read_csv(figures / "fig6_features.csv")  # maps A, B, |A - B| at the snapshots of the LeFeD run
    assert list(fig6["map"].unique()) == ["A (Dice)", "B (CE)", "|A − B|"] and list(fig6.iteration.unique()) == [3, 6]
    assert (fig6.run_dir == lefed_dir).all() and (fig6["max"] >= fig6["min"]).all()
    gap = pd.read_csv(figures / "fig_last_vs_best_synthetic.csv")  # every run's shown and last checkpoint
    assert set(gap.checkpoint) == {"heldout_best", "last"} and len(gap) == 2 * 3  # the main table's three runs
    complexity = pd.read_csv(figures / "fig7_complexity.csv").set_index("method")
    assert complexity.loc["lefed", "macs_train_G"] > 2 * complexity.loc["lefed", "macs_G"]
    # a second run has nothing to do
    again = snakemake(smoke, "--config", "suite=smoke", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_paper_column_values() -> None:
    from benchmarks.report.tables import load_paper_values

    paper = load_paper_values()
    assert paper[("I", "pancreas_mcnet", 6, "lefed")]["dice"] == (75.51, "L")
    assert paper[("IV", "pancreas_mcnet", 6, "il_dl")]["hd95"] == (11.85, "L")
    assert paper[("III", "la", 8, "vnet_lower")]["dice"] == (82.74, "D")
    assert paper[("VI", "pancreas_mcnet", 6, "lam1e-2")]["jaccard"] == (69.76, "L")


def test_unknown_suite_key_fails_before_any_job(tmp_path: Path) -> None:
    spec = yaml.safe_load((REPO / "benchmarks/config/suites/smoke.yaml").read_text())
    spec["name"], spec["colour"] = "bad", "blue"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(spec))
    proc = snakemake(tmp_path, "-n", "--config", "suite=bad.yaml", check=False)
    assert proc.returncode != 0 and "colour" in proc.stdout + proc.stderr
    proc = snakemake(tmp_path, "-n", "--config", "suite=smoke", "nosuchkey=1", check=False)
    assert proc.returncode != 0 and "nosuchkey" in proc.stdout + proc.stderr


def test_missing_dataset_is_named(tmp_path: Path) -> None:
    proc = snakemake(tmp_path, "-n", "--config", "suite=paper", f"data_root={tmp_path}", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "pancreas_mcnet" in out and "Pancreas" in out


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One workflow run of the labeled-only V-Net, the throw-away method ``toy`` and a diverging LeFeD (its
    learning rate 1e12), with Fig. 3 and the feature snapshots."""
    work = tmp_path_factory.mktemp("mixed")
    plugin = work / "plugin"
    plugin.mkdir()
    (plugin / "sitecustomize.py").write_text(TOY)  # registers `toy` in every Python process of the run
    small_suite(work, "mixed", ["vnet_lower", "toy", "lefed"], method_set={"lefed": ["optimizer.lr=1e12"]},
                qualitative={"labels": 4, "cases": 1},
                feature_snapshots={"dataset": "synthetic", "labels": 4, "iterations": [3, 6]})
    snakemake(work, "--config", "suite=mixed.yaml", env=workflow_env(plugin))
    return work


def test_throwaway_method_appears_in_tables_and_figures(mixed: Path) -> None:
    table = pd.read_csv(mixed / "results/tables/mixed/table_synthetic.csv")
    assert list(table.row_key.unique()) == ["vnet_lower", "toy", "lefed"]
    toy = table[table.row_key == "toy"]
    assert (toy.n_runs == 1).all() and toy[toy.metric == "dice"]["mean"].between(0, 100).all()
    assert "| toy |" in (mixed / "results/tables/mixed/table_synthetic.md").read_text()
    qualitative = pd.read_csv(mixed / "figures/mixed/fig3_qualitative.csv").set_index("row")
    assert list(qualitative.index) == ["toy", "lefed"] and 0 <= qualitative.loc["toy", "dice"] <= 100


def test_diverged_run_is_marked_failed_and_the_other_runs_are_tabled(mixed: Path) -> None:
    """LeFeD diverges; the workflow still builds every table and figure, with LeFeD marked failed."""
    run = mixed / "results/runs/mixed/synthetic/lefed/labels4/seed1337"
    status = yaml.safe_load((run / "status.json").read_text(encoding="utf-8"))
    assert status["status"] == "failed" and status["terms"], status
    assert "non-finite loss terms" in (mixed / "results/logs/mixed/synthetic/lefed/labels4/seed1337/train.log"
                                       ).read_text(encoding="utf-8")
    table = pd.read_csv(mixed / "results/tables/mixed/table_synthetic.csv")
    lefed, vnet = table[table.row_key == "lefed"], table[table.row_key == "vnet_lower"]
    assert (lefed.n_failed == 1).all() and (lefed.n_runs == 0).all() and lefed["mean"].isna().all()
    assert (vnet.n_failed == 0).all() and (vnet.n_runs == 1).all() and vnet["mean"].notna().all()
    md = (mixed / "results/tables/mixed/table_synthetic.md").read_text(encoding="utf-8")
    assert "| LeFeD |" in md and "Failed run (left out of the means): results/runs/mixed/synthetic/lefed" in md
    figures = mixed / "figures" / "mixed"
    qualitative = pd.read_csv(figures / "fig3_qualitative.csv").set_index("row")
    assert pd.isna(qualitative.loc["lefed", "dice"])  # image and GT shown, no prediction
    assert "non-finite" in qualitative.loc["lefed", "failed"]
    features = pd.read_csv(figures / "fig6_features.csv")
    assert features.failed.str.contains("non-finite").all()
    assert (figures / "fig6_features.png").is_file() and (figures / "fig3_qualitative.png").is_file()
    again = snakemake(mixed, "--config", "suite=mixed.yaml", "-n", env=workflow_env(mixed / "plugin"))
    assert "Nothing to be done" in again.stdout + again.stderr  # the divergence is a result, not retried


INTERRUPT = '''
from methods.vnet import SupervisedVNet

_step = SupervisedVNet.training_step


def _interrupted(self, ctx, batch):
    if ctx.iteration == 22:
        raise KeyboardInterrupt  # what Ctrl-C raises in the training job
    return _step(self, ctx, batch)


SupervisedVNet.training_step = _interrupted
'''


def test_killed_training_resumes(tmp_path: Path) -> None:
    """The training job is interrupted at iteration 22 (a ``sitecustomize`` in its process, so no timing is
    involved); the plain command again resumes it from its last checkpoint."""
    sets = yaml.safe_load((REPO / "benchmarks/config/suites/smoke.yaml").read_text())["set"]
    sets = [s for s in sets if not s.startswith(("iterations=", "checkpoint_every=", "val_every="))]
    small_suite(tmp_path, "resume", ["vnet_lower"], set=[*sets, "iterations=40", "checkpoint_every=5", "val_every=20"])
    run = tmp_path / "results/runs/resume/synthetic/vnet_lower/labels4/seed1337"
    target = str(run.relative_to(tmp_path) / "status.json")
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "sitecustomize.py").write_text(INTERRUPT)
    failed = snakemake(tmp_path, "--config", "suite=resume.yaml", "--", target, env=workflow_env(plugin), check=False)
    assert failed.returncode != 0
    assert (run / "checkpoint_latest.pt").is_file() and not (run / "checkpoint_final.pt").is_file()
    assert len(pd.read_csv(run / "log.csv")) == 22
    snakemake(tmp_path, "--config", "suite=resume.yaml", "--", target)  # the plain command again
    assert (run / "checkpoint_final.pt").is_file()
    provenance = yaml.safe_load((run / "provenance.json").read_text())
    assert provenance["resumed_from"] == {"stage": 0, "iteration": 20}, provenance


def test_paper_table_from_fake_results(tmp_path: Path) -> None:
    """Table III with three seeds of made-up results: mean ± std (ddof 1), paper column, Δ, LeFeD − BCP."""
    import json

    from benchmarks.report.suites import load_suite
    from benchmarks.report.tables import build_tables

    data = tmp_path / "data" / "LA"
    data.mkdir(parents=True)
    (data / "test.list").write_text("x\n")
    suite = load_suite("paper", data_root=str(tmp_path / "data"), only=["la"])
    assert set(suite.skipped) == {"pancreas_mcnet", "lung"}
    for i, run in enumerate(suite.runs):
        ev = tmp_path / run.path / "eval"
        ev.mkdir(parents=True)
        value = 80.0 + run.seed - 1338  # 79, 80, 81 over the seeds: mean 80, std 1
        ev.joinpath("summary.json").write_text(json.dumps({
            "dice_mean": value, "jaccard_mean": value - 10, "asd_mean": 2.0, "hd95_mean": 7.0, "n_empty": 0,
            "selection": "heldout", "lcc": False, "empty_policy": "penalty", "config_hash": str(i),
            "units": {"dice": "%", "jaccard": "%", "asd": "voxel", "hd95": "voxel"}}))
    build_tables(suite, tmp_path / "tables", tmp_path)
    table = pd.read_csv(tmp_path / "tables" / "table_III_la.csv")
    cell = table[(table.row_key == "lefed") & (table.label_count.astype(str) == "8") & (table.metric == "dice")].iloc[0]
    assert cell["mean"] == pytest.approx(80.0) and cell["std"] == pytest.approx(1.0) and cell.n_runs == 3
    assert cell.paper == pytest.approx(90.00) and cell.delta == pytest.approx(-10.0) and cell.paper_tag == "L"
    md = (tmp_path / "tables" / "table_III_la.md").read_text()
    assert "80.00 ± 1.00 (90.00, Δ −10.00 ⚑)" in md and "LeFeD − BCP" in md
    # rows beyond the paper: below a heading row, no paper column, their own published value, never bold
    beyond = table[table.row_key.isin(["admt", "caml"]) & (table.metric == "dice")].set_index(["row_key", "label_count"])
    assert beyond.paper.isna().all() and len(beyond) == 4
    assert beyond.loc[("admt", 8), "published"] == pytest.approx(90.58) and beyond.loc[("admt", 8), "published_tag"] == "O"
    assert beyond.loc[("caml", 16), "published"] == pytest.approx(90.78) and beyond.loc[("caml", 16), "published_tag"] == "T"
    assert beyond.loc[("admt", 8), "delta"] == pytest.approx(80.0 - 90.58) and pd.isna(beyond.loc[("admt", 16), "delta"])
    lines = md.splitlines()
    heading = lines.index(next(line for line in lines if line.startswith("| *Beyond the paper*")))
    assert heading > lines.index(next(line for line in lines if line.startswith("| LeFeD − BCP")))
    admt_line = next(line for line in lines if line.startswith("| AD-MT |"))
    assert "(published 90.58<sup>o</sup>, Δ −10.58 ⚑)" in admt_line and "**" not in admt_line
    assert "(published 90.78<sup>t</sup>" in next(line for line in lines if line.startswith("| CAML |"))
    assert {"table_V_passes.csv", "table_VI_lambda.csv"} <= {p.name for p in (tmp_path / "tables").iterdir()}
    assert "table_IV_ablation.csv" not in {p.name for p in (tmp_path / "tables").iterdir()}  # ablation on pancreas


@pytest.mark.parametrize("name", ["demo", "paper"])
def test_suites_train_the_rows_beyond_the_paper(name: str, tmp_path: Path) -> None:
    from benchmarks.config.dataset import load_dataset
    from benchmarks.errors import ConfigError
    from benchmarks.report.suites import load_spec, load_suite, validate_spec

    for d in load_spec(name)["datasets"]:
        root = Path(str(d.get("data_root", "")).replace("{data_root}", str(tmp_path)))
        if d["name"] != "synthetic":
            root.mkdir(parents=True)
            (root / load_dataset(d["name"]).marker_file).write_text("x\n")
    suite = load_suite(name, data_root=str(tmp_path))
    assert suite.beyond == ["admt", "caml"] and suite.qualitative_rows()[-2:] == ["admt", "caml"]
    for d in suite.datasets():
        for row in suite.beyond:
            runs = [r for r in suite.runs if r.key == row and r.dataset == d["name"]]
            assert sorted(r.labels for r in runs) == sorted(str(x) for x in d["labels"] for _ in suite.spec["seeds"])
            assert all(r.method == row and ("main", row) in r.uses for r in runs)
    with pytest.raises(ConfigError, match="beyond: admt also in methods"):
        spec = load_spec(name)
        validate_spec({**spec, "methods": [*spec["methods"], "admt"]})


def test_nnunet_dataset_named_with_digits_runs_end_to_end(tmp_path: Path) -> None:
    """`sslbench prepare nnunet` writes the dataset's YAML; a suite that names it trains, scores and tables two
    methods through Snakemake (the dataset wildcard takes digits)."""
    raw = make_msd(tmp_path / "raw", [f"case_{i:03d}" for i in range(10)], v2=True)
    data = tmp_path / "data"
    subprocess.run([str(BIN / "sslbench"), "prepare", "nnunet", "--raw", str(raw), "--out", str(data / "kits19"),
                    "--name", "kits19", "--set", "margin=1", "--set", "minimum=4", "--no-progress"],
                   check=True, env=workflow_env(), capture_output=True)
    assert yaml.safe_load((data / "kits19" / "dataset.yaml").read_text())["name"] == "kits19"
    smoke = yaml.safe_load((REPO / "benchmarks/config/suites/smoke.yaml").read_text())
    sets = [s for s in smoke["set"] if not s.startswith(("patch=", "eval.", "iterations=", "val_every=", "checkpoint_every="))]
    spec = {"name": "kits", "demo": True, "datasets": [{"name": "{data_root}/kits19/dataset.yaml", "labels": [4]}],
            "methods": ["vnet_lower", "uamt"], "rows": smoke["rows"], "seeds": [1337],
            "set": [*sets, "patch=[16,16,16]", "eval.window=[16,16,16]", "eval.strides=[16,16,16]", "iterations=4",
                    "val_every=2", "checkpoint_every=2"]}
    (tmp_path / "kits.yaml").write_text(yaml.safe_dump(spec))
    snakemake(tmp_path, "--config", "suite=kits.yaml", f"data_root={data}", "--", "results/tables/kits/tables.done")
    table = pd.read_csv(tmp_path / "results/tables/kits/table_kits19.csv")
    assert list(table.row_key.unique()) == ["vnet_lower", "uamt"] and (table.n_runs == 1).all()
    scored = table.metric != "nsd"  # its dataset.yaml declares no nsd_tolerance_mm: NSD is not scored
    assert table.loc[scored, "mean"].notna().all() and table.loc[~scored, "mean"].isna().all()
    run = tmp_path / "results/runs/kits/kits19/uamt/labels4/seed1337"
    assert yaml.safe_load((run / "config.yaml").read_text())["dataset"] == str(data / "kits19" / "dataset.yaml")
    assert "kits19 dataset" in (tmp_path / "results/tables/kits/table_kits19.md").read_text()
