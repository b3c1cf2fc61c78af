"""Tables I-VI from stored run results (``tables.md``): CSV, Markdown and LaTeX.

Every cell aggregates the runs of one (dataset, row, labels) over the suite's seeds: the run value is the
test-set mean of ``eval/summary.json``; the cell is mean ± sample std (ddof = 1, blank with one run). The
paper column comes from ``benchmarks/report/data/paper_values.csv``, which cites the source of every value. Rows
beyond the paper (the suite's ``beyond``) follow the paper's rows below a heading row, without paper column or best
marking; their cells show the method's own published value (``published_values.csv``) and the difference to it.

A run whose training failed (its summary's ``status`` is ``failed``, e.g. a diverged loss) is left out of the
means and marked: ``[failed k]`` in the cell (``failed`` alone when no run of the cell succeeded), ``n_failed``
and ``failed_runs`` in the CSV, and its reason in the footer. Every CSV row carries the provenance of its
runs, aligned with ``run_dirs``: configuration hashes, seeds, code versions (commit, ``+dirty``) and devices
of the trainings. Files are written atomically.

Beside the paper's metrics every table carries NSD (surface Dice at the dataset protocol's tolerance), which
checkpoint its cells come from (``checkpoint``: held-out best, last, or the test-best oracle, marked †), the
compute of its runs (wall-clock hours per run and device-hours per cell, from ``log.csv``) and, for Tables
I-III, paired statistics of every row against the suite's reference rows (:mod:`.stats`): the bootstrap 95 %
CI of the mean per-case Dice difference in the table, p-values (Wilcoxon, Holm) in the CSVs
(``<stem>_stats.csv`` has every comparison).
"""

from __future__ import annotations

import csv
import html
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

import methods
from methods.base import DatasetInfo

from ..config.dataset import load_dataset
from ..errors import SSLBenchError
from ..io import write_csv, write_text
from ..rundir import EVAL_FINAL
from . import stats
from .artifacts import stats_stem
from .suites import ABLATION_LABELS, Suite, method_label

METRICS = ("dice", "jaccard", "asd", "hd95")
#: The paper's metrics and NSD: the columns of every table.
TABLE_METRICS = (*METRICS, "nsd")
METRIC_HEADERS = {"dice": "Dice (%) ↑", "jaccard": "Jaccard (%) ↑", "asd": "ASD (voxel) ↓", "hd95": "95HD (voxel) ↓",
                  "nsd": "NSD (%) ↑"}
#: What each ``checkpoint_kind`` of a summary is, for the footers.
CHECKPOINT_TEXT = {
    "heldout_best": "held-out best (highest mean Dice on the held-out validation cases)",
    "last": "last (final iteration)",
    "test_best": "test-best oracle † (highest test-set Dice: optimistic, literature mode)",
    "file": "a checkpoint file named at evaluation",
}
CHECKPOINT_FILES = {"checkpoint_best.pt": "heldout_best", "checkpoint_final.pt": "last",
                    "checkpoint_test_best.pt": "test_best"}
LOWER_IS_BETTER = {"asd", "hd95"}
TAG_MARKS = {"L": "", "D": "d", "I": "i", "O": "o", "T": "t"}
#: Published values, rows of differences included (their ``method`` is the suite's difference key).
PAPER_CSV = Path(__file__).with_name("data") / "paper_values.csv"
#: The rows beyond the paper's own published values (shown instead of a paper column).
PUBLISHED_CSV = Path(__file__).with_name("data") / "published_values.csv"
TAG_TEXT = {"L": "printed in the paper's text", "D": "derived from a difference the paper's text quotes",
            "I": "inferred", "O": "the method's own paper or repository", "T": "a third-party transcription"}
EMPTY_POLICY_TEXT = {"penalty": "Dice = Jaccard = 0, ASD and 95HD = the volume diagonal",
                     "official_zero": "every metric 0, as the official code does", "nan": "Dice = Jaccard = 0, "
                     "distances left out"}
#: LaTeX packages the ``.tex`` tables use.
LATEX_PACKAGES = "booktabs, graphicx, xcolor"
DEMO_NOTE = "DEMO: tiny budgets on small data; the numbers show the pipeline, not the methods."
CSV_COLUMNS = ["table", "protocol", "label_count", "row_key", "metric", "mean", "std", "n_runs", "n_empty", "paper",
               "paper_tag", "delta", "selection", "lcc", "empty_policy", "units", "run_dirs", "n_failed", "failed_runs",
               "config_hashes", "seeds", "code", "devices", "published", "published_tag", "checkpoint",
               "wall_hours_per_run", "device_hours", "nsd_tolerance_mm", "reference", "diff_mean", "diff_ci_low",
               "diff_ci_high", "p_value", "p_holm", "significant"]


class MissingResults(SSLBenchError):
    pass


def load_paper_values(path: Path = PAPER_CSV) -> dict[tuple[str, str, int, str], dict[str, tuple[float, str]]]:
    """``(table, protocol, label_count, row) -> {metric: (value, tag)}``."""
    out: dict[tuple[str, str, int, str], dict[str, tuple[float, str]]] = {}
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    for row in csv.DictReader(lines):
        key = (row["table"], row["protocol"], int(row["label_count"]), row["method"])
        for metric in METRICS:
            if row[metric].strip():
                out.setdefault(key, {})[metric] = (float(row[metric]), row["tag"])
    return out


