"""The two ways of running that the benchmark compares, and the devices' peak throughput."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError

#: Workers of the official code's training DataLoader (UA-MT lineage: ``num_workers=4, pin_memory=True``).
OFFICIAL_WORKERS = 4

#: Config overrides per mode. ``reference``: fp32, every sample re-read from HDF5 in 4 DataLoader workers,
#: NumPy augmentation, one window at a time, deterministic cuDNN (and no TF32, see :func:`precision`).
#: ``fast``: bf16 autocast, volumes and augmentation on the training device, channels-last 3D, cuDNN
#: autotuning, 8 windows per forward. ``torch.compile`` stays off: on the CPU it took 100 s to compile the
#: V-Net and gained nothing (``benchmarks/README.md``); on a GPU it is to be measured (``--compile``).
MODES: dict[str, dict[str, Any]] = {
    "reference": {
        "amp": "off", "deterministic": True, "num_workers": OFFICIAL_WORKERS,
        "speed": {"data": "hdf5", "channels_last": False, "compile": "off"}, "eval": {"batch_size": 1},
    },
    "fast": {
        "amp": "bf16", "deterministic": False, "num_workers": 0,
        "speed": {"data": "device", "channels_last": True, "compile": "off"}, "eval": {"batch_size": 8},
    },
}

#: Dense peak throughput in FLOP/s by (device name fragment, precision); the first matching fragment wins.
PEAKS: dict[str, dict[str, float]] = {
    "H100 PCIe": {"bf16": 756e12, "fp32": 51e12},
    "H100": {"bf16": 989e12, "fp32": 67e12},  # SXM
    "H200": {"bf16": 989e12, "fp32": 67e12},
    "A100": {"bf16": 312e12, "fp32": 19.5e12},
}

#: Memory of the card the workflow packs runs onto (README), and what each run needs beyond its tensors.
CARD_GB = 80.0
CONTEXT_GB = 0.6  # CUDA context and cuDNN workspace outside ``max_memory_allocated``


def mode_overrides(mode: str, compile_mode: str = "off") -> dict[str, Any]:
    """A deep copy of :data:`MODES` ``[mode]``; ``compile_mode`` replaces ``speed.compile`` in ``fast``."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in MODES[mode].items()}
    if mode == "fast":
        out["speed"]["compile"] = compile_mode
    return out


@contextmanager
def precision(mode: str, device: torch.device) -> Iterator[None]:
    """On CUDA, ``reference`` runs true fp32 convolutions and matmuls (PyTorch's TF32 default off), as the
    official code did on pre-Ampere GPUs; the previous settings are restored. A no-op on the CPU."""
    if device.type != "cuda" or mode != "reference":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0] if names else model
    return f"CPU {model} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def peak_flops(device: torch.device, amp: str) -> float | None:
    """Dense peak FLOP/s of ``device`` at the precision ``amp`` computes in; None when not tabulated (CPUs)."""
    if device.type != "cuda":
        return None
    name = device_name(device)
    for fragment, peaks in PEAKS.items():
        if fragment in name:
            return peaks["bf16" if amp in ("bf16", "fp16") else "fp32"]
    return None


def runs_per_card(peak_gb: float, card_gb: float = CARD_GB) -> int:
    """Trainings of measured peak ``peak_gb`` (``max_memory_allocated``) that fit on one ``card_gb`` GPU."""
    return math.floor(card_gb / (peak_gb + CONTEXT_GB))
