"""Training progress outside a terminal: plain lines with iteration, rate, ETA and loss terms."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import yaml

from benchmarks.cli import main
from benchmarks.config import load_config
from benchmarks.train.progress import StageProgress, progress_mode
from benchmarks.train.trainer import Trainer

LINE = re.compile(r"^vnet train: (\d+)/4 \(\d+\.\d%\), \d+\.\d\d it/s, ETA \d+:\d\d:\d\d, loss \d\.\d{4}, ")


def _settings(root: Path, **extra) -> dict:
    return {"dataset": "synthetic", "data_root": str(root), "labels": "4", "iterations": 4, "patch": [32, 32, 16],
            "filters": 4, "validation": 2, "val_every": 4, "val_start": 0.0,
            "eval": {"window": [32, 32, 16], "strides": [16, 16, 8]}, "device": "cpu"} | extra


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("vnet train: ")]


def test_cli_prints_first_and_last_iteration_when_stderr_is_not_a_terminal(tiny_synthetic: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(_settings(tiny_synthetic)))
    args = ["train", "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "run"), "--progress-every", "1000"]
    assert main(args) == 0
    lines = _lines(capsys.readouterr().err)
    assert [int(LINE.match(line).group(1)) for line in lines] == [1, 4]  # first and last only
    assert "ce " in lines[0] and "dice " in lines[0]
    assert ", val_dice " in lines[-1] and ", best " in lines[-1]


def test_every_iteration_with_zero_interval_and_none_when_off(tiny_synthetic: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    config, options = load_config(_settings(tiny_synthetic, selection="last"))
    Trainer(config, options, tmp_path / "a", progress_every_s=0.0).fit()
    lines = _lines(capsys.readouterr().err)
    assert [int(LINE.match(line).group(1)) for line in lines] == [1, 2, 3, 4]
    Trainer(config, options, tmp_path / "b", progress=False, progress_every_s=0.0).fit()
    assert capsys.readouterr().err == ""


def test_terminal_gets_the_bar_and_lines_average_terms() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_mode(None, Terminal()) == "bar"
    assert progress_mode(None, io.StringIO()) == "lines"
    assert progress_mode(False, Terminal()) == "off"
    out = io.StringIO()
    progress = StageProgress("m s", total=3, start=0, mode="lines", stream=out, every_s=1e9)
    for done, loss in ((1, 4.0), (2, 1.0), (3, 3.0)):
        progress.update(done, {"loss": loss})
    progress.close()
    first, last = out.getvalue().splitlines()
    assert first.startswith("m s: 1/3 (33.3%), ") and first.endswith("loss 4.0000")
    assert last.startswith("m s: 3/3 (100.0%), ") and "ETA 0:00:00" in last and last.endswith("loss 2.0000")


def test_negative_interval_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--progress-every", "-1"]) == 2
    assert "sslbench train: error: --progress-every -1" in capsys.readouterr().err
