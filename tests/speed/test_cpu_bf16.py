"""bf16 on CPU computes right convolution gradients whatever oneDNN kernels the CPU (or ONEDNN_MAX_CPU_ISA) picks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from benchmarks.cpu_bf16 import bf16_convolution_kernels, bf16_kernel_context, probe

# The V-Net bottleneck's 3x3x3 convolution at a 32x32x16 patch (2x2x1 maps), repeated: oneDNN's avx512_core
# kernels return a different, wrong (often NaN or 1e37) weight gradient nearly every call.
BOTTLENECK = """
import json, torch
from benchmarks.runtime import autocast
from benchmarks.train.provenance import device_info
g = torch.Generator().manual_seed(0)
x = torch.randn(2, 64, 2, 2, 1, generator=g).bfloat16().float().contiguous(memory_format=torch.channels_last_3d)
w = torch.randn(64, 64, 3, 3, 3, generator=g).bfloat16().float().contiguous(memory_format=torch.channels_last_3d)
dy = torch.randn(2, 64, 2, 2, 1, generator=g).bfloat16()
w64 = w.double().requires_grad_()
torch.nn.functional.conv3d(x.double(), w64, padding=1).backward(dy.double())
errors = []
for _ in range(20):
    wi = w.clone().requires_grad_()
    with autocast("bf16", "cpu"):
        torch.nn.functional.conv3d(x, wi, padding=1).backward(dy)
    e = (wi.grad.double() - w64.grad).norm() / w64.grad.norm()
    errors.append(float(e) if torch.isfinite(e) else float("inf"))
print(json.dumps({"errors": errors, "device": device_info(torch.device("cpu"), "bf16")}))
"""


@pytest.mark.parametrize("isa", [None, "AVX2", "AVX512_CORE", "AVX512_CORE_BF16"])
def test_bottleneck_weight_gradient_is_right_under_each_isa(isa: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    out = subprocess.run([sys.executable, "-c", BOTTLENECK], env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.splitlines()[-1])
    assert max(result["errors"]) < 0.02, (isa, result)
    device = result["device"]
    assert device["bf16_convolutions"] in ("onednn", "native")
    if device["bf16_convolutions"] == "native" and torch.backends.mkldnn.is_available():
        assert device["onednn_bf16_faults"] and "note: oneDNN's bf16 3-D convolutions are wrong" in out.stderr


def test_the_chosen_kernels_pass_the_probe() -> None:
    with bf16_kernel_context("bf16", "cpu"):
        assert probe(generator_seed=1) == []
    assert bf16_convolution_kernels() is bf16_convolution_kernels()  # probed once per process


def test_the_probe_sees_a_wrong_weight_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    real = torch.nn.functional.conv3d

    def zero_weight_gradient_on_tiny_maps(x: torch.Tensor, w: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """Under autocast only (the float64 reference stays right), like the oneDNN fault."""
        if tuple(x.shape[2:]) != (2, 2, 1) or w.shape[2] != 3 or not torch.is_autocast_enabled("cpu"):
            return real(x, w, *args, **kwargs)
        return real(x, w.detach(), *args, **kwargs) + 0 * real(x.detach(), w, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "conv3d", zero_weight_gradient_on_tiny_maps)
    faults = probe()
    assert len(faults) == 2 and all(f.startswith("conv3d k3 s1 on 2x2x1") and "weight gradient off by 1" in f
                                    for f in faults), faults
