"""Paired statistics on hand-made per-case tables, against SciPy and hand-computed Holm values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from benchmarks.errors import ConfigError
from benchmarks.report.stats import compare, holm, paired, pooled_cases, references

CASES = [f"c{i}" for i in range(8)]
#: Two seeds of three rows on eight cases (Dice %).
SEEDS = {
    "lefed": [[80, 82, 75, 90, 60, 85, 70, 88], [82, 80, 77, 92, 62, 83, 72, 86]],
    "bcp": [[78, 81, 70, 91, 55, 80, 69, 85], [76, 79, 72, 89, 57, 84, 67, 87]],
    "uamt": [[60, 65, 50, 70, 40, 66, 52, 71], [62, 63, 54, 72, 42, 64, 50, 69]],
}


def _frames(row: str) -> list[pd.DataFrame]:
    return [pd.DataFrame({"case": CASES, "dice": values}) for values in SEEDS[row]]


def test_pooled_cases_is_the_case_mean_over_seeds() -> None:
    pooled = pooled_cases(_frames("lefed"))
    assert list(pooled.index) == CASES
    assert pooled.tolist() == [81, 81, 76, 91, 61, 84, 71, 87]
    shuffled = [f.sample(frac=1, random_state=1) for f in _frames("lefed")]  # case order does not matter
    assert pooled_cases(shuffled).equals(pooled)
    assert pooled_cases([]).empty


def test_paired_matches_scipy() -> None:
    ref, row = pooled_cases(_frames("lefed")), pooled_cases(_frames("bcp"))
    n, mean, low, high, p = paired(row, ref, resamples=2000, seed=7)
    diff = (row - ref).to_numpy()  # [-4, -1, -5, -1, -5, -2, -3, -1]
    assert n == 8 and mean == pytest.approx(diff.mean()) == pytest.approx(-22 / 8)
    assert p == pytest.approx(sp.wilcoxon(diff, alternative="two-sided").pvalue)
    ci = sp.bootstrap((diff,), np.mean, n_resamples=2000, method="percentile",
                      random_state=np.random.default_rng(7)).confidence_interval
    assert (low, high) == pytest.approx((ci.low, ci.high))
    assert low <= mean <= high < 0
    assert paired(row, ref, resamples=2000, seed=7) == (n, mean, low, high, p)  # seeded: reproducible


def test_paired_on_common_cases_and_degenerate_inputs() -> None:
    ref = pd.Series([80.0, 70.0, 60.0], index=["a", "b", "c"])
    row = pd.Series([82.0, 71.0, 99.0], index=["a", "b", "z"])
    n, mean, *_ = paired(row, ref)
    assert n == 2 and mean == pytest.approx(1.5)
    assert paired(ref, ref)[1:] == (0.0, 0.0, 0.0, 1.0)  # identical rows: no difference, p = 1
    constant = paired(ref + 2.0, ref)
    assert constant[1:4] == (2.0, 2.0, 2.0)
    assert constant[4] == pytest.approx(sp.wilcoxon([2.0, 2.0, 2.0]).pvalue)
    one = paired(row.iloc[:1], ref)
    assert one[:2] == (1, 2.0) and all(math.isnan(v) for v in one[2:])
    assert paired(pd.Series(dtype=float), ref)[0] == 0


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.02, 0.03, 0.04 with m = 4: 0.04, 0.06, 0.06 (monotone), 0.06
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    adjusted = holm([0.02, math.nan, 0.01])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    assert holm([]) == []


def test_compare_rows_against_reference() -> None:
    rows = {key: pooled_cases(_frames(key)) for key in SEEDS}
    out = compare(rows, "lefed", resamples=2000, seed=0)
    assert [c.row for c in out] == ["bcp", "uamt"] and all(c.reference == "lefed" for c in out)
    raw = [sp.wilcoxon((rows[k] - rows["lefed"]).to_numpy()).pvalue for k in ("bcp", "uamt")]
    assert [c.p_value for c in out] == pytest.approx(raw)
    assert [c.p_holm for c in out] == pytest.approx(holm(raw))
    assert all(c.significant == (c.p_holm < 0.05) for c in out)
    assert out[1].mean_diff == pytest.approx((475 - 632) / 8) and out[1].ci_high < 0
    assert compare(rows, "fussnet") == []


def test_references_of_a_suite() -> None:
    assert references({"methods": ["vnet_lower", "lefed"], "proposed": "lefed"}) == ["lefed"]  # default: proposed
    assert references({"methods": ["vnet_lower", "uamt"], "proposed": "lefed"}) == []  # proposed not a row
    assert references({"methods": ["uamt", "bcp"], "statistics": {"references": ["bcp"]}}) == ["bcp"]
    assert references({"methods": ["uamt", "bcp"], "beyond": ["caml"], "proposed": "bcp",
                       "statistics": {"references": ["caml", "uamt"]}}) == ["caml", "uamt"]
    with pytest.raises(ConfigError, match="statistics.references: lefed"):
        references({"name": "x", "methods": ["uamt"], "statistics": {"references": ["lefed"]}})
