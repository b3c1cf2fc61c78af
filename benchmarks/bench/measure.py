"""Measurements of one method and dataset in one mode: the harness's training loop, a bare loop of the same
network, FLOPs per iteration, and evaluation seconds per test volume."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from methods.base import Batch, Options, TrainingData

from ..config import RunConfig
from ..data.device_batches import DeviceBatches
from ..data.sampler import TwoStreamSchedule
from ..evaluate.cases import evaluate_cases
from ..evaluate.inference import Inferer
from ..report.complexity import complexity
from ..runtime import build_method
from ..train.context import HarnessContext
from ..train.data import load_split, load_test_cases
from ..train.speed import prepare_networks
from ..train.trainer import Trainer


@dataclass
class TrainingRun:
    """A finished benchmark training: its trainer (method, stages, data) and per-iteration timings of the
    last stage after the warm-up: ``seconds`` (step time, data wait included) and ``waits`` (data wait)."""

    trainer: Trainer
    seconds: list[float]
    waits: list[float]
    peak_gpu_bytes: int | None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(config: RunConfig, options: Options, run_dir: Path, warmup: int) -> TrainingRun:
    """Train ``config`` (``config.iterations`` = warm-up + measured iterations per stage, no validation) with
    the real harness, :meth:`Trainer.fit`; time the last stage's iterations after the first ``warmup``."""
    trainer = Trainer(config, options, run_dir, progress=False)
    device = trainer.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer.fit()
    _sync(device)
    log = pd.read_csv(run_dir / "log.csv")
    last = (log["stage_index"] == log["stage_index"].max()).to_numpy()
    waits = [w for w, keep in zip(trainer.data_wait.waits, last) if keep][warmup:]
    seconds = log.loc[last, "seconds"].tolist()[warmup:]
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return TrainingRun(trainer, seconds, waits, peak)


class _BareContext:
    """The least a method's step needs: zero-grad/backward/step (no checks, no scaler, no logging); the loop
    runs the step under :meth:`autocast`."""

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer], device: torch.device, amp: str,
                 stage: str, iterations: int, data: TrainingData) -> None:
        self.optimizers, self.device, self.stage, self.data = dict(optimizers), device, stage, data
        self.iteration, self.max_iterations = 0, iterations
        self._autocast = HarnessContext({}, device, amp).autocast

    def autocast(self) -> Any:
        return self._autocast()

    def log(self, terms: Mapping[str, Tensor]) -> None:
        return None

    def step(self, loss: Tensor, optimizer: str = "main", terms: Mapping[str, Tensor] | None = None) -> None:
        opt = self.optimizers[optimizer]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        torch.clear_autocast_cache()


class _CountingContext(_BareContext):
    """Forward passes only: ``step`` does nothing, so a FLOP counter sees the forward work of a step."""

    def step(self, loss: Tensor, optimizer: str = "main", terms: Mapping[str, Tensor] | None = None) -> None:
        return None


def first_batch(run: TrainingRun) -> Batch:
    """The last stage's batch of iteration 0, on the run's device (as the harness feeds it)."""
    trainer, config = run.trainer, run.trainer.config
    stage = trainer.stages[-1]
    labeled_bs = stage.labeled_bs if stage.labeled_bs is not None else config.labeled_bs
    unlabeled_bs = stage.unlabeled_bs if stage.unlabeled_bs is not None else config.unlabeled_bs
    data = trainer.ctx.data
    unlabeled = data.unlabeled if unlabeled_bs else []
    schedule = TwoStreamSchedule(len(data.labeled), len(unlabeled), labeled_bs, unlabeled_bs, config.seed, stage.name)
    item = DeviceBatches(data.labeled, [(u, None) for u in unlabeled], schedule, config.patch, rotflip=config.rotflip,
                         seed=config.seed, device=trainer.device, stream=stage.name, stop=1,
                         channels_last=config.speed.channels_last)[0]
    return Batch(item["image"], item["label"], item["labeled_index"], item["unlabeled_index"])  # type: ignore[arg-type]


