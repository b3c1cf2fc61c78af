"""Save a run's predictions of a few test cases (for Fig. 3-style qualitative slices).

``sslbench predict RUN_DIR --case ID [--case ID] --out FILE.npz`` or ``--select-from PER_CASE.csv`` (the
cases with median and lowest Dice in that file, ``tables.md`` section 6; the first test cases when that file
has no rows because its run failed). The npz holds ``cases`` and, per case, ``<ID>/image``, ``<ID>/label`` and
``<ID>/pred`` (uint8) and ``<ID>/dice``; for a run whose training failed, ``failed`` (the reason) instead of
the predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io import write_atomic


def select_cases(per_case_csv: str | Path, n: int = 2) -> list[str]:
    """Median-Dice case, then lowest-Dice case, then the next ones by Dice (deterministic); ``[]`` when the
    file has no rows (its run failed)."""
    df = pd.read_csv(per_case_csv).sort_values(["dice", "case"]).reset_index(drop=True)
    if df.empty:
        return []
    order = [df.loc[(len(df) - 1) // 2, "case"], df.loc[0, "case"]]
    order += [c for c in df["case"] if c not in order]
    out: list[str] = []
    for c in order:
        if c not in out:
            out.append(str(c))
    return out[:n]


def predict_cases(run_dir: str | Path, cases: list[str], out: str | Path) -> Path:
    from ..evaluate.inference import Inferer
    from ..evaluate.metrics import case_metrics
    from ..evaluate.run import _checkpoint_path
    from ..runtime import resolve_device, restore_method, run_config, training_status
    from ..train.data import load_split, load_test_cases

    run_dir = Path(run_dir)
    config, options = run_config(run_dir)
    status = training_status(run_dir)
    failed = str(status["message"]) if status.get("status") == "failed" else ""
    device = resolve_device(config.device)
    method = None if failed else restore_method(config, options, _checkpoint_path(run_dir, "auto", config.selection),
                                                device)
    inferer = Inferer.from_config(config, device)
    wanted = set(cases)
    arrays: dict[str, np.ndarray] = {"failed": np.array(failed)} if failed else {}
    for case in load_test_cases(config, load_split(config), False):
        if case.id not in wanted:
            continue
        label = np.asarray(case.label)
        arrays[f"{case.id}/image"] = np.asarray(case.image, dtype=np.float32)
        arrays[f"{case.id}/label"] = label.astype(np.uint8)
        if method is None:
            continue
        mask = inferer.segment(method.predict, case.image)
        arrays[f"{case.id}/pred"] = mask.astype(np.uint8)
        arrays[f"{case.id}/dice"] = np.float64(case_metrics(mask, label, case.spacing, config.eval.empty_policy)["dice"])
    missing = wanted - {k.split("/")[0] for k in arrays}
    if missing:
        from ..errors import DataError
        raise DataError(f"cases not in the test list of {run_dir}: {', '.join(sorted(missing))}")
    write_atomic(out, lambda f: np.savez_compressed(f, cases=np.array(cases), **arrays))
    return Path(out)


def first_test_cases(run_dir: str | Path, n: int) -> list[str]:
    """The first ``n`` cases of the run's test list."""
    from ..runtime import run_config
    from ..train.data import load_split

    return list(load_split(run_config(Path(run_dir))[0]).test[:n])
