"""Benchmark suites: which runs make up the tables and figures (``benchmarks/config/suites/<name>.yaml``).

A suite lists datasets (name, data root, label settings), the table rows (``methods``; ``beyond``: rows of
methods that came after the paper, shown apart from its rows), seeds, the LeFeD ablation rows, the t and lambda sweeps, the encodings and per-suite ``--set`` overrides. :func:`expand`
turns it into the list of runs; runs with the same configuration hash (for example Table IV's ``full`` row
and Table I's LeFeD cell) are trained once and shared. The Snakefile, ``sslbench tables`` and
``sslbench figures`` all use this module, so the runs behind a cell are the same everywhere.

Run directories: ``results/runs/<suite>/<dataset>/<run_key>/labels<N>/seed<k>`` where ``run_key`` is the
table row (``vnet_lower``, ``uamt``, ..., ``lefed``; ``vnet_upper`` has ``labelsall``) or a LeFeD variant
``lefed-abl_<row>``, ``lefed-t<t>``, ``lefed-lam<λ>``, ``lefed-enc_<encoding>``.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

SUITES_DIR = Path(__file__).resolve().parents[1] / "config" / "suites"
SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "suite.schema.yaml"

#: Table IV row key -> LeFeD ``ablation`` preset (``lefed.md`` section 5, ``tables.md`` section 2).
ABLATION_PRESETS = {
    "baseline": "baseline", "il": "IL", "il_dl": "IL+DL", "il_ds": "IL+DS", "dl_ds_s1": "DL+DS+S1",
    "dl_ds_s12": "DL+DS+S1+S2", "dl_ds_s123": "DL+DS+S1+S2+S3", "full": "full",
}
ABLATION_LABELS = {
    "baseline": "Baseline (VNet)", "il": "+ IL", "il_dl": "+ IL + DL", "il_ds": "+ IL + DS",
    "dl_ds_s1": "+ DL + DS + S1", "dl_ds_s12": "+ DL + DS + S1 + S2", "dl_ds_s123": "+ DL + DS + S1 + S2 + S3",
    "full": "+ DL + DS + IL",
}
ROW_LABELS = {
    "vnet_lower": "V-Net (labeled only)", "vnet_upper": "V-Net (all labeled)", "uamt": "UA-MT",
    "sassnet": "SASSNet", "dtc": "DTC", "asenet": "ASE-Net", "ssnet": "SS-Net", "mcnet_plus": "MC-Net+",
    "fussnet": "FUSSNet", "bcp": "BCP", "lefed": "LeFeD", "lefed_official": "LeFeD (official code)",
    "admt": "AD-MT", "caml": "CAML",
}
ENCODING_LABELS = {"a_minus_b": "A − B", "b_minus_a": "B − A", "abs": "|A − B|", "entropy": "Entropy"}
#: Dataset protocol -> (table number, file stem, title).
DATASET_TABLES = {
    "pancreas_mcnet": ("I", "table_I_pancreas", "Pancreas-CT dataset"),
    "pancreas_coranet": ("I", "table_I_pancreas_coranet", "Pancreas-CT dataset (CoraNet protocol)"),
    "lung": ("II", "table_II_lung", "MSD lung tumour dataset"),
    "la": ("III", "table_III_la", "left atrium dataset"),
}
#: How to prepare a real dataset (named in the error when it is missing).
PREPARE = {
    "la": "download the UA-MT h5 release of the 2018 Atrial Segmentation Challenge (yulequan/UA-MT, data/) "
          "into <data_root>/LA ('2018LA_Seg_Training Set/<ID>/mri_norm2.h5', train.list, test.list), or run "
          "`sslbench prepare la --raw DIR --out <data_root>/LA` on the challenge's nrrd files",
    "pancreas_mcnet": "run `sslbench prepare pancreas_mcnet --raw DIR --out <data_root>/Pancreas` on NIH "
                      "Pancreas-CT (TCIA DICOM + labels), or pass --config 'raw={pancreas_mcnet: DIR}'",
    "pancreas_coranet": "run `sslbench prepare pancreas_coranet --raw DIR --out <data_root>/Pancreas_coranet` on "
                        "NIH Pancreas-CT, or pass --config 'raw={pancreas_coranet: DIR}'",
    "lung": "run `sslbench prepare lung --raw DIR --out <data_root>/Lung` on MSD Task06_Lung, or pass "
            "--config 'raw={lung: DIR}'",
}
MARKER_FILES = {"pancreas_coranet": "test.txt"}
DEFAULT_SEEDS = [1337, 1338, 1339]


@dataclass
class Run:
    """One training run of a suite and the table cells it feeds."""

    suite: str
    dataset: str
    key: str
    method: str
    labels: str
    seed: int
    data_root: str
    sets: list[str] = field(default_factory=list)
    uses: list[tuple[str, str]] = field(default_factory=list)  # (artifact, row key)

    @property
    def path(self) -> str:
        return f"results/runs/{self.suite}/{self.dataset}/{self.key}/labels{self.labels}/seed{self.seed}"

    def train_args(self) -> str:
        args = [f"--method {self.method}", f"--dataset {self.dataset}", f"--data-root {_quote(self.data_root)}",
                f"--labels {self.labels}", f"--seed {self.seed}"]
        args += [f"--set {_quote(s)}" for s in self.sets]
        return " ".join(args)


@dataclass
class Suite:
    name: str
    spec: dict[str, Any]
    data_root: str
    runs: list[Run]
    aliases: dict[str, str]  # every run key path -> the canonical run path (deduplicated by config hash)
    skipped: dict[str, str]  # dataset -> why

    @property
    def demo(self) -> bool:
        return bool(self.spec.get("demo", False))

    @property
    def beyond(self) -> list[str]:
        """Rows beyond the paper: methods after it, tabled below its rows with their own published values."""
        return list(self.spec.get("beyond", []))

    def qualitative_rows(self) -> list[str]:
        """Fig. 3's prediction columns: the semi-supervised rows of the paper, then the rows beyond it."""
        return [r for r in self.spec["methods"] if r not in ("vnet_lower", "vnet_upper", "lefed_official")] + self.beyond

    def datasets(self) -> list[dict[str, Any]]:
        return [d for d in self.spec["datasets"] if d["name"] not in self.skipped]

    def dataset(self, name: str) -> dict[str, Any]:
        for d in self.spec["datasets"]:
            if d["name"] == name:
                return d
        raise KeyError(name)

    def feature_run(self) -> str | None:
        """Canonical path of the LeFeD run whose weight snapshots make Fig. 6, if the suite asks for it."""
        snap = self.spec.get("feature_snapshots")
        if not snap or snap["dataset"] in self.skipped or snap["dataset"] not in {d["name"] for d in self.spec["datasets"]}:
            return None
        return self.find(snap["dataset"], "lefed", str(snap["labels"]), self.spec.get("seeds", DEFAULT_SEEDS)[0])

    def features_file(self) -> str:
        """Where ``sslbench features`` writes Fig. 6's data."""
        return f"results/features/{self.name}/fig6.npz"

    def find(self, dataset: str, key: str, labels: str, seed: int) -> str:
        """Canonical run path of a cell's run."""
        path = f"results/runs/{self.name}/{dataset}/{key}/labels{labels}/seed{seed}"
        return self.aliases.get(path, path)


