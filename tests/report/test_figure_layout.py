"""Figures read right: legends clear of the data and the axis titles, display names, paper order, honest y-ranges
and error bars (fake results, no training)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.transforms import Bbox
from reliability.helpers import fake_complexity, fake_results

from benchmarks.report import figures
from benchmarks.report.suites import load_suite
from benchmarks.report.tables import Results


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[plt.Figure, pd.DataFrame]]:
    """The figures as drawn (``_save`` replaced: nothing is written)."""
    kept: dict[str, tuple[plt.Figure, pd.DataFrame]] = {}

    def keep(fig: plt.Figure, out: Path, stem: str, data: pd.DataFrame) -> None:
        fig.canvas.draw()
        kept[stem] = (fig, data)

    monkeypatch.setattr(figures, "_save", keep)
    yield kept
    plt.close("all")


def _overlap(a: Bbox, b: Bbox) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_complexity_legends_clear_the_axes_and_use_display_names(tmp_path: Path, drawn) -> None:
    suite = load_suite("smoke")  # three rows: vnet_lower, vnet_upper, lefed -> two methods
    figures.fig_complexity(suite, tmp_path, fake_complexity(suite, tmp_path / "complexity"))
    fig, data = drawn["fig7_complexity"]
    assert list(data["label"]) == ["V-Net", "LeFeD"]  # paper order, display names
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend().get_window_extent(renderer)
        assert not _overlap(legend, ax.get_window_extent(renderer))
        assert not _overlap(legend, ax.xaxis.label.get_window_extent(renderer))
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert not any("params_" in t or "Method." in t for t in texts), texts


def test_training_curve_legend_is_beside_the_curves_in_table_order(tmp_path: Path, drawn) -> None:
    suite = load_suite("smoke")
    for run in suite.runs:
        log = tmp_path / run.path / "log.csv"
        log.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"stage": "train", "iteration": range(6), "loss": [1.0, 0.8, 0.7, 0.6, 0.5, 0.4]}).to_csv(log)
    figures.fig_training_curves(suite, tmp_path, tmp_path)
    fig, _ = drawn["fig_training_curves"]
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        assert not _overlap(ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer))
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["V-Net (labeled only)", "LeFeD"]
    assert fig.axes[0].get_title() == "synthetic 4 L" and fig.axes[1].get_title() == "synthetic all L"


def test_sweeps_keep_a_minimum_range_and_one_seed_has_no_error_bars(tmp_path: Path, drawn) -> None:
    suite = load_suite("smoke")  # one seed
    fake_results(suite, tmp_path)  # values differ by 1 Dice point between runs, distances equal
    results = Results(suite, tmp_path)
    figures.fig_sweep(suite, tmp_path, results, "t_sweep")
    fig, _ = drawn["fig_t_sweep"]
    for ax, metric in zip(fig.axes, figures.METRICS):
        lo, hi = ax.get_ylim()
        assert hi - lo >= figures.MIN_SPAN[metric] - 1e-9 and lo >= 0
    assert "one seed (1337): no error bars" in fig._suptitle.get_text() and "±" not in fig._suptitle.get_text()
    figures.fig_encodings(suite, tmp_path, results)
    fig, _ = drawn["fig5_encodings"]
    assert "±" not in fig._suptitle.get_text()
