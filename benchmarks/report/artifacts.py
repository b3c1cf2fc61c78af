"""File names of the tables and figures a suite produces (shared by the Snakefile and the builders)."""

from __future__ import annotations

from ..config.dataset import load_dataset
from .stats import references
from .suites import Suite


def stats_stem(table_stem: str) -> str:
    """The paired-statistics CSV of a dataset table (every row against every reference row)."""
    return f"{table_stem}_stats"


def _present(suite: Suite, block: str) -> bool:
    spec = suite.spec.get(block)
    names = {d["name"] for d in suite.datasets()}
    return bool(spec) and any(s["dataset"] in names for s in spec["settings"])


def table_stems(suite: Suite) -> list[str]:
    stems = [load_dataset(d["file"]).table_stem for d in suite.datasets()]
    for block, stem in (("ablation", "table_IV_ablation"), ("t_sweep", "table_V_passes"),
                        ("lambda_sweep", "table_VI_lambda")):
        if _present(suite, block):
            stems.append(stem)
    return stems


def table_names(suite: Suite) -> list[str]:
    names = [f"{stem}.{ext}" for stem in table_stems(suite) for ext in ("csv", "md", "html", "tex")]
    names += [f"{stats_stem(load_dataset(d['file']).table_stem)}.csv" for d in suite.datasets()]
    return names + ["runs.csv", "cases.csv"]


def figure_stems(suite: Suite) -> list[str]:
    stems = ["fig7_complexity", "fig_training_curves"]
    if _present(suite, "encodings"):
        stems.append("fig5_encodings")
    if _present(suite, "t_sweep"):
        stems.append("fig_t_sweep")
    if _present(suite, "lambda_sweep"):
        stems.append("fig_lambda_sweep")
    if suite.spec.get("qualitative") and suite.proposed in suite.spec["methods"]:
        stems.append("fig3_qualitative")
    if suite.feature_run():
        stems.append("fig6_features")
    stems += [f"fig_last_vs_best_{d['name']}" for d in suite.datasets()]
    if references(suite.spec):
        stems += [f"fig_paired_{d['name']}" for d in suite.datasets()]
    return stems


def figure_names(suite: Suite) -> list[str]:
    return [f"{stem}.{ext}" for stem in figure_stems(suite) for ext in ("png", "pdf", "csv")]