def _quote(text: str) -> str:
    return "'" + str(text).replace("'", "'\"'\"'") + "'" if any(c in str(text) for c in " []{}*$;&|'\"") else str(text)


def suite_file(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.yaml")))
        raise ConfigError(f"unknown suite {name_or_path!r}; available: {names}")
    return path


def load_spec(name_or_path: str | Path) -> dict[str, Any]:
    """The suite's YAML, validated against ``workflow/schemas/suite.schema.yaml`` (with defaults filled)."""
    spec = yaml.safe_load(suite_file(name_or_path).read_text()) or {}
    validate_spec(spec)
    return spec


def validate_spec(spec: dict[str, Any]) -> None:
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema comes with snakemake
        return
    schema = yaml.safe_load(SCHEMA.read_text())
    try:
        jsonschema.validate(spec, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "(top level)"
        raise ConfigError(f"suite {spec.get('name', '?')!r}: {where}: {exc.message}") from None


def dataset_present(name: str, root: str) -> bool:
    if name == "synthetic":
        return True
    return (Path(root) / MARKER_FILES.get(name, "test.list")).is_file()


def _fmt_lambda(value: float) -> str:
    return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e+")


def load_suite(name_or_path: str | Path, data_root: str = "data", skip_missing: bool = False,
               only: list[str] | None = None, dedup: bool = True, pending: Collection[str] = ()) -> Suite:
    """Expand a suite into runs. A real dataset whose files are missing is an error naming the dataset and
    how to prepare it, unless ``skip_missing`` (then it is listed in :attr:`Suite.skipped`) or it is
    ``pending``: a workflow rule will prepare it from raw data."""
    spec = load_spec(name_or_path)
    name = spec["name"]
    skipped: dict[str, str] = {}
    roots: dict[str, str] = {}
    for d in spec["datasets"]:
        root = str(d["data_root"]).replace("{data_root}", str(data_root).rstrip("/"))
        roots[d["name"]] = root
        if only and d["name"] not in only:
            skipped[d["name"]] = "not selected (config 'datasets')"
        elif d["name"] not in pending and not dataset_present(d["name"], root):
            how = PREPARE.get(d["name"], "see benchmarks/config/datasets")
            msg = f"dataset {d['name']!r} not found at {root!r}: {how}"
            if not skip_missing:
                raise ConfigError(msg + ". Pass --config data_root=DIR, or skip_missing=true to run the suite "
                                        "on the datasets present (the report lists the skipped ones).")
            skipped[d["name"]] = msg

    common = list(spec.get("set", []))
    per_method = spec.get("method_set", {}) or {}
    per_dataset = spec.get("dataset_set", {}) or {}
    seeds = spec.get("seeds", DEFAULT_SEEDS)
    runs: dict[str, Run] = {}

    def add(dataset: str, key: str, method: str, labels: Any, seed: int, extra: list[str], use: tuple[str, str]):
        run = Run(name, dataset, key, method, str(labels), seed, roots[dataset],
                  common + list(per_dataset.get(dataset, [])) + list(per_method.get(method, [])) + extra)
        run = runs.setdefault(run.path, run)
        if use not in run.uses:
            run.uses.append(use)

    def row_method(row: str) -> tuple[str, list[str]]:
        if row in ("vnet_lower", "vnet_upper"):
            return "vnet", []
        if row == "lefed_official":
            return "lefed", ["variant=official"]
        return row, []

    for d in spec["datasets"]:
        if d["name"] in skipped:
            continue
        for row in spec["methods"] + spec.get("beyond", []):
            method, extra = row_method(row)
            for labels in (["all"] if row == "vnet_upper" else d["labels"]):
                for seed in seeds:
                    add(d["name"], row, method, labels, seed, extra, ("main", row))

    def settings(block: dict[str, Any]):
        for s in block.get("settings", []):
            if s["dataset"] in roots and s["dataset"] not in skipped:
                yield s["dataset"], s["labels"]

    abl = spec.get("ablation")
    if abl:
        for dataset, labels in settings(abl):
            for row in abl["rows"]:
                for seed in seeds:
                    # ``full`` is the default LeFeD configuration: no preset, so it shares Table I's LeFeD run.
                    extra = [] if row == "full" else [f"ablation={ABLATION_PRESETS[row]}"]
                    add(dataset, f"lefed-abl_{row}", "lefed", labels, seed, extra, ("ablation", row))
    for block, key, opt, fmt in (("t_sweep", "t", "t", str), ("lambda_sweep", "lam", "lambda", _fmt_lambda)):
        sweep = spec.get(block)
        if sweep:
            for dataset, labels in settings(sweep):
                for value in sweep["values"]:
                    for seed in seeds:
                        add(dataset, f"lefed-{key}{fmt(value)}", "lefed", labels, seed, [f"{opt}={value}"],
                            (block, f"{key}{fmt(value)}"))
    enc = spec.get("encodings")
    if enc:
        for dataset, labels in settings(enc):
            for value in enc["values"]:
                for seed in seeds:
                    add(dataset, f"lefed-enc_{value}", "lefed", labels, seed, [f"encoding={value}"],
                        ("encodings", value))

    snap = spec.get("feature_snapshots")
    if snap and snap["dataset"] in roots and snap["dataset"] not in skipped:
        add(snap["dataset"], "lefed", "lefed", snap["labels"], seeds[0], [], ("features", "lefed"))

    aliases: dict[str, str] = {}
    ordered = list(runs.values())
    if dedup:
        ordered, aliases = _dedup(ordered)
    suite = Suite(name, spec, str(data_root), ordered, aliases, skipped)
    if snap and snap["dataset"] in roots and snap["dataset"] not in skipped:
        path = suite.feature_run()
        # ``snapshots`` is operational (outside the config hash), so the shared run keeps its identity.
        next(r for r in ordered if r.path == path).sets.append(f"snapshots={json.dumps(snap['iterations'])}")
    return suite


def _dedup(runs: list[Run]) -> tuple[list[Run], dict[str, str]]:
    """Runs whose configuration hash is equal are trained once (the first one in suite order)."""
    from ..config import config_hash, load_config, parse_sets

    by_hash: dict[str, Run] = {}
    aliases: dict[str, str] = {}
    kept: list[Run] = []
    for run in runs:
        overrides = parse_sets(run.sets)
        overrides.update(method=run.method, dataset=run.dataset, labels=run.labels, seed=run.seed,
                         data_root=run.data_root)
        config, _ = load_config(overrides)
        digest = config_hash(config)
        if digest in by_hash:
            canonical = by_hash[digest]
            aliases[run.path] = canonical.path
            for use in run.uses:
                if use not in canonical.uses:
                    canonical.uses.append(use)
        else:
            by_hash[digest] = run
            kept.append(run)
    return kept, aliases


def runs_table(suite: Suite) -> list[dict[str, Any]]:
    """One row per (run, use) for provenance CSVs."""
    return [{"run_dir": r.path, "dataset": r.dataset, "key": r.key, "method": r.method, "labels": r.labels,
             "seed": r.seed, "uses": json.dumps(r.uses)} for r in suite.runs]


__all__ = ["ABLATION_LABELS", "ABLATION_PRESETS", "DATASET_TABLES", "ENCODING_LABELS", "ROW_LABELS", "Run", "Suite",
           "load_spec", "load_suite", "validate_spec"]
