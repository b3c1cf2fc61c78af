"""Figures from stored run results (``tables.md`` sections 4-7), seaborn, PNG + PDF + CSV.

- ``fig7_complexity``: parameters (trainable, used at inference) and MACs (inference, training network) per
  method at 1x1x96^3 from ``results/complexity/<method>.json`` (``sslbench complexity --json``).
- ``fig5_encodings``: Dice/Jaccard/ASD/95HD per discrepancy encoding and setting (mean ± std over seeds; no error
  bars with one seed).
- ``fig_t_sweep`` / ``fig_lambda_sweep``: Tables V and VI as line plots; each y-axis spans at least
  :data:`MIN_SPAN`, so that differences far below the seed-to-seed spread do not look large.
- ``fig_training_curves``: total loss per iteration (from ``log.csv``) of each table row, legend beside the curves.
- ``fig3_qualitative``: image, ground truth and each method's prediction on the axial slice with the
  largest ground-truth area (``predictions.npz`` written by ``sslbench predict``).
- ``fig6_features``: the proposed method's decoder features over training from the weight snapshots of one run
  (``results/features/<suite>/fig6.npz`` written by ``sslbench features``).
- ``fig_last_vs_best_<dataset>``: test Dice of the checkpoint each table shows (held-out best, or the test-best
  oracle) and of the last checkpoint (``eval_final/``), per row, label setting and seed.
- ``fig_paired_<dataset>``: per-case Dice differences of every row against each reference row (per-case Dice
  pooled over seeds), with the mean and its bootstrap CI of the table (:mod:`.stats`).

Rows and methods follow the suite's (the paper's) order and are named as in the tables.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..errors import DataError
from ..io import write_files
from ..rundir import EVAL_FINAL
from . import stats
from .suites import ENCODING_LABELS, Suite, _fmt_lambda, method_label
from .tables import CHECKPOINT_TEXT, METRIC_HEADERS, METRICS, PAPER_CSV, Results, checkpoint_kind, load_paper_values

DPI = 110
#: The smallest y-range of a sweep panel (points for Dice and Jaccard, voxels for ASD and 95HD), so that a
#: difference far below the seed-to-seed spread does not fill the panel.
MIN_SPAN = {"dice": 10.0, "jaccard": 10.0, "asd": 2.0, "hd95": 5.0}


def _save(fig: plt.Figure, out: Path, stem: str, data: pd.DataFrame) -> None:
    """``<stem>.png``, ``.pdf`` and the plotted data ``.csv``, replaced together (:func:`~benchmarks.io.write_files`)."""
    try:
        write_files({
            out / f"{stem}.png": lambda f: fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight"),
            out / f"{stem}.pdf": lambda f: fig.savefig(f, format="pdf", bbox_inches="tight"),
            out / f"{stem}.csv": lambda f: f.write(data.to_csv(index=False).encode()),
        })
    finally:
        plt.close(fig)


def _title(suite: Suite, text: str) -> str:
    return f"[demo] {text}" if suite.demo else text


def _spread(suite: Suite) -> tuple[str, str | None]:
    """``(title text, seaborn errorbar)``: mean ± std over several seeds; one seed has no error bar."""
    seeds = suite.spec.get("seeds", [1337, 1338, 1339])
    return ("mean ± std over seeds", "sd") if len(seeds) > 1 else (f"one seed ({seeds[0]}): no error bars", None)


def _widen(ax: plt.Axes, span: float) -> None:
    """Show at least ``span`` on the y-axis, centred on the data, never below 0."""
    lo, hi = ax.get_ylim()
    if hi - lo < span:
        mid = (lo + hi) / 2
        lo = max(0.0, mid - span / 2)
        ax.set_ylim(lo, lo + span)


def fig_complexity(suite: Suite, out: Path, complexity_dir: Path) -> None:
    rows = []
    for method in dict.fromkeys(r.method for r in suite.runs):  # suite (paper) order
        path = complexity_dir / f"{method}.json"
        data = json.loads(path.read_text())
        missing = {"params", "params_train", "params_inference", "macs", "macs_train"} - set(data)
        if missing:
            raise DataError(f"{path} lacks {', '.join(sorted(missing))} (written by an older sslbench); "
                            "delete it and rerun `sslbench complexity --json`")
        rows.append({"method": method, "label": method_label(method),
                     "params_train_M": data["params_train"] / 1e6, "params_segmenter_M": data["params"] / 1e6,
                     "params_inference_M": data["params_inference"] / 1e6,
                     "macs_G": data["macs"] / 1e9,
                     "macs_train_G": data["macs_train"] / 1e9,
                     "source": str(path)})
    df = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(df) + 2.2), sharey=True, layout="constrained")
    long = df.melt(id_vars=["label"], value_vars=["params_train_M", "params_inference_M"], var_name="kind",
                   value_name="M")
    long["kind"] = long["kind"].map({"params_train_M": "trained (all networks, discriminators included)",
                                     "params_inference_M": "used at inference"})
    sns.barplot(long, y="label", x="M", hue="kind", ax=axes[0])
    axes[0].set(xlabel="parameters (M)", ylabel="")
    macs = df.melt(id_vars=["label"], value_vars=["macs_G", "macs_train_G"], var_name="kind", value_name="G")
    macs["kind"] = macs["kind"].map({"macs_G": "inference",
                                     "macs_train_G": "training network (all decoders and heads)"})
    sns.barplot(macs, y="label", x="G", hue="kind", ax=axes[1], palette=["C2", "C3"][: macs["kind"].nunique()])
    axes[1].set(xlabel="MACs (G), one forward pass at 1×1×96³", ylabel="")
    for ax in axes:  # above the bars, outside the axes: never over the bars or the axis titles
        sns.move_legend(ax, "lower center", bbox_to_anchor=(0.5, 1.0), title=None, frameon=False, ncol=1)
    fig.suptitle("Fig. 7: model complexity (suite counter; transposed convs per input voxel, BN/ReLU counted)")
    _save(fig, out, "fig7_complexity", df)


def _setting_rows(suite: Suite, results: Results, block: str, keys: list[tuple[str, str, str]]) -> pd.DataFrame:
    rows = []
    present = {d["name"] for d in suite.datasets()}
    for s in suite.spec[block]["settings"]:
        if s["dataset"] not in present:
            continue
        for key, label, run_key in keys:
            cell = results.cell(s["dataset"], run_key, str(s["labels"]))
            for m in METRICS:
                for v, run_dir in zip(cell.values[m], cell.run_dirs):
                    rows.append({"setting": f"{s['dataset']} ({s['labels']} L)", "dataset": s["dataset"],
                                 "labels": str(s["labels"]), "key": key, "label": label, "metric": m, "value": v,
                                 "run_dir": run_dir})
    return pd.DataFrame(rows)


def fig_encodings(suite: Suite, out: Path, results: Results) -> None:
    keys = [(e, ENCODING_LABELS[e], f"{suite.proposed}-enc_{e}") for e in suite.spec["encodings"]["values"]]
    df = _setting_rows(suite, results, "encodings", keys)
    paper = load_paper_values(PAPER_CSV)
    spread, errorbar = _spread(suite)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for ax, m in zip(axes.flat, METRICS):
        sub = df[df.metric == m]
        sns.barplot(sub, x="setting", y="value", hue="label", errorbar=errorbar, ax=ax)
        ax.set(title=METRIC_HEADERS[m], xlabel="", ylabel="")
        if m == "dice":  # the proposed method's paper value per setting (inferred: its Table V t = 3 row)
            for i, setting in enumerate(sub["setting"].unique()):
                ds, labels = sub[sub.setting == setting][["dataset", "labels"]].iloc[0]
                ref = paper.get(("V", ds, int(labels) if labels.isdigit() else -1, "t3"), {}).get("dice")
                if ref:
                    ax.hlines(ref[0], i - 0.4, i + 0.4, colors="k", linestyles="--", label="paper default")
        if ax is not axes.flat[0] and ax.get_legend():
            ax.get_legend().remove()
    fig.suptitle(_title(suite, f"Fig. 5: discrepancy encodings ({spread})"))
    fig.tight_layout()
    _save(fig, out, "fig5_encodings", df)


def fig_sweep(suite: Suite, out: Path, results: Results, block: str) -> None:
    if block == "t_sweep":
        keys = [(f"t{v}", str(v), f"{suite.proposed}-t{v}") for v in suite.spec[block]["values"]]
        stem, name = "fig_t_sweep", "t (passes per sample)"
    else:
        keys = [(f"lam{_fmt_lambda(v)}", _fmt_lambda(v), f"{suite.proposed}-lam{_fmt_lambda(v)}")
                for v in suite.spec[block]["values"]]
        stem, name = "fig_lambda_sweep", "λ (discrepancy weight)"
    df = _setting_rows(suite, results, block, keys)
    spread, errorbar = _spread(suite)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    for ax, m in zip(axes, METRICS):
        sns.pointplot(df[df.metric == m], x="label", y="value", hue="setting", errorbar=errorbar, ax=ax,
                      dodge=0.2 if df["setting"].nunique() > 1 else False, markersize=4)
        ax.set(title=METRIC_HEADERS[m], xlabel=name, ylabel="")
        _widen(ax, MIN_SPAN[m])
        if ax is not axes[0] and ax.get_legend():
            ax.get_legend().remove()
    fig.suptitle(_title(suite, f"Sweep of {name} (Table {'V' if block == 't_sweep' else 'VI'}; {spread})"))
    fig.tight_layout()
    _save(fig, out, stem, df)


def fig_training_curves(suite: Suite, out: Path, root: Path) -> None:
    frames = []
    for run in suite.runs:
        if not any(use[0] == "main" for use in run.uses):
            continue
        log = root / run.path / "log.csv"
        if not log.is_file() or log.stat().st_size == 0:  # not started, or failed in its first iteration
            continue
        df = pd.read_csv(log, usecols=lambda c: c in ("stage", "iteration", "loss"))
        df["row"] = suite.row_label(run.key)
        df["setting"] = f"{run.dataset} {run.labels} L"
        df["seed"] = run.seed
        df["run_dir"] = run.path
        frames.append(df)
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["iteration", "loss", "row"])
    if len(data):
        data["step"] = data.groupby("run_dir").cumcount()
        window = max(1, int(data["step"].max() // 50))
        data["loss_smooth"] = data.groupby("run_dir")["loss"].transform(lambda s: s.rolling(window, min_periods=1).mean())
    settings = sorted(data["setting"].unique()) if len(data) else ["(none)"]
    order = [suite.row_label(r) for r in suite.spec["methods"] + suite.beyond]  # the tables' (paper) order
    fig, axes = plt.subplots(1, len(settings), figsize=(6 * len(settings) + 2, 4), squeeze=False, layout="constrained")
    for ax, setting in zip(axes[0], settings):
        sub = data[data.setting == setting] if len(data) else data
        if len(sub):
            sns.lineplot(sub, x="step", y="loss_smooth", hue="row", units="run_dir", estimator=None, ax=ax, lw=1,
                         hue_order=[r for r in order if r in set(sub["row"])])
            sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), title=None, frameon=False)
        ax.set(title=setting, xlabel="iteration (all stages)", ylabel="total loss (moving mean)", yscale="log")
    fig.suptitle(_title(suite, "Training curves"))
    _save(fig, out, "fig_training_curves", data.drop(columns=["loss_smooth"], errors="ignore"))


def fig_qualitative(suite: Suite, out: Path, root: Path) -> None:
    qual = suite.spec.get("qualitative", {})
    seed = suite.spec.get("seeds", [1337])[0]
    rows_spec = suite.qualitative_rows()
    panels: list[tuple[str, str, dict[str, Any]]] = []  # (dataset, case, {row: (pred, dice)})
    records = []
    for d in suite.datasets():
        labels = d["labels"][0] if qual.get("labels", "first") == "first" else qual["labels"]
        loaded = {}
        for row in rows_spec:
            path = root / suite.find(d["name"], row, str(labels), seed) / "predictions.npz"
            loaded[row] = (np.load(path), path)
        for case in [str(c) for c in loaded[suite.proposed][0]["cases"]]:
            source = next((z for z, _ in loaded.values() if f"{case}/image" in z), None)
            if source is None:  # every row's training failed
                continue
            preds = {row: (None, float("nan")) if "failed" in z else (z[f"{case}/pred"], float(z[f"{case}/dice"]))
                     for row, (z, _) in loaded.items()}
            panels.append((d["name"], case, {"image": source[f"{case}/image"], "label": source[f"{case}/label"],
                                              **preds}))
            for row, (z, p) in loaded.items():
                records.append({"dataset": d["name"], "case": case, "row": row, "dice": preds[row][1],
                                "failed": str(z["failed"]) if "failed" in z else "", "predictions": str(p)})
    ncol = 2 + len(rows_spec)
    fig, axes = plt.subplots(len(panels), ncol, figsize=(1.6 * ncol, 1.7 * len(panels) + 0.6), squeeze=False)
    for r, (dataset, case, data) in enumerate(panels):
        image, label = data["image"], data["label"]
        if image.ndim == 4:
            image = image[0]
        z = int(np.argmax(label.reshape(-1, label.shape[-1]).sum(0)))
        sl_lab = label[..., z]
        xs, ys = np.nonzero(sl_lab) if sl_lab.any() else (np.arange(label.shape[0]), np.arange(label.shape[1]))
        x0, x1 = max(0, xs.min() - 20), min(label.shape[0], xs.max() + 21)
        y0, y1 = max(0, ys.min() - 20), min(label.shape[1], ys.max() + 21)
        img = image[x0:x1, y0:y1, z]
        lo, hi = np.percentile(img, [1, 99])
        crop = (slice(x0, x1), slice(y0, y1), z)
        for c in range(ncol):
            ax = axes[r, c]
            ax.imshow(img.T, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 1:
                ax.imshow(np.ma.masked_equal(label[crop].T, 0), cmap="autumn", alpha=0.6, origin="lower")
            elif c >= 2:
                row = rows_spec[c - 2]
                pred, dice = data[row]
                if pred is None:
                    ax.text(0.5, 0.5, "training\nfailed", transform=ax.transAxes, ha="center", va="center",
                            color="yellow", fontsize=8)
                else:
                    ax.imshow(np.ma.masked_equal(pred[crop].T, 0), cmap="winter", alpha=0.5, origin="lower")
                    if label[crop].any():
                        ax.contour(label[crop].T, levels=[0.5], colors="r", linewidths=0.7)
                    ax.text(0.03, 0.97, f"{dice:.1f}", transform=ax.transAxes, va="top", color="yellow",
                            fontsize=7, bbox={"facecolor": "black", "alpha": 0.6, "pad": 1, "linewidth": 0})
            if r == 0:
                ax.set_title(["Image", "GT"][c] if c < 2 else suite.row_label(rows_spec[c - 2]),
                             fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{dataset}\n{case}", fontsize=7)
    fig.suptitle(_title(suite, f"Fig. 3: qualitative results (seed {seed}; prediction filled, ground truth as "
                               "red contour; Dice % in the corner)"), fontsize=9)
    fig.tight_layout()
    _save(fig, out, "fig3_qualitative", pd.DataFrame(records))


def fig_features(suite: Suite, out: Path, root: Path) -> None:
    """Fig. 6: rows = each decoder's channel-mean last feature map, then |A − B|; columns = snapshots;
    one colour scale per row."""
    path = root / suite.features_file()
    data = np.load(path)
    failed = str(data["failed"])
    label = suite.row_label(suite.proposed)
    if "maps" not in data:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"The {label} run failed before its first snapshot:\n{failed}", ha="center", va="center",
                wrap=True, fontsize=8)
        fig.suptitle(_title(suite, f"Fig. 6: {label} decoder features over training"), fontsize=9)
        _save(fig, out, "fig6_features", pd.DataFrame([{"run_dir": str(data["run_dir"]), "failed": failed,
                                                          "source": str(path)}]))
        return
    names, maps, iterations = [str(n) for n in data["names"]], data["maps"], data["iterations"]
    if len(names) == 2:
        names.append(f"|{names[0].split()[0]} − {names[1].split()[0]}|")
        maps = np.concatenate([maps, np.abs(maps[:1] - maps[1:2])])
    per_epoch = suite.spec["feature_snapshots"].get("epoch_iterations")
    titles = [f"Epoch {i / per_epoch:g}" if per_epoch else f"iteration {i}" for i in iterations]
    n_rows, n_cols = len(names), len(iterations)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.7 * n_cols + 0.8, 1.7 * n_rows + 0.6), squeeze=False)
    records = []
    for r, name in enumerate(names):
        lo, hi = float(maps[r].min()), float(maps[r].max())
        for c, title in enumerate(titles):
            ax = axes[r, c]
            image = ax.imshow(maps[r, c].T, cmap="viridis", vmin=lo, vmax=hi if hi > lo else lo + 1e-6, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            records.append({"map": name, "stage": str(data["stages"][c]), "iteration": int(iterations[c]),
                            "mean": float(maps[r, c].mean()), "std": float(maps[r, c].std()),
                            "min": float(maps[r, c].min()), "max": float(maps[r, c].max()),
                            "case": str(data["case"]), "run_dir": str(data["run_dir"]), "failed": failed,
                            "source": str(path)})
        fig.colorbar(image, ax=axes[r].tolist(), shrink=0.8, pad=0.01)
    note = f"; the training failed after the last snapshot: {failed}" if failed else ""
    fig.suptitle(_title(suite, f"Fig. 6: {label} decoder features over training (channel mean of the last decoder "
                               f"block, central axial slice of case {data['case']}){note}"), fontsize=9, wrap=True)
    _save(fig, out, "fig6_features", pd.DataFrame(records))


def fig_last_vs_best(suite: Suite, out: Path, results: Results, dataset: dict[str, Any]) -> None:
    """Dice of the shown checkpoint and of the last one, one point per run, joined per run; a panel per label
    setting."""
    rows = suite.spec["methods"] + suite.beyond
    records = []
    for g in map(str, dataset["labels"]):
        for row in rows:
            cell = results.cell(dataset["name"], row, suite.row(row).labels or g)
            for run_dir, summary in zip(cell.run_dirs, cell.summaries):
                if run_dir in cell.failed:
                    continue
                last_path = results.root / run_dir / EVAL_FINAL / "summary.json"
                last = json.loads(last_path.read_text()) if last_path.is_file() else {}
                for kind, value, source in ((checkpoint_kind(summary), summary.get("dice_mean"), "eval"),
                                            ("last", last.get("dice_mean"), EVAL_FINAL)):
                    if value is not None:
                        records.append({"dataset": dataset["name"], "labels": g, "row": row, "label": suite.row_label(row),
                                        "seed": summary.get("seed"), "checkpoint": kind, "shown": source == "eval",
                                        "dice": float(value), "run_dir": run_dir, "source": f"{run_dir}/{source}"})
    df = pd.DataFrame(records, columns=["dataset", "labels", "row", "label", "seed", "checkpoint", "shown", "dice",
                                        "run_dir", "source"])
    groups = list(map(str, dataset["labels"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(0.7 * len(rows) * len(groups) + 3, 3.8),
                             squeeze=False, sharey=True)
    for ax, g in zip(axes[0], groups):
        sub = df[df.labels == g]
        order = [suite.row_label(r) for r in rows]
        for i, label in enumerate(order):
            for _, run in sub[sub.label == label].groupby("run_dir"):
                shown, last = run[run.shown], run[~run.shown]
                if len(shown) and len(last):
                    ax.plot([i - 0.15, i + 0.15], [shown.dice.iloc[0], last.dice.iloc[0]], color="0.6", lw=0.8)
        for shown, offset, marker in ((True, -0.15, "o"), (False, 0.15, "s")):
            part = sub[sub.shown == shown]
            xs = [order.index(label) + offset for label in part.label]
            name = ", ".join(sorted({CHECKPOINT_TEXT.get(k, k).split(" (")[0] for k in part.checkpoint})) or "none"
            ax.scatter(xs, part.dice, marker=marker, s=18, zorder=3,
                       label=("table: " if shown else "") + name)
        ax.set_xticks(range(len(order)), order, rotation=45, ha="right")
        ax.set(title=f"{dataset['name']}, {g} labels", ylabel="test Dice (%)", xlabel="")
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(_title(suite, f"Last vs best checkpoint on {dataset['name']} (one point per run; lines join a run)"))
    fig.tight_layout()
    _save(fig, out, f"fig_last_vs_best_{dataset['name']}", df)


def fig_paired(suite: Suite, out: Path, results: Results, dataset: dict[str, Any]) -> None:
    """Per-case differences (row − reference) of the pooled per-case metric; a panel per (reference, labels)."""
    cfg, refs = stats.settings(suite.spec), stats.references(suite.spec)
    metric = str(cfg["metric"])
    groups = list(map(str, dataset["labels"]))
    records, summaries = [], []
    for ref in refs:
        for g in groups:
            comparisons = {c.row: c for c in results.compare(dataset["name"], g, ref, cfg)}
            ref_cell = results.cell(dataset["name"], ref, suite.row(ref).labels or g)
            ref_cases = results.pooled(ref_cell, metric)
            for row, c in comparisons.items():
                cell = results.cell(dataset["name"], row, suite.row(row).labels or g)
                diff = (results.pooled(cell, metric) - ref_cases).dropna()
                records += [{"dataset": dataset["name"], "labels": g, "reference": ref, "row": row,
                             "label": suite.row_label(row), "case": case, "metric": metric, "difference": float(d)}
                            for case, d in diff.items()]
                summaries.append({"reference": ref, "labels": g, "label": suite.row_label(row), "mean": c.mean_diff,
                                  "low": c.ci_low, "high": c.ci_high, "p_holm": c.p_holm,
                                  "significant": c.significant})
    df = pd.DataFrame(records, columns=["dataset", "labels", "reference", "row", "label", "case", "metric",
                                        "difference"])
    means = pd.DataFrame(summaries, columns=["reference", "labels", "label", "mean", "low", "high", "p_holm",
                                             "significant"])
    data = df.merge(means.rename(columns={"mean": "mean_difference", "low": "ci_low", "high": "ci_high"}),
                    on=["reference", "labels", "label"], how="left")
    panels = [(ref, g) for ref in refs for g in groups] or [("", "")]
    rows = suite.spec["methods"] + suite.beyond
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.45 * len(rows) + 2),
                             squeeze=False)
    for ax, (ref, g) in zip(axes[0], panels):
        sub = df[(df.reference == ref) & (df.labels == g)]
        order = [suite.row_label(r) for r in rows if suite.row_label(r) in set(sub.label)]
        if len(sub):
            sns.stripplot(sub, y="label", x="difference", order=order, ax=ax, size=3, alpha=0.6, color="C0")
            m = means[(means.reference == ref) & (means.labels == g)].set_index("label").reindex(order)
            ax.errorbar(m["mean"], range(len(order)), xerr=[m["mean"] - m["low"], m["high"] - m["mean"]],
                        fmt="D", color="k", ms=4, capsize=3, label="mean, 95 % CI")
            for i, (label, r) in enumerate(m.iterrows()):
                if r["significant"]:
                    ax.annotate("*", (r["high"], i), xytext=(4, -4), textcoords="offset points")
            ax.legend(fontsize=7, frameon=False)
        ax.axvline(0, color="0.5", lw=0.8, ls="--")
        ax.set(title=f"{g} labels: row − {suite.row_label(ref)}" if ref else "no reference row with per-case results",
               xlabel=f"per-case {metric} difference (points)", ylabel="")
    fig.suptitle(_title(suite, f"Paired per-case differences on {dataset['name']} (per-case scores pooled over seeds; "
                               "* Holm-adjusted Wilcoxon p < " + f"{cfg['alpha']})"), fontsize=9)
    fig.tight_layout()
    _save(fig, out, f"fig_paired_{dataset['name']}", data)


def build_figures(suite: Suite, out: str | Path, root: str | Path = ".",
                  complexity_dir: str | Path = "results/complexity") -> list[Path]:
    out, root = Path(out), Path(root)
    sns.set_theme(style="whitegrid", context="paper")
    results = Results(suite, root)
    from .artifacts import figure_stems

    stems = figure_stems(suite)
    fig_complexity(suite, out, Path(complexity_dir))
    fig_training_curves(suite, out, root)
    if "fig5_encodings" in stems:
        fig_encodings(suite, out, results)
    if "fig_t_sweep" in stems:
        fig_sweep(suite, out, results, "t_sweep")
    if "fig_lambda_sweep" in stems:
        fig_sweep(suite, out, results, "lambda_sweep")
    if "fig3_qualitative" in stems:
        fig_qualitative(suite, out, root)
    if "fig6_features" in stems:
        fig_features(suite, out, root)
    for d in suite.datasets():
        fig_last_vs_best(suite, out, results, d)
        if f"fig_paired_{d['name']}" in stems:
            fig_paired(suite, out, results, d)
    return sorted(out.iterdir())


__all__ = ["build_figures", "math"]
