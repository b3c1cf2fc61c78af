"""How a result was made: code version, package versions, device."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ..cpu_bf16 import bf16_convolution_kernels

PACKAGES = ("torch", "numpy", "scipy", "h5py", "medpy", "pandas", "thop", "pyyaml", "snakemake")
_REPO = Path(__file__).resolve().parents[2]


def code_version() -> dict[str, Any]:
    """Git commit of the suite and whether the working tree had uncommitted changes."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(_REPO), *args], capture_output=True, text=True, timeout=10,
                                 check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_info(device: torch.device, amp: str = "off") -> dict[str, Any]:
    """The device, its CPU and threads; under ``amp: bf16`` on a CPU, which convolution kernels computed
    (``bf16_convolutions``: ``onednn`` or ``native``) and the oneDNN faults that made it ``native``."""
    info: dict[str, Any] = {"type": device.type, "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    if amp == "bf16" and device.type == "cpu":
        choice = bf16_convolution_kernels()
        info |= {"bf16_convolutions": choice.kernels, "onednn_bf16_faults": list(choice.faults)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda}
    return info


def provenance(device: torch.device, amp: str = "off") -> dict[str, Any]:
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": code_version(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "device": device_info(device, amp),
    }