def trained_with(summary: dict[str, Any]) -> dict[str, Any]:
    """The provenance of the training a summary scored (older summaries: the evaluation's own)."""
    return summary.get("training_provenance") or summary.get("provenance") or {}


def code_text(summary: dict[str, Any]) -> str:
    """``<commit>`` or ``<commit>+dirty`` of the code that trained the run; ``?`` when unknown."""
    code = trained_with(summary).get("code")
    if not isinstance(code, dict) or not code.get("commit"):
        return "?"
    return str(code["commit"])[:12] + ("+dirty" if code.get("dirty") else "")


def checkpoint_kind(summary: dict[str, Any]) -> str:
    """``heldout_best``, ``last``, ``test_best`` or ``file``: the checkpoint a summary scored (``?`` unknown)."""
    return summary.get("checkpoint_kind") or CHECKPOINT_FILES.get(str(summary.get("checkpoint")), "?")


def run_compute(log: Path) -> tuple[float | None, int | None]:
    """Training wall-clock seconds (the sum of ``log.csv``'s per-iteration ``seconds``, which include
    validation and checkpoint writes) and optimiser steps of a run; ``None`` where the log lacks them."""
    if not log.is_file() or not log.stat().st_size:
        return None, None
    df = pd.read_csv(log)
    wall = float(df["seconds"].sum()) if "seconds" in df else None
    step_cols = [c for c in df.columns if c.startswith("steps_")]
    steps = int(df[step_cols].iloc[-1].sum()) if step_cols and len(df) else None
    return wall, steps


def device_text(summary: dict[str, Any]) -> str:
    """``cpu``, ``cuda:<GPU name>`` or ``?``: where the run was trained."""
    device = trained_with(summary).get("device")
    if not isinstance(device, dict):
        return "?"
    return f"{device.get('type', '?')}:{device['name']}" if device.get("name") else str(device.get("type", "?"))


@dataclass
class Cell:
    values: dict[str, list[float]] = field(default_factory=dict)
    n_empty: int = 0
    run_dirs: list[str] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def mean(self, metric: str) -> float:
        v = self.values.get(metric, [])
        return sum(v) / len(v) if v else math.nan

    def std(self, metric: str) -> float:
        v = self.values.get(metric, [])
        if len(v) < 2:
            return math.nan
        m = sum(v) / len(v)
        return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))

    @property
    def n(self) -> int:
        """Runs in the means: the cell's runs less the failed ones."""
        return len(self.run_dirs) - len(self.failed)


class Results:
    """Reads the stored results of a suite's runs."""

    def __init__(self, suite: Suite, root: Path = Path(".")) -> None:
        self.suite = suite
        self.root = root
        self._cache: dict[str, dict[str, Any]] = {}

    def summary(self, run_dir: str) -> dict[str, Any]:
        if run_dir not in self._cache:
            path = self.root / run_dir / "eval" / "summary.json"
            if not path.is_file():
                raise MissingResults(f"{path} is missing: run `snakemake` (or `sslbench evaluate {run_dir}`) first")
            try:
                self._cache[run_dir] = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise MissingResults(f"{path} is not valid JSON ({exc}): delete it and rerun "
                                     f"`sslbench evaluate {run_dir}`") from None
        return self._cache[run_dir]

    def cell(self, dataset: str, key: str, labels: str) -> Cell:
        cell = Cell()
        for seed in self.suite.spec.get("seeds", [1337, 1338, 1339]):
            run_dir = self.suite.find(dataset, key, str(labels), seed)
            s = self.summary(run_dir)
            cell.run_dirs.append(run_dir)
            cell.summaries.append(s)
            if s.get("status") == "failed":
                cell.failed.append(run_dir)
                continue
            for metric in TABLE_METRICS:
                if s.get(f"{metric}_mean") is not None:  # NSD is absent from older summaries
                    cell.values.setdefault(metric, []).append(float(s[f"{metric}_mean"]))
            cell.n_empty += int(s.get("n_empty", 0))
        return cell

    def per_case(self, run_dir: str, folder: str = "eval") -> pd.DataFrame | None:
        """``<run>/<folder>/per_case.csv``, or ``None`` when it is missing."""
        path = self.root / run_dir / folder / "per_case.csv"
        return pd.read_csv(path) if path.is_file() and path.stat().st_size else None

    def pooled(self, cell: Cell, metric: str = "dice") -> pd.Series:
        """The cell's per-case ``metric`` pooled over its successful runs (case means); empty without data."""
        frames = [self.per_case(r) for r in cell.run_dirs if r not in cell.failed]
        if any(f is None or metric not in f for f in frames):
            return pd.Series(dtype=float)
        return stats.pooled_cases(frames, metric)

    def compare(self, dataset: str, labels: str, reference: str, cfg: dict[str, Any]) -> list[stats.Comparison]:
        """Every main-table row (``beyond`` rows too) of ``dataset`` at ``labels`` with per-case results against ``reference``
        (:func:`.stats.compare` with the suite's statistics settings ``cfg``); empty without the reference's."""
        pooled = {}
        for row in self.suite.spec["methods"] + self.suite.beyond:
            cell = self.cell(dataset, row, self.suite.row(row).labels or labels)
            pooled[row] = self.pooled(cell, cfg["metric"])
        if not len(pooled[reference]):
            return []
        return stats.compare({k: v for k, v in pooled.items() if len(v) or k == reference}, reference,
                             cfg["resamples"], cfg["confidence"], cfg["alpha"], cfg["seed"])

    def compute(self, cell: Cell) -> tuple[float, float]:
        """Mean training wall-clock hours per run and total device-hours (one device per run) of a cell."""
        walls = [w for r in cell.run_dirs if (w := run_compute(self.root / r / "log.csv")[0]) is not None]
        if not walls:
            return math.nan, math.nan
        return sum(walls) / len(walls) / 3600, sum(walls) / 3600

    def split_counts(self, run_dir: str) -> tuple[int, int] | None:
        path = self.root / run_dir / "split.json"
        if not path.is_file():
            return None
        split = json.loads(path.read_text())
        provenance = self.root / run_dir / "provenance.json"
        used = json.loads(provenance.read_text()).get("uses_unlabeled", True) if provenance.is_file() else True
        return len(split.get("labeled", [])), len(split.get("unlabeled", [])) if used else 0


