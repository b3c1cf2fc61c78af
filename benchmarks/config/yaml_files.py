"""YAML reading whose syntax errors are one line naming the file (line, column) or the ``--set`` key and value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError


def parse_value(key: str, raw: str) -> Any:
    """The YAML value of ``--set key=raw`` (``""`` for an empty one); a syntax error names the key and value."""
    try:
        return yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: invalid value {raw!r} ({_yaml_problem(exc, lines=False)})") from None


def read_yaml(path: Path, what: str = "") -> Any:
    """Parse the YAML file ``path``; a syntax error names the file, line and column (``what``: e.g. "config file")."""
    name = f"{what} {path}" if what else str(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML ({_yaml_problem(exc, lines=True)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name} is unreadable ({exc})") from None


def _yaml_problem(exc: yaml.YAMLError, lines: bool) -> str:
    """PyYAML's complaint in one line: ``line 2, column 1: found character '\\t' that cannot start any token``."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return problem
    return f"{f'line {mark.line + 1}, ' if lines else ''}column {mark.column + 1}: {problem}"
