#!/usr/bin/env python3
"""Set up a virtual environment and run the demo or the tests; needs only Python 3.11+.

    python3 quickstart.py demo   # run the default workflow (`snakemake`) on the embedded synthetic data
    python3 quickstart.py test   # run the test suite

Extra arguments go to snakemake or pytest.

The environment lives in ``.venv`` (``SSLBENCH_VENV`` to move it). PyTorch is installed first as
``SSLBENCH_TORCH`` (default ``torch==2.13.0``; pip arguments, e.g. ``torch`` to take pip's choice or
``torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128`` for a given CUDA build, or an empty
string to keep a torch that is already installed).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("SSLBENCH_VENV", ROOT / ".venv"))
TORCH = os.environ.get("SSLBENCH_TORCH", "torch==2.13.0")
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def run(*cmd: str | Path) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, check=True)


def setup() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"sslbench needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    python = BIN / "python"
    if not python.exists():
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".sslbench-installed"
    config = (ROOT / "pyproject.toml").read_text() + TORCH
    if stamp.exists() and stamp.read_text() == config:
        return
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    if TORCH:
        run(*pip, *shlex.split(TORCH))
    run(*pip, "-e", ".[test]")
    stamp.write_text(config)


def demo() -> None:
    """The default Snakemake workflow (the demo suite on synthetic data), then its main table."""
    run(BIN / "snakemake", "--cores", os.environ.get("SSLBENCH_CORES", "all"), *sys.argv[2:])
    table = ROOT / "results" / "tables" / "demo" / "table_synthetic.md"
    if table.is_file():
        print(table.read_text())
    print(f"tables: {table.parent}/  figures: {ROOT / 'figures' / 'demo'}/")


def test() -> None:
    run(BIN / "python", "-m", "pytest", "-q", *sys.argv[2:])


if __name__ == "__main__":
    commands = {"demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    setup()
    commands[sys.argv[1]]()
