"""The files a published project ships agree with each other: licence, citation, package version."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_license_citation_and_pyproject_agree() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert project["license"] == {"text": "MIT"} and (REPO / "LICENSE").read_text().startswith("MIT License")
    assert citation["license"] == "MIT" and citation["version"] == project["version"]
    references = {ref["title"].split(":")[0]: ref for ref in citation["references"]}
    assert references["Discrepancy Matters"]["identifiers"][0]["value"] == "arXiv:2309.14819"
    tmi = references["Consistency-Guided Differential Decoding for Enhancing Semi-Supervised Medical Image Segmentation"]
    assert (tmi["journal"], tmi["year"], tmi["doi"]) == ("IEEE Transactions on Medical Imaging", 2025,
                                                       "10.1109/TMI.2024.3429340")
