"""Learning-rate schedules as pure functions of the outer iteration."""

from __future__ import annotations

from ..config.schema import ScheduleConfig


def learning_rate(base_lr: float, iteration: int, max_iterations: int, schedule: ScheduleConfig) -> float:
    """Learning rate of the update made at 0-based outer ``iteration``.

    ``step``: ``base * gamma^floor(iteration / step_size)`` (the official code multiplies after every
    2,500th update, so updates 1..2500 use the base rate); ``poly``: ``base * (1 - iteration / max)^power``.
    """
    if schedule.name == "step":
        return base_lr * schedule.gamma ** (iteration // schedule.step_size)
    if schedule.name == "poly":
        return base_lr * (1 - iteration / max_iterations) ** schedule.power
    return base_lr
