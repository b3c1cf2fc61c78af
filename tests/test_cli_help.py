"""``sslbench --help`` is fast and plain: no heavy import, no reStructuredText markup."""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.cli import _parser

HEAVY = ("torch", "pandas", "matplotlib", "snakemake", "numpy", "scipy", "h5py", "methods")

PROBE = r'''
import contextlib, io, json, sys
from benchmarks.cli import main
for argv in (["--help"], *([name, "--help"] for name in sys.argv[1:])):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit:
            pass
print(json.dumps(sorted(sys.modules)))
'''


def _commands() -> list[str]:
    sub = next(a for a in _parser()._actions if a.dest == "command")
    return list(sub.choices)


def test_help_of_every_command_imports_no_heavy_module() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, *_commands()], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_help_texts_have_no_backticks() -> None:
    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    texts = [parser.format_help(), *(p.format_help() for p in sub.choices.values())]
    assert all("`" not in text for text in texts)