def _fmt(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def _signed(x: float) -> str:
    return "" if math.isnan(x) else f"{x:+.2f}".replace("-", "−")


def _reference(rec: dict[str, Any]) -> tuple[float, str, str] | None:
    """``(value, tag, prefix)`` a cell is compared with: the paper's value, else (a row beyond the paper) the
    method's own published one; None without either."""
    if rec.get("paper", "") != "":
        return float(rec["paper"]), rec["paper_tag"], ""
    if rec.get("published", "") != "":
        return float(rec["published"]), rec["published_tag"], "published "
    return None


def _flagged(rec: dict[str, Any]) -> bool:
    """A Dice or Jaccard cell further from its published value than max(1.5 points, 2 std): marked ⚑."""
    if _reference(rec) is None or rec["metric"] not in ("dice", "jaccard"):
        return False
    limit = max(1.5, 2 * float(rec["std"])) if rec["std"] != "" else 1.5
    return abs(float(rec["delta"])) > limit


def _rounded(x: float) -> float | str:
    return "" if math.isnan(x) else round(x, 4)


def _number(x: Any) -> float:
    return math.nan if x in ("", None) else float(x)


def _comparison_text(c: stats.Comparison | None, is_reference: bool) -> str:
    """``+1.23 [0.40, 2.05]*`` (``*``: Holm-significant), ``ref`` for the reference row, blank without data."""
    if is_reference:
        return "ref"
    if c is None or math.isnan(c.mean_diff):
        return ""
    ci = f" [{_signed(c.ci_low)}, {_signed(c.ci_high)}]" if not math.isnan(c.ci_low) else ""
    return _signed(c.mean_diff) + ci + ("*" if c.significant else "")


def _label_int(labels: str) -> int | None:
    return int(labels) if str(labels).isdigit() else None


def _supervised(method: str) -> bool:
    """Whether a method's recipe trains on labeled batches only (its ``run_defaults`` draw no unlabeled one)."""
    try:
        cls = methods.get_method(method)
    except methods.UnknownMethodError:
        return False
    return cls.run_defaults(cls.Options(), DatasetInfo()).get("unlabeled_bs") == 0


def _tag_notes(tags: Iterable[str]) -> str:
    """``; d: derived from ...``: what the marks of ``tags`` mean, in :data:`TAG_MARKS` order."""
    ordered = sorted(set(tags), key=lambda t: list(TAG_MARKS).index(t) if t in TAG_MARKS else len(TAG_MARKS))
    return "".join(f"; {TAG_MARKS.get(t) or 'unmarked'}: {TAG_TEXT.get(t, t)}" for t in ordered)


@dataclass
class Row:
    key: str
    label: str
    cells: dict[str, Cell]  # group label -> cell
    extra: bool = False


class TableBuilder:
    def __init__(self, suite: Suite, root: Path = Path("."), paper: Path = PAPER_CSV,
                 published: Path = PUBLISHED_CSV) -> None:
        self.suite = suite
        self.results = Results(suite, root)
        self.paper = load_paper_values(paper)
        self.published = load_paper_values(published)
        self.records: list[dict[str, Any]] = []

    # ----- common -----------------------------------------------------------------------------------------
    def paper_value(self, table: str, protocol: str, labels: str, row: str, metric: str,
                    values: dict[tuple[str, str, int, str], dict[str, tuple[float, str]]] | None = None
                    ) -> tuple[float, str]:
        """The paper's value of a cell and its tag (from ``values`` instead: e.g. the published values)."""
        count = _label_int(labels)
        if count is None:
            return math.nan, ""
        value = (self.paper if values is None else values).get((table, protocol, count, row), {}).get(metric)
        return value if value else (math.nan, "")

    def record(self, table: str, protocol: str, labels: str, row: str, cell: Cell,
               beyond: bool = False) -> dict[str, dict[str, Any]]:
        """CSV records of a cell; a row ``beyond`` the paper has no paper value, its Δ is to its published one."""
        out = {}
        s0 = next((s for s in cell.summaries if s.get("status") != "failed"), {})
        wall, device_hours = self.results.compute(cell)
        for metric in TABLE_METRICS:
            paper, tag = (math.nan, "") if beyond else self.paper_value(table, protocol, labels, row, metric)
            published, published_tag = self.paper_value(table, protocol, labels, row, metric, self.published) \
                if beyond else (math.nan, "")
            reference = published if beyond else paper
            mean, std = cell.mean(metric), cell.std(metric)
            rec = {
                "table": table, "protocol": protocol, "label_count": labels, "row_key": row, "metric": metric,
                "mean": round(mean, 4), "std": "" if math.isnan(std) else round(std, 4), "n_runs": cell.n,
                "n_empty": cell.n_empty, "paper": "" if math.isnan(paper) else paper, "paper_tag": tag,
                "delta": "" if math.isnan(reference) else round(mean - reference, 4),
                "selection": s0.get("selection", ""), "lcc": s0.get("lcc", ""),
                "empty_policy": s0.get("empty_policy", ""), "units": s0.get("units", {}).get(metric, ""),
                "run_dirs": ";".join(cell.run_dirs), "n_failed": len(cell.failed), "failed_runs": ";".join(cell.failed),
                "config_hashes": ";".join(str(s.get("config_hash", "?")) for s in cell.summaries),
                "seeds": ";".join(str(s.get("seed", "?")) for s in cell.summaries),
                "code": ";".join(map(code_text, cell.summaries)),
                "devices": ";".join(map(device_text, cell.summaries)),
                "published": "" if math.isnan(published) else published, "published_tag": published_tag,
                "checkpoint": ";".join(sorted({checkpoint_kind(s) for s in cell.summaries if s.get("status") != "failed"})),
                "wall_hours_per_run": "" if math.isnan(wall) else round(wall, 6),
                "device_hours": "" if math.isnan(device_hours) else round(device_hours, 6),
                "nsd_tolerance_mm": s0.get("nsd_tolerance_mm", "") if metric == "nsd" else "",
            }
            out[metric] = rec
            self.records.append(rec)
        return out

    def cell_text(self, rec: dict[str, Any], bold: bool, latex: bool) -> str:
        if rec["n_runs"] == 0 and rec.get("n_failed"):
            return "failed"
        mean, std = float(rec["mean"]), rec["std"]
        text = _fmt(mean) + (f" ± {_fmt(float(std))}" if std != "" else "")
        if bold:
            text = f"\\textbf{{{text}}}" if latex else f"**{text}**"
        reference = _reference(rec)
        if reference is not None:
            value, tag, prefix = reference
            mark = TAG_MARKS.get(tag, "")
            paper = prefix + f"{value:.2f}"
            if mark:
                paper += f"$^{{{mark}}}$" if latex else f"<sup>{mark}</sup>"
            delta = _signed(float(rec["delta"]))
            flag = (r" $\diamond$" if latex else " ⚑") if _flagged(rec) else ""
            if self.suite.demo and latex:
                delta = r"\textcolor{gray}{" + delta + "}"
            dsym = "$\\Delta$ " if latex else "Δ "
            text += f" ({paper}, {dsym}{delta}{flag})"
        if "test_best" in str(rec.get("checkpoint", "")):
            text += " †"
        if rec["n_empty"]:
            text += f" [empty {rec['n_empty']}]"
        if rec.get("n_failed"):
            text += f" [failed {rec['n_failed']}]"
        return text

    def footer(self, protocols: Iterable[str], label_text: str, records: list[dict[str, Any]],
               extra: list[str] | None = None) -> list[str]:
        """The notes under a table: only what its ``records`` (its cells) show."""
        s = next((c for c in self.results._cache.values() if c.get("status") != "failed"), {})
        codes = ", ".join(sorted({code_text(c) for c in self.results._cache.values()})) or "?"
        seeds = ", ".join(map(str, self.suite.spec.get("seeds", [1337, 1338, 1339])))
        budget = self.budget_text()
        lines = [
            f"Protocol: {', '.join(protocols)}; labels: {label_text}.",
            (f"Selection: {s.get('selection', '?')}; LCC: {'on' if s.get('lcc') else 'off'}; empty-prediction "
             f"policy: {s.get('empty_policy', '?')}; Dice and Jaccard in %, ASD and 95HD in voxels."),
            (f"Cells: mean ± sample std over seeds {seeds} (std blank with one seed); budget: {budget}; "
             f"suite {self.suite.name}; code {codes}."),
        ]
        cells = [r for r in records if r.get("run_dirs")]  # not the rows of differences
        with_paper = [r for r in cells if r.get("paper", "") != ""]
        if with_paper:
            lines.append("In parentheses: the published value (benchmarks/report/data/paper_values.csv cites the "
                         f"source of each{_tag_notes(r['paper_tag'] for r in with_paper)}) and Δ = ours − paper "
                         "(negative is better for ASD and 95HD).")
        if any(_flagged(r) for r in cells):
            lines.append("⚑: Dice or Jaccard more than max(1.5 points, 2 × std) away from the published value.")
        if any(r.get("n_empty") for r in records):
            policy = s.get("empty_policy", "?")
            lines.append(f"[empty N]: N test cases (summed over the cell's runs) got an empty prediction, scored "
                         f"under the {policy} policy ({EMPTY_POLICY_TEXT.get(policy, 'see the run summaries')}).")
        if self.suite.demo:
            lines.append(DEMO_NOTE)
        if self.suite.skipped:
            lines.append("Skipped datasets: " + "; ".join(self.suite.skipped.values()) + ".")
        return lines + (extra or [])

    def budget_text(self) -> str:
        """``official (each method's recipe)``, or the suite's overrides of the recipes where it has any."""
        sets, per_method = self.suite.spec.get("set") or [], self.suite.spec.get("method_set") or {}
        if not sets and not per_method:
            return "demo budget" if self.suite.demo else "official (each method's recipe)"
        text = ("demo budget: " if self.suite.demo else "") + "each method's recipe with the suite's overrides"
        text += f" ({', '.join(sets)})" if sets else ""
        return text + (" and per-method overrides (method_set)" if per_method else "")

    @staticmethod
    def checkpoint_line(records: list[dict[str, Any]], compute: bool) -> str:
        """Which checkpoint the table's cells show and where the other one is; NSD's tolerance where NSD was
        scored; the compute column when the table has one."""
        kinds = sorted({k for rec in records for k in str(rec.get("checkpoint") or "").split(";") if k})
        shown = "; ".join(CHECKPOINT_TEXT.get(k, k) for k in kinds) or "unknown"
        tolerance = sorted({str(rec["nsd_tolerance_mm"]) for rec in records if rec.get("nsd_tolerance_mm") not in
                            (None, "")})
        scored = any(r["metric"] == "nsd" and r.get("run_dirs") and not math.isnan(_number(r["mean"]))
                     for r in records)
        if tolerance:
            nsd = f"NSD: surface Dice at {', '.join(tolerance)} mm (the dataset protocol's tolerance)."
        elif scored:
            nsd = "NSD: surface Dice (its tolerance is not recorded in the run summaries)."
        else:
            nsd = "NSD: not in the run summaries (scored where the dataset declares nsd_tolerance_mm)."
        line = (f"Checkpoint shown: {shown}; the last checkpoint of every run is scored too (eval_final/, figure "
                f"fig_last_vs_best_<dataset>). {nsd}")
        if compute:
            line += (" Compute: training wall-clock hours per run and device-hours per cell (runs.csv; one device per "
                     "run).")
        return line

    # ----- rendering ------------------------------------------------------------------------------------------
    @staticmethod
    def markdown(title: str, header: list[str], rows: list[list[str]], footer: list[str]) -> str:
        lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines + [""] + [f"- {f}" for f in footer]) + "\n"

    @staticmethod
    def html(title: str, header: list[str], rows: list[list[str]], footer: list[str]) -> str:
        """A standalone page of the Markdown table (for the Snakemake report)."""
        def cell(t: str) -> str:
            t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(t))
            return re.sub(r"&lt;sup&gt;(\w+)&lt;/sup&gt;", r"<sup>\1</sup>", t)
        body = ["<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in rows]
        notes = "".join(f"<li>{cell(f)}</li>" for f in footer)
        return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title>"
                "<style>table{border-collapse:collapse;font:13px sans-serif}td,th{border:1px solid #ccc;"
                "padding:3px 6px;text-align:right}td:first-child,th:first-child{text-align:left}</style></head>"
                f"<body><h3>{html.escape(title)}</h3><table><tr>"
                + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" + "".join(body)
                + f"</table><ul>{notes}</ul></body></html>\n")

    @staticmethod
    def latex(title: str, header: list[str], rows: list[list[str]], footer: list[str]) -> str:
        """A ``table`` float (needs ``\\usepackage{booktabs, graphicx, xcolor}``); numbers right-aligned."""
        def esc(t: str) -> str:
            if "\\textbf" in t or "\\textcolor" in t or "$" in t:
                return t.replace("±", r"$\pm$").replace("−", "-").replace("%", r"\%").replace("⚑", r"$\diamond$").replace("†", r"$^\dagger$")
            return (t.replace("\\", r"\textbackslash{}").replace("&", r"\&").replace("%", r"\%")
                    .replace("_", r"\_").replace("±", r"$\pm$").replace("−", "-").replace("↑", r"$\uparrow$")
                    .replace("↓", r"$\downarrow$").replace("Δ", r"$\Delta$").replace("·", r"$\cdot$")
                    .replace("⚑", r"$\diamond$").replace("λ", r"$\lambda$").replace("†", r"$^\dagger$"))
        out = [f"% needs \\usepackage{{{LATEX_PACKAGES}}}", r"\begin{table}[t]", r"\centering", f"\\caption{{{esc(title)}}}",
               r"\resizebox{\linewidth}{!}{%", r"\begin{tabular}{ll" + "r" * (len(header) - 2) + "}", r"\toprule",
               " & ".join(map(esc, header)) + r" \\",
               r"\midrule"]
        out += [" & ".join(map(esc, r)) + r" \\" for r in rows]
        out += [r"\bottomrule", r"\end{tabular}}", r"\par\footnotesize " + " ".join(map(esc, footer)), r"\end{table}"]
        return "\n".join(out) + "\n"

    def write(self, out: Path, stem: str, title: str, header: list[str], md_rows: list[list[str]],
              tex_rows: list[list[str]], footer: list[str], records: list[dict[str, Any]]) -> None:
        failed = sorted({r for rec in records for r in str(rec.get("failed_runs") or "").split(";") if r})
        compute = any(h.endswith("device-h / run") for h in header)
        footer = footer + [self.checkpoint_line(records, compute)] + [f"Failed run (left out of the means): {r}: "
                           f"{self.results.summary(r).get('failure', {}).get('message', 'unknown reason')}."
                           for r in failed]
        counts = {"n_runs": "Int64", "n_empty": "Int64", "n_failed": "Int64"}
        write_csv(out / f"{stem}.csv", pd.DataFrame(records, columns=CSV_COLUMNS).astype(counts))
        write_text(out / f"{stem}.md", self.markdown(title, header, md_rows, footer))
        write_text(out / f"{stem}.html", self.html(title, header, md_rows, footer))
        greyed = self.suite.demo and any(_reference(r) is not None for r in records if r.get("run_dirs"))
        tex_footer = [f"{f} Δ is greyed out." if greyed and f == DEMO_NOTE else f for f in footer]
        write_text(out / f"{stem}.tex", self.latex(title, header, tex_rows, tex_footer))

    # ----- paired statistics ------------------------------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        return stats.settings(self.suite.spec)

    def references(self) -> list[str]:
        return stats.references(self.suite.spec)

    def comparisons(self, dataset: str, table_id: str, groups: list[str],
                    recs: dict[tuple[str, str], dict[str, dict[str, Any]]], path: Path) -> dict[tuple, stats.Comparison]:
        """Every row against every reference row per label group, written to ``path`` (no rows without a
        reference row or per-case results); the first reference's
        comparison is also put on the rows' Dice records. Returns ``{(group, reference, row): comparison}``."""
        cfg, refs = self.statistics(), self.references()
        out: dict[tuple, stats.Comparison] = {}
        frames = []
        for g in groups:
            for ref in refs:
                found = self.results.compare(dataset, g, ref, cfg)
                out.update({(g, ref, c.row): c for c in found})
                frames.append(stats.comparison_frame(found, table=table_id, protocol=dataset, label_count=g,
                                                     metric=cfg["metric"], resamples=cfg["resamples"],
                                                     confidence=cfg["confidence"], seed=cfg["seed"]))
                if ref != refs[0]:
                    continue
                for c in found:
                    rec = recs[(c.row, g)][cfg["metric"]] if cfg["metric"] in TABLE_METRICS else {}
                    rec.update(reference=ref, diff_mean=_rounded(c.mean_diff), diff_ci_low=_rounded(c.ci_low),
                               diff_ci_high=_rounded(c.ci_high), p_value=c.p_value, p_holm=c.p_holm,
                               significant=c.significant)
        filled = [f for f in frames if len(f)]
        write_csv(path, pd.concat(filled, ignore_index=True) if filled else stats.comparison_frame(
            [], table=table_id, protocol=dataset, label_count="", metric="", resamples="", confidence="", seed=""))
        return out

    # ----- Tables I-III ---------------------------------------------------------------------------------------
    def compared(self) -> str:
        """``9 semi-supervised methods and the supervised <label> (and 2 methods beyond the paper)``: the distinct
        methods of the suite's declared rows (its ``methods``, then its ``beyond``); supervised: a method whose
        recipe draws no unlabeled batch."""
        shown = list(dict.fromkeys(self.suite.row(key).method for key in self.suite.spec["methods"]))
        supervised = [m for m in shown if _supervised(m)]
        n = len(shown) - len(supervised)
        parts = [f"{n} semi-supervised method{'' if n == 1 else 's'}"] if n else []
        if supervised:
            parts.append("the supervised " + " and ".join(map(method_label, supervised)))
        text = " and ".join(parts)
        beyond = set(dict.fromkeys(self.suite.row(key).method for key in self.suite.beyond)) - set(shown)
        if beyond:
            text += f" (and {len(beyond)} method{'' if len(beyond) == 1 else 's'} beyond the paper)"
        return text

    def beyond_note(self, records: list[dict[str, Any]]) -> str:
        """The note on the rows beyond the paper; their published values only where ``records`` show one."""
        text = (f"Beyond the paper: {', '.join(map(self.suite.row_label, self.suite.beyond))} came after the "
                "paper's comparison; no paper value and no best marking")
        published = [r for r in records if r.get("run_dirs") and r.get("published", "") != ""]
        if published:
            text += ("; in parentheses their own published value (benchmarks/report/data/published_values.csv "
                     f"cites the source of each{_tag_notes(r['published_tag'] for r in published)}) under the "
                     "method's own protocol and checkpoint selection, and Δ = ours − published")
        return text + "."

    def dataset_table(self, dataset: dict[str, Any], out: Path) -> None:
        name, spec = dataset["name"], load_dataset(dataset["file"])
        table, stem, what = spec.table.number or "", spec.table_stem, spec.table_title
        table_id = table or name
        groups = [str(x) for x in dataset["labels"]]
        start = len(self.records)
        recs: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        split: dict[tuple[str, str], tuple[int, int] | None] = {}
        for row in self.suite.spec["methods"]:
            fixed = self.suite.row(row).labels
            for g in groups:
                cell = self.results.cell(name, row, fixed or g)
                recs[(row, g)] = self.record(table_id, name, g, row, cell)
                split[(row, g)] = self.results.split_counts(cell.run_dirs[0])
        diff_rows = []
        for diff in self.suite.differences():
            a, b = diff["rows"]
            cells = []
            for g in groups:
                quoted = self.paper.get((table_id, name, _label_int(g) or -1, diff["key"]), {})
                for m in TABLE_METRICS:
                    d = float(recs[(a, g)][m]["mean"]) - float(recs[(b, g)][m]["mean"])
                    cells.append(_signed(d) + (f" (paper {_signed(quoted[m][0])})" if m in quoted else ""))
                    self.records.append({"table": table_id, "protocol": name, "label_count": g,
                                         "row_key": diff["key"], "metric": m, "mean": round(d, 4),
                                         "paper": quoted[m][0] if m in quoted else "", "run_dirs": ""})
                cells += [""] * (len(self.references()) + 1)
            diff_rows.append([diff["label"], ""] + cells)
        for row in self.suite.beyond:
            fixed = self.suite.row(row).labels
            for g in groups:
                cell = self.results.cell(name, row, fixed or g)
                recs[(row, g)] = self.record(table_id, name, g, row, cell, beyond=True)
                split[(row, g)] = self.results.split_counts(cell.run_dirs[0])
        comparisons = self.comparisons(name, table_id, groups, recs, out / f"{stats_stem(stem)}.csv")
        best: dict[tuple[str, str], str] = {}
        ranked = self.suite.ranked_rows()
        for g in groups:
            for metric in TABLE_METRICS:
                cands = [(float(recs[(r, g)][metric]["mean"]), r) for r in ranked
                         if not math.isnan(float(recs[(r, g)][metric]["mean"]))]
                if cands:
                    best[(g, metric)] = (min if metric in LOWER_IS_BETTER else max)(cands)[1]
        refs = self.references()
        header = ["Method", "Scans used (L / U)"] + [
            h for g in groups for h in [f"{g} labels: {METRIC_HEADERS[m]}" for m in TABLE_METRICS]
            + [f"{g} labels: Δ Dice vs {self.suite.row_label(r)} [95 % CI]" for r in refs]
            + [f"{g} labels: device-h / run"]]

        def cells(row: str, latex: bool, ranked_row: bool) -> list[str]:
            return [text for g in groups for text in
                    [self.cell_text(recs[(row, g)][m], ranked_row and best.get((g, m)) == row, latex)
                     for m in TABLE_METRICS]
                    + [_comparison_text(comparisons.get((g, r, row)), row == r) for r in refs]
                    + [_fmt(_number(recs[(row, g)]["dice"]["wall_hours_per_run"]))]]

        md_rows, tex_rows = [], []
        for row in self.suite.spec["methods"]:
            scans = " · ".join(f"{c[0]} / {c[1]}" for g in groups if (c := split[(row, g)]))
            if self.suite.row(row).labels:
                scans = " / ".join(map(str, split[(row, groups[0])] or ("?", "?")))
            for latex, rows in ((False, md_rows), (True, tex_rows)):
                rows.append([self.suite.row_label(row), scans] + cells(row, latex, True))
        md_rows += diff_rows
        tex_rows += diff_rows
        if self.suite.beyond:
            blank = [""] * (len(header) - 1)
            md_rows.append(["*Beyond the paper*"] + blank)
            tex_rows.append(["Beyond the paper"] + blank)
        for row in self.suite.beyond:
            scans = " · ".join(f"{c[0]} / {c[1]}" for g in groups if (c := split[(row, g)]))
            for latex, rows in ((False, md_rows), (True, tex_rows)):
                rows.append([self.suite.row_label(row), scans] + cells(row, latex, False))
        pct = ", ".join(groups)
        title = f"{'[demo] ' if self.suite.demo else ''}Table {table or name}: Performance comparison of " \
                f"{self.compared()} on the {what}, using {pct} labeled scans"
        extra = list(spec.table.notes)
        if not spec.table.number:
            extra.append(f"Dataset {name!r} has no published values (no paper column).")
        if self.suite.beyond:
            extra.append(self.beyond_note(self.records[start:]))
        if refs:
            cfg = self.statistics()
            extra.append(f"Δ Dice vs a reference row: mean per-case difference (row − reference; per-case Dice pooled "
                         f"over seeds by case mean) with its percentile bootstrap {cfg['confidence']:.0%} CI "
                         f"({cfg['resamples']} resamples, seed {cfg['seed']}); * Holm-adjusted two-sided Wilcoxon "
                         f"signed-rank p < {cfg['alpha']} across the rows; p-values in {stats_stem(stem)}.csv and "
                         f"the table CSV.")
        fixed = "".join(f" ({self.suite.row_label(r)}: {self.suite.row(r).labels})" for r in self.suite.spec["methods"]
                        if self.suite.row(r).labels)
        footer = self.footer([name], pct + " labeled" + fixed, self.records[start:], extra)
        self.write(out, stem, title, header, md_rows, tex_rows, footer, self.records[start:])

    # ----- Tables IV-VI ---------------------------------------------------------------------------------------
    def block_table(self, block: str, out: Path) -> None:
        spec = self.suite.spec[block]
        present = {d["name"] for d in self.suite.datasets()}
        if block == "ablation":
            table, stem = "IV", "table_IV_ablation"
            rows = [(r, ABLATION_LABELS[r], f"{self.suite.proposed}-abl_{r}") for r in spec["rows"]]
            title = f"Table IV: Ablation study of {self.suite.row_label(self.suite.proposed)}'s components"
        elif block == "t_sweep":
            table, stem = "V", "table_V_passes"
            rows = [(f"t{v}", f"t = {v}", f"{self.suite.proposed}-t{v}") for v in spec["values"]]
            title = "Table V: Passes per sample t"
        else:
            from .suites import _fmt_lambda
            table, stem = "VI", "table_VI_lambda"
            rows = [(f"lam{_fmt_lambda(v)}", f"λ = {_fmt_lambda(v)}", f"{self.suite.proposed}-lam{_fmt_lambda(v)}")
                    for v in spec["values"]]
            title = "Table VI: Discrepancy weight λ"
        if self.suite.demo:
            title = "[demo] " + title
        start = len(self.records)
        header = ["Setting", "Row"] + [METRIC_HEADERS[m] for m in TABLE_METRICS]
        md_rows, tex_rows, settings = [], [], []
        for s in spec["settings"]:
            if s["dataset"] not in present:
                continue
            labels = str(s["labels"])
            settings.append(f"{s['dataset']} {labels} labels")
            for key, label, run_key in rows:
                cell = self.results.cell(s["dataset"], run_key, labels)
                rec = self.record(table, s["dataset"], labels, key, cell)
                for latex, out_rows in ((False, md_rows), (True, tex_rows)):
                    out_rows.append([f"{s['dataset']} ({labels} L)", label]
                                    + [self.cell_text(rec[m], False, latex) for m in TABLE_METRICS])
        title += " (" + "; ".join(settings) + ")"
        extra = []
        if any(r["protocol"] == "pancreas_mcnet" and r["row_key"] == "lam1e-2" for r in self.records[start:]):
            extra.append("The paper prints Jaccard 69.76 for pancreas λ = 1e-2, almost certainly a typo "
                         "(with Dice 73.87, the paper's other rows imply a Jaccard near 59-60).")
        if block == "ablation" and any(s["dataset"] != "pancreas_mcnet" for s in spec["settings"]):
            extra.append("The paper's ablation is on pancreas 10 %; this suite runs it on "
                         + ", ".join(s["dataset"] for s in spec["settings"]) + ".")
        footer = self.footer(sorted({s["dataset"] for s in spec["settings"] if s["dataset"] in present}),
                             ", ".join(settings), self.records[start:], extra)
        self.write(out, stem, title, header, md_rows, tex_rows, footer, self.records[start:])

    # ----- runs.csv / cases.csv -------------------------------------------------------------------------------
    def run_files(self, out: Path) -> None:
        rows, cases = [], []
        for run in self.suite.runs:
            s = self.results.summary(run.path)
            wall, steps = run_compute(self.results.root / run.path / "log.csv")
            last = self.results.root / run.path / EVAL_FINAL / "summary.json"
            last_dice = json.loads(last.read_text()).get("dice_mean") if last.is_file() else None
            prov = s.get("provenance", {})
            rows.append({
                "run_dir": run.path, "status": s.get("status", "completed"),
                "failure": (s.get("failure") or {}).get("message", ""),
                "config_hash": s.get("config_hash"), "dataset": run.dataset, "row": run.key,
                "method": run.method, "options": json.dumps(s.get("options", {}), sort_keys=True),
                "labels": run.labels, "seed": run.seed, "selection": s.get("selection"),
                "checkpoint": s.get("checkpoint"), "checkpoint_kind": checkpoint_kind(s),
                "checkpoint_iteration": (s.get("checkpoint_position") or {}).get("iteration"),
                **{m: s.get(f"{m}_mean") for m in TABLE_METRICS}, "dice_last": last_dice, "n_empty": s.get("n_empty"),
                "wall_seconds": "" if wall is None else round(wall, 2),
                "device_hours": "" if wall is None else round(wall / 3600, 6),
                "optimiser_steps": "" if steps is None else steps, "device": json.dumps(prov.get("device")),
                "code": json.dumps(prov.get("code")), "train_code": code_text(s), "train_device": device_text(s),
                "uses": json.dumps(run.uses),
            })
            per_case = self.results.root / run.path / "eval" / "per_case.csv"
            if per_case.is_file():
                df = pd.read_csv(per_case)
                for _, r in df.iterrows():
                    for m in (m for m in TABLE_METRICS if m in df):
                        cases.append({"run_dir": run.path, "case": r["case"], "metric": m, "value": r[m]})
        write_csv(out / "runs.csv", pd.DataFrame(rows))
        write_csv(out / "cases.csv", pd.DataFrame(cases, columns=["run_dir", "case", "metric", "value"]))

    def build(self, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        for d in self.suite.datasets():
            self.dataset_table(d, out)
        names = {d["name"] for d in self.suite.datasets()}
        for block in ("ablation", "t_sweep", "lambda_sweep"):
            if self.suite.spec.get(block) and any(s["dataset"] in names for s in self.suite.spec[block]["settings"]):
                self.block_table(block, out)
        self.run_files(out)
        return sorted(out.iterdir())


def build_tables(suite: Suite, out: str | Path, root: str | Path = ".") -> list[Path]:
    return TableBuilder(suite, Path(root)).build(Path(out))
