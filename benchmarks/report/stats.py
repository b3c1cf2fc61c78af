"""Paired statistics of table rows against a reference row, on the per-case scores of the same test cases.

For one label setting, each row's per-case Dice is first pooled over its seeds (the mean per case), so a row is
one value per test case. Against a reference row, on the cases both have:

- two-sided Wilcoxon signed-rank test of the paired differences (``scipy.stats.wilcoxon``, its default
  zero handling and exact/normal choice); all differences zero: p = 1;
- Holm's step-down correction of the p-values across the rows compared with one reference;
- percentile bootstrap 95 % confidence interval of the mean difference (``scipy.stats.bootstrap``, cases
  resampled with replacement, a seeded generator, ``resamples`` >= 2,000).

Differences are ``row - reference``: a positive Dice difference means the row scores higher.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError

#: Default comparison settings (the suite YAML's ``statistics`` block overrides them); the default reference
#: rows are the suite's ``proposed`` row (:func:`references`).
DEFAULTS = {"metric": "dice", "resamples": 2000, "confidence": 0.95, "alpha": 0.05, "seed": 0}


def settings(spec: Mapping[str, object]) -> dict[str, object]:
    """A suite's ``statistics`` block over :data:`DEFAULTS`."""
    return {**DEFAULTS, **(spec.get("statistics") or {})}  # type: ignore[dict-item]


def references(spec: Mapping[str, object]) -> list[str]:
    """The suite's reference rows (``statistics.references``, in order; default: its ``proposed`` row).

    Each named reference must be a row of the main tables (``methods`` or ``beyond``, :class:`ConfigError`);
    a default ``proposed`` that is not a row gives no comparison.
    """
    rows = [*(spec.get("methods") or []), *(spec.get("beyond") or [])]  # type: ignore[misc]
    named = (spec.get("statistics") or {}).get("references")  # type: ignore[union-attr]
    if named is None:
        return [r for r in [spec.get("proposed")] if r in rows]
    missing = [r for r in named if r not in rows]
    if missing:
        raise ConfigError(f"suite {spec.get('name', '?')!r}: statistics.references: {', '.join(missing)} "
                          f"not among the rows (methods, beyond: {', '.join(rows)})")
    return list(named)


@dataclass(frozen=True)
class Comparison:
    """One row against the reference: ``n_cases`` paired cases, mean difference and its CI, raw and Holm p."""

    row: str
    reference: str
    n_cases: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    p_holm: float = math.nan
    significant: bool = False


def pooled_cases(frames: Iterable[pd.DataFrame], metric: str = "dice") -> pd.Series:
    """Per-case ``metric`` pooled over runs (seeds): the mean per case ID, NaN values skipped; sorted by case."""
    values = [f.set_index("case")[metric].astype(float) for f in frames if len(f)]
    if not values:
        return pd.Series(dtype=float)
    return pd.concat(values).groupby(level=0).mean().dropna().sort_index()


def paired(row: pd.Series, reference: pd.Series, resamples: int = 2000, confidence: float = 0.95,
           seed: int = 0) -> tuple[int, float, float, float, float]:
    """``(n, mean difference, CI low, CI high, Wilcoxon p)`` of ``row - reference`` on their common cases.

    NaN statistics where they are undefined: no common case (everything NaN), one case (CI and p NaN).
    """
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    common = row.index.intersection(reference.index)
    diff = (row.loc[common] - reference.loc[common]).to_numpy(dtype=float)
    n = int(diff.size)
    if n == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    mean = float(diff.mean())
    if n == 1:
        return 1, mean, math.nan, math.nan, math.nan
    if np.all(diff == diff[0]):  # no spread: every resample has the same mean
        low = high = mean
    else:
        ci = stats.bootstrap((diff,), np.mean, n_resamples=resamples, confidence_level=confidence,
                             method="percentile", random_state=np.random.default_rng(seed)).confidence_interval
        low, high = float(ci.low), float(ci.high)
    p = 1.0 if np.all(diff == 0) else float(stats.wilcoxon(diff, alternative="two-sided").pvalue)
    return n, mean, low, high, p


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values in the input order; NaN entries stay NaN and do not count towards m."""
    p = np.asarray(p_values, dtype=float)
    valid = np.flatnonzero(~np.isnan(p))
    out = np.full(p.shape, np.nan)
    order = valid[np.argsort(p[valid], kind="stable")]
    m, running = len(order), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out.tolist()


def compare(rows: Mapping[str, pd.Series], reference: str, resamples: int = 2000, confidence: float = 0.95,
            alpha: float = 0.05, seed: int = 0) -> list[Comparison]:
    """Every row of ``rows`` (row key -> pooled per-case scores) but ``reference`` against it, Holm across them.

    ``significant``: Holm-adjusted p < ``alpha``. Rows in the order given; an empty list without the reference.
    """
    if reference not in rows:
        return []
    raw = [(key, *paired(values, rows[reference], resamples, confidence, seed))
           for key, values in rows.items() if key != reference]
    adjusted = holm([r[5] for r in raw])
    return [Comparison(key, reference, n, mean, low, high, p, adj, bool(adj < alpha))
            for (key, n, mean, low, high, p), adj in zip(raw, adjusted)]


def comparison_frame(comparisons: Iterable[Comparison], **columns: object) -> pd.DataFrame:
    """The comparisons as a frame, with constant ``columns`` (e.g. table, label count, metric) in front."""
    records = [{**columns, **asdict(c)} for c in comparisons]
    return pd.DataFrame(records, columns=[*columns, *Comparison.__dataclass_fields__])
