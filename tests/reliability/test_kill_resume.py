"""Real fault injection: ``sslbench train`` of a two-stage method (BCP: ``pretrain`` then ``self_train``) is
SIGKILLed at seeded-random points in both stages, twice inside a checkpoint write, and resumed until it
finishes; its weights, best checkpoint and logs are bit-identical to an uninterrupted run's (CPU, deterministic).

Every atomic write of the killed processes is slowed by 30 ms (``os.fsync`` wrapped by a ``sitecustomize``
on their path), so a kill often lands inside a write and a kill aimed at a checkpoint write surely does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from reliability.helpers import REPO, cli_command, train_args

from benchmarks.train.checkpoint import load_checkpoint
from benchmarks.train.trainer import BEST, FINAL, LATEST

PRETRAIN, SELF_TRAIN = 4, 6
SETS = (f"pretrain_iterations={PRETRAIN}", f"iterations={SELF_TRAIN}", "selection=heldout", "validation=1",
        "val_every=2", "val_start=0")
SLOW_FSYNC = '''
import os, time

_fsync = os.fsync


def _slow_fsync(fd):
    time.sleep(0.03)
    _fsync(fd)


os.fsync = _slow_fsync
'''


def logged_rows(run: Path) -> int:
    try:
        return max(len((run / "log.csv").read_text().splitlines()) - 1, 0)
    except FileNotFoundError:
        return 0


def temp_files(run: Path) -> list[Path]:
    return sorted(run.glob(".checkpoint_*.tmp"))


def train_until_killed(command: list[str], env: dict[str, str], run: Path, rows: int, delay: float,
                       in_checkpoint_write: bool) -> int:
    """Start training; once ``log.csv`` has ``rows`` rows, wait ``delay`` s (or until a new checkpoint write is
    under way) and SIGKILL it. Returns the exit status (``-SIGKILL`` when the kill landed)."""
    stale = set(temp_files(run))
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while proc.poll() is None and logged_rows(run) < rows:
            time.sleep(0.002)
        if in_checkpoint_write:
            while proc.poll() is None and not set(temp_files(run)) - stale:
                time.sleep(0.001)
        else:
            time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill ({proc.returncode}): {err.decode()}"
    return proc.returncode


def test_sigkill_in_every_stage_then_resume_gives_identical_weights(base_dataset: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    args = train_args(base_dataset, *SETS, method="bcp")
    subprocess.run(cli_command(*args, "--out", str(straight)), env=env, check=True, capture_output=True)

    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "sitecustomize.py").write_text(SLOW_FSYNC)
    slow = env | {"PYTHONPATH": f"{plugin}{os.pathsep}{REPO}"}
    rng = np.random.default_rng(20240610)
    # (rows logged before the kill, in a checkpoint write?): inside each stage, at the boundary, late in stage two
    plan = [(int(rng.integers(1, PRETRAIN - 1)), True), (PRETRAIN, False), (PRETRAIN + int(rng.integers(1, 3)), True),
            (PRETRAIN + int(rng.integers(3, SELF_TRAIN - 1)), False)]
    positions = [(0, 0)]
    for rows, in_write in plan:
        stage, iteration = positions[-1]
        done = iteration + PRETRAIN * stage  # rows kept on resume; at most one more is on disk until then
        train_until_killed(cli_command(*args, "--out", str(resumed)), slow, resumed, max(rows, done + 2),
                           float(rng.uniform(0.0, 0.15)), in_write)
        if in_write:
            assert temp_files(resumed), "the kill inside a checkpoint write left no temporary file"
        state = load_checkpoint(resumed / LATEST)  # always complete: the previous or the new checkpoint
        positions.append((state["stage_index"], state["iteration"]))
    assert {stage for stage, iteration in positions[1:] if iteration} == {0, 1}, positions  # inside both stages
    subprocess.run(cli_command(*args, "--out", str(resumed)), env=slow, check=True, capture_output=True)

    assert not temp_files(resumed) and not list(resumed.glob(".*.tmp"))  # leftovers were removed on resume
    for name in (FINAL, BEST, "checkpoint_best_pretrain.pt"):
        a, b = (load_checkpoint(run / name)["method_state"] for run in (straight, resumed))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
    for name in ("log.csv", "val.csv"):
        a, b = (pd.read_csv(run / name).drop(columns="seconds", errors="ignore") for run in (straight, resumed))
        pd.testing.assert_frame_equal(a, b)
    assert len(pd.read_csv(resumed / "log.csv")) == PRETRAIN + SELF_TRAIN
    assert (resumed / "status.json").read_text() == (straight / "status.json").read_text()
