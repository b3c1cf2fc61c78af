"""The Snakemake rule that prepares a dataset when the config names its raw folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(not (BIN / "snakemake").exists(), reason="snakemake not installed")


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "1", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)


SUITE = """name: lungprep
demo: false
datasets:
  - {name: lung, data_root: "{data_root}/Lung", labels: [10]}
methods: [vnet_lower]
rows: {vnet_lower: {method: vnet, ranked: false}}
seeds: [1337]
"""


def test_raw_lung_is_prepared_before_training(raw_lung: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "lungprep.yaml").write_text(SUITE)
    config = ["--config", "suite=lungprep.yaml", f"data_root={data}"]
    raw = [f"raw={{lung: {raw_lung}}}", "prepare={lung: [margin=1, minimum=4]}"]
    plan = _snakemake(tmp_path, "-n", *config, *raw)
    assert plan.returncode == 0, plan.stdout[-2000:] + plan.stderr[-2000:]
    jobs = {line.split()[0]: int(line.split()[1]) for line in plan.stdout.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert jobs["prepare_lung"] == 1 and jobs["train"] == 1 and jobs["evaluate"] == 1
    done = _snakemake(tmp_path, *config, *raw, "--", str(data / "Lung" / "test.list"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((data / "Lung" / "cases").glob("*.h5"))) == 63 and (data / "Lung" / "manifest.json").is_file()
    assert "63 case(s) written" in (tmp_path / "results/logs/prepare/lung.log").read_text()