def bare_seconds(run: TrainingRun, options: Options, iterations: int) -> list[float]:
    """Seconds per step of a bare loop of the run's method: a fresh copy of its networks (same speed settings)
    and optimisers, one fixed batch already on the device, ``training_step`` with a minimal context; no
    loader, reseeding, learning-rate schedule, finite checks or logging. The first step is a warm-up."""
    trainer, config = run.trainer, run.trainer.config
    device = trainer.device
    method = build_method(config, options).to(device)
    method.load_state_dict(trainer.method.state_dict())
    prepare_networks(method, config.speed)
    method.train()
    batch = first_batch(run)
    ctx = _BareContext({name: _optimizer_like(opt, method, trainer.method) for name, opt in trainer.optimizers.items()},
                       device, config.amp, trainer.stages[-1].name, config.iterations, trainer.ctx.data)
    out = []
    for _ in range(iterations + 1):
        tic = time.perf_counter()
        with ctx.autocast():
            method.training_step(ctx, batch)
        method.after_step(ctx)
        _sync(device)
        out.append(time.perf_counter() - tic)
        ctx.iteration += 1
    return out[1:]


def _optimizer_like(opt: torch.optim.Optimizer, method: torch.nn.Module, source: torch.nn.Module) -> torch.optim.Optimizer:
    """An optimiser of ``opt``'s class and hyper-parameters over ``method``'s parameters that ``opt`` trains
    in ``source`` (matched by name)."""
    names = {id(p): n for n, p in source.named_parameters()}
    params = dict(method.named_parameters())
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [params[names[id(p)]] for p in g["params"]]}
              for g in opt.param_groups]
    return type(opt)(groups)


def forward_passes(run: TrainingRun, options: Options) -> float:
    """Forward work of one training step of the last stage in units of one inference forward
    (:meth:`Method.predict`) of one row, both counted by :class:`FlopCounterMode` on the real batch shapes:
    e.g. 2 for the V-Net (2 labeled rows), more for methods with teachers, perturbed or repeated passes."""
    trainer, config = run.trainer, run.trainer.config
    device = trainer.device
    method = build_method(config, options).to(device)
    method.load_state_dict(trainer.method.state_dict())
    batch = first_batch(run)
    ctx = _CountingContext({}, device, "off", trainer.stages[-1].name, config.iterations, trainer.ctx.data)
    ctx.iteration = 0
    method.train()
    with FlopCounterMode(display=False) as step:
        method.training_step(ctx, batch)
    method.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as one:
        method.predict(batch.image[:1].contiguous())
    return step.get_total_flops() / one.get_total_flops()


def inference_macs(config: RunConfig, options: Options) -> int:
    """thop MACs of one inference forward of one ``patch`` row (``sslbench complexity``'s ``macs``)."""
    return int(complexity(config, options, tuple(config.patch))["macs"])


def evaluate(run: TrainingRun, n_cases: int | None) -> tuple[float, pd.DataFrame]:
    """Seconds per test volume of sliding-window inference plus metrics (``evaluate_cases``, the harness's
    evaluation) with the run's trained method, eval settings and autocast, over the first ``n_cases`` test
    volumes (all if None); and their per-case metrics."""
    trainer, config = run.trainer, run.trainer.config
    cases = load_test_cases(config, load_split(config), progress=False)[:n_cases]
    method = trainer.method.eval()
    _sync(trainer.device)
    tic = time.perf_counter()
    per_case = evaluate_cases(method.predict, [(c.id, c.image, c.label, c.spacing) for c in cases],
                              Inferer.from_config(config, trainer.device), config.eval.empty_policy, progress=False)
    _sync(trainer.device)
    return (time.perf_counter() - tic) / len(cases), per_case


def median(values: list[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else float("nan")
