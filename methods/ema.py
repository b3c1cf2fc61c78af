"""Mean-teacher pieces shared by UA-MT, ASE-Net, FUSSNet, BCP and AD-MT."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_teacher(student: nn.Module) -> nn.Module:
    """A frozen deep copy of ``student`` (no gradients; updated only by :func:`update_ema`)."""
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def update_ema(teacher: nn.Module, student: nn.Module, decay: float, step: int | None = None) -> float:
    """``theta' <- a theta' + (1 - a) theta`` with ``a = min(1 - 1 / (step + 1), decay)``; returns ``a``.

    As in the official code (``yulequan/UA-MT``), only parameters are averaged: the teacher's BatchNorm
    buffers come from its own forward passes. ``step`` is the 0-based count of updates so far, which makes
    the first update copy the student; ``step=None`` skips that warm-up (``a = decay`` throughout, BCP).
    """
    alpha = decay if step is None else min(1.0 - 1.0 / (step + 1), decay)
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
    return alpha


@torch.no_grad()
def average_buffers(teacher: nn.Module, student: nn.Module, alpha: float) -> None:
    """``b' <- a b' + (1 - a) b`` for every floating-point buffer (BatchNorm running mean and variance), as
    AD-MT averages buffers with the parameters' ``a``; integer counters (``num_batches_tracked``) keep the
    teacher's own values."""
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        if t.is_floating_point():
            t.mul_(alpha).add_(s, alpha=1.0 - alpha)
