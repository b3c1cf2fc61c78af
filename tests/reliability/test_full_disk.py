"""A full disk (simulated: writes store half their bytes, then raise ENOSPC) or a real file-size limit (``ulimit -f``)
ends ``sslbench`` with one line that names the file, keeps the previous checkpoint, log, per-case metrics or table,
and a later resume is exact."""

from __future__ import annotations

import builtins
import errno
import os
import pathlib
import re
import resource
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import pandas as pd
import pytest
import torch
from reliability.helpers import REPO, cli_command, fake_complexity, fake_results, train_args

import benchmarks.io
from benchmarks.cli import main
from benchmarks.errors import StorageError
from benchmarks.report.suites import load_suite
from benchmarks.train.checkpoint import load_checkpoint
from benchmarks.train.logger import CsvLog
from benchmarks.train.trainer import FINAL, LATEST
from methods.vnet import SupervisedVNet


class FullDisk:
    """Once ``full`` is set, every file that ``opener`` opens for writing takes half of each write, then fails."""

    def __init__(self) -> None:
        self.full = False

    def wrap(self, opener: Callable[..., Any]) -> Callable[..., Any]:
        def open_(*args: Any, **kwargs: Any) -> Any:
            handle = opener(*args, **kwargs)
            mode = kwargs.get("mode", args[1] if len(args) > 1 else "r")
            return _Filling(handle, self) if set(mode) & set("wa") else handle
        return open_


class _Filling:
    def __init__(self, handle: Any, disk: FullDisk) -> None:
        self._handle, self._disk = handle, disk

    def write(self, data: Any) -> int:
        if self._disk.full:
            self._handle.write(data[: len(data) // 2])
            self._handle.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._handle.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> FullDisk:
    """Every atomic write of the suite (checkpoints, JSON, CSV, tables) goes through ``benchmarks.io.open``."""
    disk = FullDisk()
    monkeypatch.setattr(benchmarks.io, "open", disk.wrap(builtins.open), raising=False)
    return disk


def test_full_disk_in_training_keeps_the_last_checkpoint_and_resumes_exactly(
        base_dataset: Path, tmp_path: Path, disk: FullDisk, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    args = train_args(base_dataset, "iterations=6")
    assert main([*args, "--out", str(tmp_path / "straight")]) == 0
    original = SupervisedVNet.after_step

    def fill_at_iteration_three(self: SupervisedVNet, ctx: Any) -> None:
        original(self, ctx)
        disk.full = disk.full or ctx.iteration == 3

    monkeypatch.setattr(SupervisedVNet, "after_step", fill_at_iteration_three)
    run = tmp_path / "run"
    capsys.readouterr()
    assert main([*args, "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"sslbench train: error: could not write checkpoint {run / LATEST}: No space left on device; "
                   "the previous checkpoint is kept")
    assert load_checkpoint(run / LATEST)["iteration"] == 3  # written before the disk filled, intact
    assert not list(run.glob(".*.tmp")) and not (run / "status.json").exists()

    disk.full = False  # space freed: the plain command again resumes
    monkeypatch.setattr(SupervisedVNet, "after_step", original)
    assert main([*args, "--out", str(run)]) == 0
    a, b = (load_checkpoint(r / FINAL)["method_state"] for r in (tmp_path / "straight", run))
    assert all(torch.equal(a[k], b[k]) for k in a)
    log_a, log_b = (pd.read_csv(r / "log.csv").drop(columns="seconds") for r in (tmp_path / "straight", run))
    pd.testing.assert_frame_equal(log_a, log_b)


def test_file_size_limit_while_writing_a_checkpoint_names_it(base_dataset: Path, tmp_path: Path) -> None:
    """``ulimit -f``: torch's writer turns the failed write (EFBIG) into a RuntimeError; the message is the same."""
    def limit_file_size() -> None:  # in the child, before exec: writes past 64 KiB fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    run = tmp_path / "run"
    args = train_args(base_dataset, "filters=4")
    done = subprocess.run(cli_command(*args, "--out", str(run)), cwd=REPO, capture_output=True, text=True,
                          preexec_fn=limit_file_size, timeout=300, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"sslbench train: error: could not write checkpoint {run / LATEST}: File too large; "
        "the previous checkpoint is kept"), done.stderr
    assert "Traceback" not in done.stderr
    assert not (run / LATEST).exists() and not list(run.glob(".*.tmp")) and not (run / "status.json").exists()
    assert main([*args, "--out", str(run)]) == 0  # without the limit the same command trains the run
    assert load_checkpoint(run / FINAL)["stage_index"] == 1


def test_full_disk_while_appending_to_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = CsvLog(tmp_path / "log.csv")
    log.write({"stage": "train", "stage_index": 0, "iteration": 0, "loss": 0.5})
    disk = FullDisk()
    monkeypatch.setattr(pathlib.Path, "open", disk.wrap(pathlib.Path.open))
    disk.full = True
    with pytest.raises(StorageError, match=f"could not append to {tmp_path / 'log.csv'}: No space left on device"):
        log.write({"stage": "train", "stage_index": 0, "iteration": 1, "loss": 0.25})
    disk.full = False
    # the half-written row is dropped when a resume reopens the log at the last checkpoint (iteration 1)
    resumed = CsvLog(tmp_path / "log.csv", keep=lambda row: int(row["iteration"]) < 1)
    resumed.write({"stage": "train", "stage_index": 0, "iteration": 1, "loss": 0.25})
    assert pd.read_csv(tmp_path / "log.csv")["loss"].tolist() == [0.5, 0.25]


def test_full_disk_in_evaluation_names_the_file_and_keeps_the_previous_metrics(
        base_dataset: Path, tmp_path: Path, disk: FullDisk, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main([*train_args(base_dataset), "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--no-progress"]) == 0
    before = (run / "eval" / "per_case.csv").read_bytes()
    disk.full = True
    capsys.readouterr()
    assert main(["evaluate", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"sslbench evaluate: error: could not write {run / 'eval' / 'per_case.csv'}: No space left" in err, err
    assert (run / "eval" / "per_case.csv").read_bytes() == before
    assert not (run / "eval" / "summary.json").exists()  # no summary beside metrics it was not computed from
    assert not list((run / "eval").glob(".*.tmp"))


def test_full_disk_in_tables_names_the_file_and_keeps_the_previous_table(
        tmp_path: Path, disk: FullDisk, capsys: pytest.CaptureFixture[str]) -> None:
    fake_results(load_suite("smoke"), tmp_path)
    out = tmp_path / "tables"
    args = ["tables", "--suite", "smoke", "--root", str(tmp_path), "--out", str(out)]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    disk.full = True
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.search(rf"sslbench tables: error: could not write {re.escape(str(out))}/table_synthetic\S*: No space "
                     "left on device", err), err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not list(out.glob(".*.tmp"))


def test_full_disk_in_figures_names_the_file_and_keeps_the_previous_figure(
        tmp_path: Path, disk: FullDisk, capsys: pytest.CaptureFixture[str]) -> None:
    suite = load_suite("smoke")
    fake_results(suite, tmp_path)
    complexity = fake_complexity(suite, tmp_path / "complexity")
    out = tmp_path / "figures"
    out.mkdir()
    previous = {ext: f"previous {ext}".encode() for ext in ("png", "pdf", "csv")}
    for ext, content in previous.items():
        (out / f"fig7_complexity.{ext}").write_bytes(content)
    disk.full = True
    args = ["figures", "--suite", "smoke", "--root", str(tmp_path), "--out", str(out), "--complexity", str(complexity)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"sslbench figures: error: could not write {out / 'fig7_complexity.png'}: No space left on device" in err
    assert {ext: (out / f"fig7_complexity.{ext}").read_bytes() for ext in previous} == previous
    assert not list(out.glob(".*.tmp"))
