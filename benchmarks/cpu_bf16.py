"""A self-check of the CPU's bf16 3-D convolution kernels, and the fallback when they compute wrong numbers.

On CPUs whose oneDNN build picks the ``jit_bf16:avx512_core`` convolution (AVX-512 without AMX: AMD Zen 4,
Intel Cascade/Cooper/Ice Lake, or any CPU under ``ONEDNN_MAX_CPU_ISA=AVX512_CORE[_BF16]``), oneDNN 3.x
computes the weight gradient of a 3x3x3 convolution over feature maps with 2x2 in-plane voxels from memory it
never wrote: the gradients are wrong by their own size, differ from call to call and are sometimes NaN or
1e37. The V-Net meets such maps at its bottleneck whenever a patch axis is 32 voxels (the CPU-sized
protocols), so bf16 training there diverges at random or silently learns from garbage. PyTorch's native
kernels (the path every CPU without AVX-512 takes) are correct.

:func:`bf16_convolution_kernels` probes the convolutions the V-Net family uses over the smallest feature
maps, once per process, against a float64 reference; :func:`bf16_kernel_context` turns oneDNN off around
a bf16 step or inference when the probe failed.
"""

from __future__ import annotations

import functools
import itertools
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ConfigError

#: (kernel, stride, padding, transposed) of the V-Net's convolutions (blocks, down, up, heads), each with the
#: small feature maps it is probed on: every oneDNN fault seen was a 3x3x3 weight gradient over maps with an
#: axis of 1 or 2 voxels; the larger maps check that the probe itself passes where kernels are right.
PROBES = (
    ((3, 1, 1, False), ((1, 1, 1), (2, 1, 1), (1, 2, 1), (2, 2, 1), (2, 2, 2), (3, 3, 3), (4, 4, 2))),
    ((2, 2, 0, False), ((2, 2, 2), (4, 4, 2))),
    ((2, 2, 0, True), ((1, 1, 1), (2, 2, 1))),
    ((1, 1, 0, False), ((2, 2, 1),)),
)
CHANNELS = 16
#: Relative error (L2) of bf16 results against the float64 reference on the same bf16-rounded operands;
#: correct kernels stay below 1 % (0.55 % at most, measured), the faulty ones are off by 80 % or more.
TOLERANCE = 0.1


@dataclass(frozen=True)
class KernelChoice:
    """``kernels``: ``onednn`` or ``native``; ``faults``: what the probe found wrong in oneDNN (empty if none)."""

    kernels: str
    faults: tuple[str, ...] = ()


def _relative_error(value: Tensor, reference: Tensor) -> float:
    value = value.double()
    if not bool(torch.isfinite(value).all()):
        return float("inf")
    return float((value - reference).norm() / reference.norm().clamp_min(1e-30))


def probe(generator_seed: int = 0) -> list[str]:
    """Run each convolution of :data:`PROBES` over its feature maps (batch 2, 16 channels, channels-last and
    contiguous) forward and backward under bf16 autocast with the current kernel settings; returns the
    failures as ``"<conv> on <X>x<Y>x<Z> (<layout>): <tensor> off by <error>"``."""
    g = torch.Generator().manual_seed(generator_seed)
    faults = []
    cases = ((conv, size) for conv, sizes in PROBES for size in sizes)
    for ((k, stride, pad, transposed), size), layout in itertools.product(
            cases, (torch.channels_last_3d, torch.contiguous_format)):
        op = F.conv_transpose3d if transposed else F.conv3d
        x = torch.randn(2, CHANNELS, *size, generator=g).bfloat16().float().contiguous(memory_format=layout)
        w = torch.randn(CHANNELS, CHANNELS, k, k, k, generator=g).bfloat16().float()
        w = w.contiguous(memory_format=layout).requires_grad_()
        x.requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = op(x, w, stride=stride, padding=pad)
        dy = torch.randn(y.shape, generator=g).bfloat16()
        y.backward(dy)
        x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
        y64 = op(x64, w64, stride=stride, padding=pad)
        y64.backward(dy.double())
        name = f"{'conv_transpose3d' if transposed else 'conv3d'} k{k} s{stride}"
        where = f"{'x'.join(map(str, size))} ({'channels-last' if layout is torch.channels_last_3d else 'contiguous'})"
        for tensor, value, reference in (("output", y, y64), ("input gradient", x.grad, x64.grad),
                                         ("weight gradient", w.grad, w64.grad)):
            error = _relative_error(value.detach(), reference.detach())
            if not error <= TOLERANCE:
                faults.append(f"{name} on {where}: {tensor} off by {error:.3g}")
    return faults


@functools.cache
def bf16_convolution_kernels() -> KernelChoice:
    """Which kernels bf16 3-D convolutions on this CPU must use, probed once per process.

    oneDNN when it passes :func:`probe`; else PyTorch's native kernels, announced once on stderr. Raises
    :class:`ConfigError` when the native kernels fail too.
    """
    onednn = torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
    faults = probe()
    if not faults:
        return KernelChoice("onednn" if onednn else "native")
    if not onednn:
        raise ConfigError(f"amp: bf16 computes wrong convolutions on this CPU ({faults[0]}); use amp: off")
    with native_convolutions():
        native = probe()
    if native:
        raise ConfigError(f"amp: bf16 computes wrong convolutions on this CPU with oneDNN ({faults[0]}) and with "
                          f"PyTorch's native kernels ({native[0]}); use amp: off")
    print(f"note: oneDNN's bf16 3-D convolutions are wrong on this CPU ({len(faults)} probe failures, e.g. "
          f"{faults[0]}); bf16 on CPU uses PyTorch's native convolution kernels instead (correct, slower)",
          file=sys.stderr)
    return KernelChoice("native", tuple(faults))


def bf16_kernel_context(amp: str, device: torch.device | str) -> AbstractContextManager[Any]:
    """oneDNN off for the enclosed forward and backward passes when ``amp`` is ``bf16`` on a CPU whose oneDNN
    failed :func:`probe`; nothing otherwise."""
    if amp != "bf16" or torch.device(device).type != "cpu":
        return nullcontext()
    if bf16_convolution_kernels().kernels == "native":
        return native_convolutions()
    return nullcontext()


@contextmanager
def native_convolutions() -> Iterator[None]:
    """PyTorch's native CPU kernels instead of oneDNN's inside the block (a process-wide switch)."""
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous
