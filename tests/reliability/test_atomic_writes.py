"""A process SIGKILLed while it writes a checkpoint, a log, metrics, a table or a figure leaves the previous file
whole (or none), never a partial one: at most a hidden ``.<name>.*.tmp`` that no reader opens and a resume removes;
a figure's PNG, PDF and CSV are replaced together.

Each writer runs in a child process whose ``os.fsync`` hangs on the temporary file of its target, the last moment
before the atomic rename: the child is killed there. A writer that bypassed the temporary file would never
reach that ``fsync`` and the test would fail.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from reliability.helpers import REPO, fake_complexity, fake_results

from benchmarks.io import remove_temp_files
from benchmarks.report.suites import load_suite
from benchmarks.report.tables import MissingResults, Results
from benchmarks.train.checkpoint import load_checkpoint, save_checkpoint
from benchmarks.train.logger import CsvLog

CHILD = r'''
import os, sys, time
from pathlib import Path

kind, folder, target, ready = sys.argv[1], Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
_fsync = os.fsync


def hang_on_target(fd):
    name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    if name.startswith(f".{target}.") and name.endswith(".tmp"):
        ready.write_text(name)
        time.sleep(600)
    _fsync(fd)


os.fsync = hang_on_target
if kind == "checkpoint":
    import torch
    from benchmarks.train.checkpoint import save_checkpoint
    save_checkpoint(folder / target, {"method": "vnet", "iteration": 2, "method_state": {"w": torch.zeros(10**5)}})
elif kind == "log":
    from benchmarks.train.logger import CsvLog
    CsvLog(folder / target).write({"stage": "train", "stage_index": 0, "iteration": 2, "new_term": 1.0})
elif kind == "metrics":
    import pandas as pd
    from benchmarks.evaluate.cases import COLUMNS, write_evaluation
    write_evaluation(folder, pd.DataFrame([{c: 1 for c in COLUMNS}]), {"status": "completed"})
elif kind == "figures":
    from benchmarks.report.figures import build_figures
    from benchmarks.report.suites import load_suite
    build_figures(load_suite("smoke"), folder / "figures", folder, folder / "complexity")
else:
    from benchmarks.report.suites import load_suite
    from benchmarks.report.tables import build_tables
    build_tables(load_suite("smoke"), folder / "tables", folder)
'''


def kill_while_writing(kind: str, folder: Path, target: str) -> str:
    """Run the ``kind`` writer; SIGKILL it inside the write of ``target``; the temporary file's name."""
    ready = folder / f"{kind}.ready"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, kind, str(folder), target, str(ready)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not ready.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ready.is_file(), f"{kind}: {target} was not written through a temporary file: " \
                                f"{proc.stdout.read().decode() if proc.poll() is not None else 'timeout'}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return ready.read_text()


def leftover(folder: Path, temp: str) -> None:
    """The killed write left its temporary file, which :func:`remove_temp_files` deletes."""
    assert (folder / temp).is_file()
    assert remove_temp_files(folder) == [folder / temp]
    assert not list(folder.glob(".*.tmp"))


def test_kill_during_checkpoint_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    import torch

    save_checkpoint(tmp_path / "checkpoint_latest.pt", {"method": "vnet", "iteration": 1,
                                                         "method_state": {"w": torch.ones(3)}})
    before = (tmp_path / "checkpoint_latest.pt").read_bytes()
    temp = kill_while_writing("checkpoint", tmp_path, "checkpoint_latest.pt")
    assert (tmp_path / "checkpoint_latest.pt").read_bytes() == before
    assert load_checkpoint(tmp_path / "checkpoint_latest.pt", method="vnet")["iteration"] == 1
    leftover(tmp_path, temp)


def test_kill_during_log_rewrite_keeps_the_previous_log(tmp_path: Path) -> None:
    log = CsvLog(tmp_path / "log.csv")
    for i in range(2):
        log.write({"stage": "train", "stage_index": 0, "iteration": i, "loss": 0.5})
    before = (tmp_path / "log.csv").read_bytes()
    temp = kill_while_writing("log", tmp_path, "log.csv")
    assert (tmp_path / "log.csv").read_bytes() == before
    assert list(pd.read_csv(tmp_path / "log.csv")["iteration"]) == [0, 1]
    leftover(tmp_path, temp)


def test_kill_during_metrics_write_leaves_no_summary_to_read(tmp_path: Path) -> None:
    suite = load_suite("smoke")
    fake_results(suite, tmp_path)
    run = suite.runs[0].path
    folder = tmp_path / run / "eval"
    temp = kill_while_writing("metrics", folder, "summary.json")
    # the stale summary was removed before per_case.csv was replaced; the new one never landed
    assert not (folder / "summary.json").exists()
    assert len(pd.read_csv(folder / "per_case.csv")) == 1
    with pytest.raises(MissingResults, match=f"{run}/eval/summary.json is missing"):
        Results(suite, tmp_path).summary(run)
    leftover(folder, temp)


def test_kill_during_table_write_keeps_the_previous_table(tmp_path: Path) -> None:
    fake_results(load_suite("smoke"), tmp_path)
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "table_synthetic.csv").write_text("table,mean\nprevious,1.0\n")
    temp = kill_while_writing("tables", tmp_path, "table_synthetic.csv")
    assert (tables / "table_synthetic.csv").read_text() == "table,mean\nprevious,1.0\n"
    leftover(tables, temp)


def test_kill_during_figure_write_keeps_the_previous_png_pdf_and_csv(tmp_path: Path) -> None:
    suite = load_suite("smoke")
    fake_results(suite, tmp_path)
    fake_complexity(suite, tmp_path / "complexity")
    figures = tmp_path / "figures"
    figures.mkdir()
    previous = {ext: f"previous {ext}".encode() for ext in ("png", "pdf", "csv")}
    for ext, content in previous.items():
        (figures / f"fig7_complexity.{ext}").write_bytes(content)
    temp = kill_while_writing("figures", tmp_path, "fig7_complexity.pdf")  # the PNG is written, not yet in place
    assert {ext: (figures / f"fig7_complexity.{ext}").read_bytes() for ext in previous} == previous
    stale = remove_temp_files(figures)
    assert figures / temp in stale and [p.name.startswith(".fig7_complexity.png.") for p in stale].count(True) == 1
    assert not list(figures.glob(".*.tmp"))
