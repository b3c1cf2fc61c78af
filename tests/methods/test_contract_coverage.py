"""A method defined in a test directory's ``method_*.py`` file is covered by the contract test on its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

EXAMPLE = '''
import methods
from methods.vnet import SupervisedVNet


@methods.register
class Example(SupervisedVNet):
    name = "example_method"
    label = "Example"
'''


def test_a_method_in_a_test_file_gets_the_contract_tests(tmp_path: Path) -> None:
    for name in ("conftest.py", "runs.py"):
        shutil.copy(TESTS / name, tmp_path / name)
    (tmp_path / "methods_tests").mkdir()
    shutil.copy(TESTS / "methods" / "test_contract.py", tmp_path / "methods_tests" / "test_contract.py")
    (tmp_path / "methods_tests" / "method_example.py").write_text(EXAMPLE)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib", "-rA",
         "-k", "round_trip and example_method", "methods_tests/test_contract.py"],
        cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASSED methods_tests/test_contract.py::test_state_dict_round_trip_and_predict_shape[example_method]" \
        in out.stdout, out.stdout
