# The suite chosen by `config["suite"]`, expanded into runs by benchmarks.report.suites.

import os
import shlex

import yaml
from benchmarks.config.dataset import load_dataset
from benchmarks.report.artifacts import figure_names, table_names
from benchmarks.report.suites import load_suite, suite_file
from benchmarks.rundir import STATUS, suite_run


SUITE_FILE = str(suite_file(config["suite"]))
validate(yaml.safe_load(open(SUITE_FILE)), "../schemas/suite.schema.yaml")
_only = config.get("datasets")
if isinstance(_only, str):
    _only = [name for name in _only.split(",") if name]
SKIP_MISSING = str(config.get("skip_missing", False)).lower() in ("true", "yes", "1")
#: Raw public data per dataset (config `raw`); such a dataset is written to its data root by `sslbench prepare`
#: (rule prepare_<dataset>), so it counts as present when the suite is expanded.
RAW = config.get("raw") or {}
SUITE = load_suite(
    SUITE_FILE,
    data_root=config.get("data_root", "data"),
    skip_missing=SKIP_MISSING,
    only=[_only] if isinstance(_only, str) else _only,
    pending=RAW,
)


def dataset_marker(run):
    """The file whose presence marks the run's dataset complete (written last by `sslbench prepare`)."""
    return f"{run.data_root}/{load_dataset(run.dataset_file or run.dataset).marker_file}"


#: Dataset -> its marker file, for the datasets of this suite that are prepared from raw data.
PREPARED = {run.dataset: dataset_marker(run) for run in SUITE.runs if run.dataset in RAW}
NAME = SUITE.name
#: A suite run's directory, in the wildcards of the rules.
RUN_DIR = suite_run("{suite}", "{dataset}", "{key}", "{labels}", "{seed}")
PROPOSED = SUITE.proposed
RUNS = {run.path: run for run in SUITE.runs}
SYNTH = {d["name"]: d for d in SUITE.datasets() if d["name"] == "synthetic"}
COMPLEXITY_METHODS = sorted({run.method for run in SUITE.runs})
TABLES_DONE = f"results/tables/{NAME}/tables.done"
FIGURES_DONE = f"figures/{NAME}/figures.done"
GPU_MEM_MB = config.get("gpu_mem_mb", 12000)
#: GPUs each GPU job (train, evaluate, predict, features, bench) asks for (`gpu` resource, `--gpus` on SLURM).
GPUS = config.get("gpus_per_job", 1)
#: The software of every rule (used with --use-conda / --sdm conda).
ENV = "../../environment.yml"
#: Options that make `sslbench tables/figures` expand the suite exactly as this workflow did.
SUITE_ARGS = f"--data-root {config.get('data_root', 'data')}" + (" --skip-missing" if SKIP_MISSING else "") + (
    " --datasets " + " ".join([_only] if isinstance(_only, str) else _only) if _only else ""
)

wildcard_constraints:
    suite="[A-Za-z0-9_-]+",
    dataset="[A-Za-z0-9_]+",
    key="[A-Za-z0-9_.+-]+",
    labels="[0-9a-z%]+",
    seed="[0-9]+",


def run_of(wildcards):
    return RUNS[suite_run(wildcards.suite, wildcards.dataset, wildcards.key, wildcards.labels, wildcards.seed)]


def dataset_input(wildcards):
    """Synthetic data and data prepared from `raw` are made by rules; other real data is checked when the
    suite is loaded."""
    run = run_of(wildcards)
    return [dataset_marker(run)] if run.dataset == "synthetic" or run.dataset in PREPARED else []


def summaries(wildcards=None):
    return [f"{path}/eval/summary.json" for path in RUNS]


def final_summaries(wildcards=None):
    """The scores of every run's last checkpoint (``sslbench evaluate --checkpoint final``)."""
    return [f"{path}/eval_final/summary.json" for path in RUNS]


def train_logs(wildcards=None):
    return [f"{path}/{STATUS}" for path in RUNS]


def predictions(wildcards=None):
    qual = SUITE.spec.get("qualitative")
    if not qual or PROPOSED not in SUITE.spec["methods"]:
        return []
    out = []
    seed = SUITE.spec.get("seeds", [1337])[0]
    for d in SUITE.datasets():
        labels = d["labels"][0] if qual.get("labels", "first") == "first" else qual["labels"]
        for row in SUITE.qualitative_rows():
            out.append(os.path.join(SUITE.find(d["name"], row, str(labels), seed), "predictions.npz"))
    return out


def bench_data_root(wildcards):
    """Real datasets live under config's data_root in their protocol's folder (e.g. /data/LA)."""
    folder = os.path.basename(load_dataset(wildcards.dataset).run["data_root"])
    root = "data" if wildcards.dataset == "synthetic" else config.get("data_root", "data")
    return f"{root}/{folder}"
