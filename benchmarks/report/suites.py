"""Benchmark suites: which runs make up the tables and figures (``benchmarks/config/suites/<name>.yaml``).

A suite lists datasets (a built-in name or the path of a dataset YAML, data root, label settings), the table
rows (``methods``: method names, or keys of its ``rows`` that name a method, options, fixed labels and a
label), rows of differences, rows ``beyond`` the paper (methods after its comparison, tabled apart
from its rows), seeds, the ``proposed`` method and its ablation rows, t and lambda sweeps and
encodings, and per-suite ``--set`` overrides. :func:`load_suite` turns it into the list of runs; runs with
the same configuration hash (for example Table IV's ``full`` row and Table I's cell of the proposed method)
are trained once and shared. The Snakefile, ``sslbench tables`` and ``sslbench figures`` all use this module,
so the runs behind a cell are the same everywhere.

Run directories (:func:`benchmarks.rundir.suite_run`): ``results/runs/<suite>/<dataset>/<run_key>/labels<N>/seed<k>``
where ``run_key`` is the table row (a row with fixed labels has e.g. ``labelsall``) or a variant of the
proposed method ``<proposed>-abl_<row>``, ``<proposed>-t<t>``, ``<proposed>-lam<λ>``, ``<proposed>-enc_<encoding>``.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import methods

from ..config import read_yaml
from ..config.dataset import available_datasets, is_dataset_file, load_dataset
from ..errors import ConfigError
from ..rundir import suite_run

SUITES_DIR = Path(__file__).resolve().parents[1] / "config" / "suites"
SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "suite.schema.yaml"

#: Table IV row key -> the proposed method's ``ablation`` preset (``tables.md`` section 2).
ABLATION_PRESETS = {
    "baseline": "baseline", "il": "IL", "il_dl": "IL+DL", "il_ds": "IL+DS", "dl_ds_s1": "DL+DS+S1",
    "dl_ds_s12": "DL+DS+S1+S2", "dl_ds_s123": "DL+DS+S1+S2+S3", "full": "full",
}
ABLATION_LABELS = {
    "baseline": "Baseline (VNet)", "il": "+ IL", "il_dl": "+ IL + DL", "il_ds": "+ IL + DS",
    "dl_ds_s1": "+ DL + DS + S1", "dl_ds_s12": "+ DL + DS + S1 + S2", "dl_ds_s123": "+ DL + DS + S1 + S2 + S3",
    "full": "+ DL + DS + IL",
}
ENCODING_LABELS = {"a_minus_b": "A − B", "b_minus_a": "B − A", "abs": "|A − B|", "entropy": "Entropy"}
DEFAULT_SEEDS = [1337, 1338, 1339]


@dataclass(frozen=True)
class RowSpec:
    """A table row: its run's method and ``--set`` options, fixed labels (e.g. ``all``: one run shown in every
    label group), display label, and whether it is ranked (bold best, the count of compared methods, Fig. 3)."""

    key: str
    method: str
    sets: tuple[str, ...] = ()
    labels: str | None = None
    label: str = ""
    ranked: bool = True


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
    #: The path of the dataset's YAML when the suite names it by path (``--dataset``); empty: ``dataset``.
    dataset_file: str = ""

    @property
    def path(self) -> str:
        return suite_run(self.suite, self.dataset, self.key, self.labels, self.seed)

    def overrides(self) -> dict[str, Any]:
        """The run's settings for :func:`~benchmarks.config.load_config` (what ``sslbench train`` is given)."""
        from ..config import parse_sets

        overrides = parse_sets(self.sets)
        overrides.update(method=self.method, dataset=self.dataset_file or self.dataset, labels=self.labels, seed=self.seed,
                         data_root=self.data_root)
        return overrides

    def train_args(self) -> str:
        args = [f"--method {self.method}", f"--dataset {_quote(self.dataset_file or self.dataset)}",
                f"--data-root {_quote(self.data_root)}",
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

    def datasets(self) -> list[dict[str, Any]]:
        return [d for d in self.spec["datasets"] if d["name"] not in self.skipped]

    def dataset(self, name: str) -> dict[str, Any]:
        for d in self.spec["datasets"]:
            if d["name"] == name:
                return d
        raise KeyError(name)

    @property
    def proposed(self) -> str | None:
        """The method whose ablation, sweeps, encodings and features the suite studies; its runs pick Fig. 3's cases."""
        return self.spec.get("proposed")

    def row(self, key: str) -> RowSpec:
        return row_spec(self.spec, key)

    def row_label(self, key: str) -> str:
        return self.row(key).label

    def ranked_rows(self) -> list[str]:
        """Main-table rows that are ranked (bold best) and shown in Fig. 3."""
        return [key for key in self.spec["methods"] if self.row(key).ranked]

    @property
    def beyond(self) -> list[str]:
        """Rows beyond the paper: methods after its comparison, tabled below its rows with their own published values."""
        return list(self.spec.get("beyond") or [])

    def qualitative_rows(self) -> list[str]:
        """Fig. 3's prediction columns: the ranked rows, then the rows beyond the paper."""
        return self.ranked_rows() + self.beyond

    def differences(self) -> list[dict[str, Any]]:
        """Rows of differences (``key``, ``label``, ``rows``: [a, b], shown as a − b) whose rows are in the table."""
        return [d for d in self.spec.get("differences") or [] if set(d["rows"]) <= set(self.spec["methods"])]

    def feature_run(self) -> str | None:
        """Canonical path of the proposed method's run whose weight snapshots make Fig. 6, if the suite asks for it."""
        snap = self.spec.get("feature_snapshots")
        if not snap or snap["dataset"] in self.skipped or snap["dataset"] not in {d["name"] for d in self.spec["datasets"]}:
            return None
        return self.find(snap["dataset"], self.proposed, str(snap["labels"]), self.spec.get("seeds", DEFAULT_SEEDS)[0])

    def features_file(self) -> str:
        """Where ``sslbench features`` writes Fig. 6's data."""
        return f"results/features/{self.name}/fig6.npz"

    def find(self, dataset: str, key: str, labels: str, seed: int) -> str:
        """Canonical run path of a cell's run."""
        path = suite_run(self.name, dataset, key, labels, seed)
        return self.aliases.get(path, path)


def row_spec(spec: dict[str, Any], key: str) -> RowSpec:
    """The table row ``key``: declared in the suite's ``rows``, else the registered method of that name."""
    declared = (spec.get("rows") or {}).get(key)
    if declared is None:
        return RowSpec(key, key, label=method_label(key))
    return RowSpec(key, declared["method"], tuple(declared.get("set", ())),
                   None if declared.get("labels") is None else str(declared["labels"]),
                   declared.get("label") or method_label(declared["method"]), declared.get("ranked", True))


def method_label(name: str) -> str:
    """A registered method's display label; the name itself for an unknown one (reported when it is configured)."""
    try:
        return methods.get_method(name).label
    except methods.UnknownMethodError:
        return name


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
    spec = read_yaml(suite_file(name_or_path), "suite file") or {}
    validate_spec(spec)
    return spec


def validate_spec(spec: dict[str, Any]) -> None:
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema comes with snakemake
        return
    schema = yaml.safe_load(SCHEMA.read_text())
    # The built-in datasets are the files of benchmarks/config/datasets; any other is named by its YAML's path.
    schema["properties"]["datasets"]["items"]["properties"]["name"]["else"] = {"enum": available_datasets()}
    try:
        jsonschema.validate(spec, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "(top level)"
        raise ConfigError(f"suite {spec.get('name', '?')!r}: {where}: {exc.message}") from None
    both = sorted(set(spec["methods"]) & set(spec.get("beyond") or []))
    if both:
        raise ConfigError(f"suite {spec.get('name', '?')!r}: beyond: {', '.join(both)} also in methods (a row is in one)")


def dataset_present(name: str, root: str, marker: str) -> bool:
    """Whether the dataset's marker file is under ``root`` (the synthetic dataset is made when it is used)."""
    return name == "synthetic" or (Path(root) / marker).is_file()


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
    files: dict[str, str] = {}
    for d in spec["datasets"]:
        _resolve_dataset(d, str(data_root).rstrip("/"))
        root = roots[d["name"]] = d["data_root"]
        files[d["name"]] = d["file"]
        dataset = load_dataset(d["file"])
        if only and d["name"] not in only:
            skipped[d["name"]] = "not selected (config 'datasets')"
        elif d["name"] not in pending and not dataset_present(d["name"], root, dataset.marker_file):
            how = dataset.prepare or "see benchmarks/config/datasets"
            msg = f"dataset {d['name']!r} not found at {root!r}: {how}"
            if not skip_missing:
                raise ConfigError(msg + ". Pass --config data_root=DIR, or skip_missing=true to run the suite "
                                        "on the datasets present (the report lists the skipped ones).")
            skipped[d["name"]] = msg

    common = list(spec.get("set", []))
    per_method = spec.get("method_set", {}) or {}
    per_dataset = spec.get("dataset_set", {}) or {}
    seeds = spec.get("seeds", DEFAULT_SEEDS)
    proposed = spec.get("proposed")
    runs: dict[str, Run] = {}

    def add(dataset: str, key: str, method: str, labels: Any, seed: int, extra: list[str], use: tuple[str, str]):
        run = Run(name, dataset, key, method, str(labels), seed, roots[dataset],
                  common + list(per_dataset.get(dataset, [])) + list(per_method.get(method, [])) + extra,
                  dataset_file=files[dataset] if is_dataset_file(files[dataset]) else "")
        run = runs.setdefault(run.path, run)
        if use not in run.uses:
            run.uses.append(use)

    for d in spec["datasets"]:
        if d["name"] in skipped:
            continue
        for key in spec["methods"] + (spec.get("beyond") or []):
            row = row_spec(spec, key)
            for labels in ([row.labels] if row.labels else d["labels"]):
                for seed in seeds:
                    add(d["name"], key, row.method, labels, seed, list(row.sets), ("main", key))

    def settings(block: dict[str, Any]):
        for s in block.get("settings", []):
            if s["dataset"] in roots and s["dataset"] not in skipped:
                yield s["dataset"], s["labels"]

    abl = spec.get("ablation")
    if abl:
        for dataset, labels in settings(abl):
            for row in abl["rows"]:
                for seed in seeds:
                    # ``full`` is the proposed method's default configuration: no preset, so it shares its Table I run.
                    extra = [] if row == "full" else [f"ablation={ABLATION_PRESETS[row]}"]
                    add(dataset, f"{proposed}-abl_{row}", proposed, labels, seed, extra, ("ablation", row))
    for block, key, opt, fmt in (("t_sweep", "t", "t", str), ("lambda_sweep", "lam", "lambda", _fmt_lambda)):
        sweep = spec.get(block)
        if sweep:
            for dataset, labels in settings(sweep):
                for value in sweep["values"]:
                    for seed in seeds:
                        add(dataset, f"{proposed}-{key}{fmt(value)}", proposed, labels, seed, [f"{opt}={value}"],
                            (block, f"{key}{fmt(value)}"))
    enc = spec.get("encodings")
    if enc:
        for dataset, labels in settings(enc):
            for value in enc["values"]:
                for seed in seeds:
                    add(dataset, f"{proposed}-enc_{value}", proposed, labels, seed, [f"encoding={value}"],
                        ("encodings", value))

    snap = spec.get("feature_snapshots")
    if snap and snap["dataset"] in roots and snap["dataset"] not in skipped:
        add(snap["dataset"], proposed, proposed, snap["labels"], seeds[0], [], ("features", proposed))

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


def _resolve_dataset(entry: dict[str, Any], data_root: str) -> None:
    """A suite's dataset entry in place: ``file`` (what ``--dataset`` is given), ``name`` (the dataset's own)
    and ``data_root`` (``{data_root}`` substituted; default: the dataset's)."""
    ref = str(entry["name"]).replace("{data_root}", data_root)
    dataset = load_dataset(ref)
    entry.update(file=ref, name=dataset.name)
    root = entry.get("data_root") or dataset.run.get("data_root", "")
    entry["data_root"] = str(root).replace("{data_root}", data_root)


def _dedup(runs: list[Run]) -> tuple[list[Run], dict[str, str]]:
    """Runs whose configuration hash is equal are trained once (the first one in suite order)."""
    from ..config import config_hash, load_config

    by_hash: dict[str, Run] = {}
    aliases: dict[str, str] = {}
    kept: list[Run] = []
    for run in runs:
        config, _ = load_config(run.overrides())
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


__all__ = ["ABLATION_LABELS", "ABLATION_PRESETS", "ENCODING_LABELS", "RowSpec", "Run", "Suite", "load_spec",
           "load_suite", "method_label", "validate_spec"]
