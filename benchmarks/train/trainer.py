"""The training harness: one loop for every method, stage and device.

Everything random in an outer iteration is a function of (seed, stage, iteration): the batch and its
augmentation (:class:`~benchmarks.data.batches.TrainBatches`) and the torch generator, re-seeded before
every iteration (dropout masks, method noise) and before each stage's :meth:`~methods.base.Method.on_stage_start`.
A checkpoint therefore needs no RNG state to resume exactly: model (with any method state such as
teachers or pseudo-labels), optimisers, grad scalers, stage and iteration suffice, and a run killed and
resumed on the CPU in deterministic mode ends with bit-identical weights, inside a stage or at a boundary.

Multi-stage methods (:class:`~methods.base.Stage`): each stage has its own budget, batch composition,
learning-rate mode and optimiser hand-over. A stage that starts (at iteration 0, also on a resume at the
boundary) first restores the previous stage's best checkpoint when that stage ``select_best``-s under
held-out selection (``checkpoint_best_<stage>.pt``; the last stage's best is ``checkpoint_best.pt``; under
``selection: test_best``, literature mode, the checkpoints of the highest test-set Dice are
``checkpoint_test_best[_<stage>].pt``), then resets optimiser state if asked, then calls ``on_stage_start``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from methods.base import Batch, OptimizerSpec, Options, RunInfo, Stage, TrainingData

from ..config import RunConfig, config_hash, dataset_info, load_config
from ..config.coerce import to_dict
from ..config.record import RECORD, read_record, write_record
from ..config.schema import OPERATIONAL_KEYS
from ..data.sampler import TwoStreamSchedule
from ..data.seeding import rng
from ..errors import CheckpointError, ConfigError, TrainingDiverged
from ..evaluate.inference import Inferer
from ..evaluate.metrics import case_metrics
from ..io import remove_temp_files, write_json
from ..rundir import BEST, FINAL, LATEST, SNAPSHOTS, STATUS, TEST_BEST, snapshot_name, stage_best
from ..runtime import architecture, build_method, resolve_device
from .checkpoint import load_checkpoint, save_checkpoint
from .context import HarnessContext
from .data import TrainingCases, load_split, load_test_cases, load_training_cases
from .logger import CsvLog
from .progress import EVERY_S, StageProgress, progress_mode
from .provenance import provenance
from .schedules import learning_rate
from .speed import WaitClock, prepare_networks, training_batches

#: Selection modes that keep a best checkpoint, and the cases each selects on.
SELECTING = {"heldout": "validation", "test_best": "test"}


def prepare_run_dir(run_dir: Path, config: RunConfig) -> str:
    """Create ``run_dir`` with its ``config.yaml``, or check that an existing one records the same config (keys
    its schema version lacked compared at their defaults, :func:`~benchmarks.config.record.read_record`);
    returns the run's configuration hash."""
    if (run_dir / RECORD).is_file():
        record = read_record(run_dir)
        diff = _differences(to_dict(load_config(record.settings)[0]), to_dict(config))
        if diff:
            values = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in diff.items())
            raise ConfigError(
                f"run directory {run_dir} holds a run with another configuration (differing keys: "
                f"{', '.join(diff)}; recorded -> requested: {values}); choose another --out or remove the directory"
            )
        return record.hash
    return write_record(run_dir, config)


def _differences(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (value in a, value in b)}`` of every differing key, operational keys left out."""
    out: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(a) | set(b)):
        if not prefix and key in OPERATIONAL_KEYS:
            continue
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out |= _differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out[prefix + key] = (va, vb)
    return out


class Trainer:
    """Trains ``config.method`` into ``run_dir``, resuming from ``checkpoint_latest.pt`` when present.

    Progress goes to stderr (:mod:`~benchmarks.train.progress`): ``progress=None`` shows a bar on a terminal and a
    plain line every ``progress_every_s`` seconds elsewhere, ``True`` the bar, ``False`` nothing.
    """

    def __init__(self, config: RunConfig, options: Options, run_dir: Path, progress: bool | None = None,
                 progress_every_s: float = EVERY_S) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.progress = progress_mode(progress, sys.stderr)
        self.progress_every_s = progress_every_s
        self.device = resolve_device(config.device)
        _set_determinism(config.deterministic, self.device)
        torch.manual_seed(config.seed)  # weight initialisation
        self.method = build_method(config, options).to(self.device)
        prepare_networks(self.method, config.speed)
        self.data_wait = WaitClock()
        main = OptimizerSpec(params=[], name=config.optimizer.name, lr=config.optimizer.lr,
                             momentum=config.optimizer.momentum, weight_decay=config.optimizer.weight_decay)
        self.specs = self.method.optimizers(main)
        self.optimizers = {name: _make_optimizer(spec) for name, spec in self.specs.items()}
        self.ctx = HarnessContext(self.optimizers, self.device, config.amp)
        self.stages: tuple[Stage, ...] = ()
        self.best: dict[str, float] = {}
        #: The run's configuration hash; that of its ``config.yaml`` once :meth:`fit` has checked it.
        self.run_hash = config_hash(config)

    # ----------------------------------------------------------------- public
    def fit(self) -> Path:
        """Run every stage to its end; returns the path of ``checkpoint_final.pt``.

        The split, every training case and every test case are validated before the run directory is created or
        checked, so bad input leaves no run directory behind. ``status.json`` records the outcome: ``completed``, or
        ``failed`` when a loss went non-finite (:class:`TrainingDiverged`, re-raised).
        """
        config = self.config
        split = load_split(config)
        self.stages = self._plan(RunInfo(len(split.labeled), len(split.unlabeled), config.iterations, config.budget,
                                          dataset_info(config)))
        need_unlabeled = any(self._batch_sizes(s)[1] > 0 for s in self.stages)
        cases = load_training_cases(config, split, need_unlabeled, self.progress == "bar")
        self.run_hash = prepare_run_dir(self.run_dir, config)
        remove_temp_files(self.run_dir)
        (self.run_dir / STATUS).unlink(missing_ok=True)
        if config.selection == "test_best":  # literature mode: select on the test cases (an oracle)
            cases.validation = load_test_cases(config, split, self.progress)
        self.ctx.data = TrainingData([(c.image, c.label) for c in cases.labeled], [c.image for c in cases.unlabeled])
        write_json(self.run_dir / "split.json", dataclasses.asdict(split))
        if cases.empty_labels:
            print(f"warning: {len(cases.empty_labels)} training case(s) have an empty label map (no foreground): "
                  f"{', '.join(cases.empty_labels)}; recorded in {self.run_dir / 'provenance.json'}", file=sys.stderr)
        if cases.casts:
            print(f"note: cast on loading: {_listing(cases.casts)}; recorded in {self.run_dir / 'provenance.json'}",
                  file=sys.stderr)
        stage_index, start = self._resume()
        write_json(self.run_dir / "provenance.json", {
            "config_hash": self.run_hash, "seed": config.seed, "method": config.method,
            "stages": [{"name": s.name, "iterations": self._iterations(s)} for s in self.stages],
            "resumed_from": {"stage": stage_index, "iteration": start} if (stage_index or start) else None,
            "uses_unlabeled": need_unlabeled,
            "empty_label_cases": cases.empty_labels,
            "casts": cases.casts,
            **provenance(self.device, config.amp),
        })
        position = (stage_index, start)
        log = CsvLog(self.run_dir / "log.csv", keep=lambda row: _position(row) < position)
        val_log = CsvLog(self.run_dir / "val.csv", keep=lambda row: _position(row) < position)
        try:
            for index in range(stage_index, len(self.stages)):
                first = start if index == stage_index else 0
                if first == 0:
                    self._start_stage(index)
                self._run_stage(index, first, cases, log, val_log)
        except TrainingDiverged as exc:
            raise self._record_divergence(exc) from None
        final = self.run_dir / FINAL
        state = self._state(len(self.stages), 0)
        save_checkpoint(final, _weights_only(state) if config.prune_checkpoints else state)
        if config.prune_checkpoints:
            self._prune()
        write_json(self.run_dir / STATUS, {"status": "completed", "config_hash": self.run_hash,
                                           "checkpoint": FINAL})
        return final

    # ---------------------------------------------------------------- helpers
    def _plan(self, run: RunInfo) -> tuple[Stage, ...]:
        try:
            stages = tuple(self.method.stages(run))
        except ValueError as exc:  # e.g. a split too small for the method's epoch structure
            raise ConfigError(f"method {self.config.method!r}: {exc}") from None
        names = [s.name for s in stages]
        if not stages or len(set(names)) != len(names):
            raise ConfigError(f"method {self.config.method!r} declares stages {names}; "
                              "need at least one, with unique names")
        for stage in stages:
            if stage.iterations is not None and stage.iterations <= 0:
                raise ConfigError(f"stage {stage.name!r} of method {self.config.method!r} has {stage.iterations} "
                                  "iterations; it needs at least one")
            try:  # the batch composition fits the split (checked again, per stage, when its batches are drawn)
                TwoStreamSchedule(run.n_labeled, run.n_unlabeled, *self._batch_sizes(stage))
            except ConfigError as exc:
                raise ConfigError(f"stage {stage.name!r} of method {self.config.method!r}: {exc}; "
                                  "change 'labels', 'labeled_bs' or 'unlabeled_bs'") from None
        return stages

    def _batch_sizes(self, stage: Stage) -> tuple[int, int]:
        labeled = stage.labeled_bs if stage.labeled_bs is not None else self.config.labeled_bs
        unlabeled = stage.unlabeled_bs if stage.unlabeled_bs is not None else self.config.unlabeled_bs
        return labeled, unlabeled

    def _iterations(self, stage: Stage) -> int:
        """The stage's budget, capped by the run's ``iterations``."""
        run = self.config.iterations
        return run if stage.iterations is None else min(stage.iterations, run)

    def _best_path(self, index: int) -> Path:
        last = index == len(self.stages) - 1
        best = TEST_BEST if self.config.selection == "test_best" else BEST
        return self.run_dir / (best if last else stage_best(self.stages[index].name, best))

    def _start_stage(self, index: int) -> None:
        """Hand-over into stage ``index``: restore the previous stage's selection, reset optimisers, hook."""
        config, stage, ctx = self.config, self.stages[index], self.ctx
        previous = self.stages[index - 1] if index else None
        if previous is not None and previous.select_best and config.selection in SELECTING:
            path = self._best_path(index - 1)
            if path.is_file():
                state = load_checkpoint(path, config.method, architecture(config))
                self.method.load_state_dict(state["method_state"])
                for name, opt in self.optimizers.items():
                    opt.load_state_dict(state["optimizers"][name])
        if stage.reset_optimizers:
            for opt in self.optimizers.values():
                opt.state.clear()
        self.best = {}
        ctx.stage, ctx.iteration, ctx.max_iterations = stage.name, 0, self._iterations(stage)
        torch.manual_seed(int(rng(config.seed, "torch", stage.name, "start").integers(2**62)))
        self.method.train()
        self.method.on_stage_start(ctx)

    def _loader(self, index: int, start: int, cases: TrainingCases) -> Iterable[dict[str, Any]]:
        """The stage's batches from ``config.speed.data``, timed by ``self.data_wait``."""
        config, stage = self.config, self.stages[index]
        labeled_bs, unlabeled_bs = self._batch_sizes(stage)
        unlabeled = cases.unlabeled if unlabeled_bs else []
        schedule = TwoStreamSchedule(len(cases.labeled), len(unlabeled), labeled_bs, unlabeled_bs, config.seed, stage.name)
        batches = training_batches(
            config.speed, cases.labeled, unlabeled, schedule, config.patch, rotflip=config.rotflip, seed=config.seed,
            stream=stage.name, start=start, stop=self._iterations(stage), device=self.device,
            num_workers=config.num_workers,
        )
        return self.data_wait.wrap(batches)

    def _run_stage(self, index: int, start: int, cases: TrainingCases, log: CsvLog, val_log: CsvLog) -> None:
        config, stage, ctx = self.config, self.stages[index], self.ctx
        total = self._iterations(stage)
        ctx.stage, ctx.max_iterations = stage.name, total
        bar = StageProgress(f"{config.method} {stage.name}", total, start, self.progress, every_s=self.progress_every_s)
        tic = time.perf_counter()
        for item in self._loader(index, start, cases):
            iteration = int(item["iteration"])
            ctx.iteration = iteration
            lrs = self._set_learning_rates(iteration, total, stage.constant_lr)
            torch.manual_seed(int(rng(config.seed, "torch", stage.name, iteration).integers(2**62)))
            image, label = (item[k].to(self.device, non_blocking=True) for k in ("image", "label"))
            batch = Batch(image, label, item["labeled_index"], item["unlabeled_index"])
            self.method.train()
            terms = ctx.run_step(self.method, batch)
            self.method.after_step(ctx)
            done = iteration + 1
            row = {"stage": stage.name, "stage_index": index, "iteration": iteration, **lrs,
                   **{f"steps_{k}": v for k, v in ctx.steps.items()},
                   **terms, "seconds": round(time.perf_counter() - tic, 4)}
            log.write(row)
            tic = time.perf_counter()
            if self._validation_due(index, done, total):
                dice = self._validate(cases)
                val_log.write({"stage": stage.name, "stage_index": index, "iteration": iteration, "dice": dice})
                if dice >= self.best.get("dice", -1.0):
                    self.best = {"dice": dice, "stage_index": index, "iteration": done}
                    save_checkpoint(self._best_path(index), self._state(index, done))
                bar.note(val_dice=dice, best=self.best["dice"])
            if done % config.checkpoint_every == 0 or done == total:
                save_checkpoint(self.run_dir / LATEST, self._state(index + (done == total), 0 if done == total else done))
            if done in config.snapshots:
                self._snapshot(index, done)
            bar.update(done, terms)
        bar.close()

    def _set_learning_rates(self, iteration: int, total: int, constant: bool) -> dict[str, float]:
        lrs = {}
        for name, opt in self.optimizers.items():
            spec = self.specs[name]
            scheduled = spec.scheduled and not constant
            lr = learning_rate(spec.lr, iteration, total, self.config.schedule) if scheduled else spec.lr
            for group in opt.param_groups:
                group["lr"] = lr
            lrs[f"lr_{name}"] = lr
        return lrs

    def _validation_due(self, index: int, done: int, total: int) -> bool:
        """Validation (held-out cases; test cases under ``test_best``) every ``val_every`` iterations of the last
        stage and of every ``select_best`` stage, from ``val_start`` of the stage."""
        config = self.config
        selects = index == len(self.stages) - 1 or self.stages[index].select_best
        return (config.selection in SELECTING and selects
                and done % config.val_every == 0 and done >= config.val_start * total)

    @torch.no_grad()
    def _validate(self, cases: TrainingCases) -> float:
        """Mean Dice (%) of the selection cases (``cases.validation``) under the evaluation protocol."""
        config = self.config
        inferer = Inferer.from_config(config, self.device)
        self.method.eval()
        scores = []
        for case in cases.validation:
            mask = inferer.segment(self.method.predict, case.image)
            scores.append(case_metrics(mask, case.label.astype(bool), case.spacing, config.eval.empty_policy)["dice"])
        self.method.train()
        return float(np.mean(scores))

    def _state(self, stage_index: int, iteration: int) -> dict[str, Any]:
        return {
            "method": self.config.method,
            "arch": architecture(self.config),
            "config_hash": self.run_hash,
            "stage_index": stage_index,
            "iteration": iteration,
            "method_state": self.method.state_dict(),
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "scalers": {k: v.state_dict() for k, v in self.ctx.scalers.items()},
            "optimizer_steps": dict(self.ctx.steps),
            "best": dict(self.best),
        }

    def _snapshot(self, index: int, done: int) -> None:
        """Weights after ``done`` iterations of stage ``index`` (no optimiser state), for feature figures."""
        save_checkpoint(self.run_dir / SNAPSHOTS / snapshot_name(self.stages[index].name, done),
                        _weights_only(self._state(index, done)))

    def _prune(self) -> None:
        """``prune_checkpoints``: of a finished run keep the weights of ``checkpoint_best.pt`` and
        ``checkpoint_final.pt``; delete ``checkpoint_latest.pt`` and the earlier stages' best checkpoints."""
        best = self.run_dir / BEST
        if best.is_file():
            state = load_checkpoint(best)
            if "optimizers" in state:
                save_checkpoint(best, _weights_only(state))
        for index in range(len(self.stages) - 1):
            self._best_path(index).unlink(missing_ok=True)
        (self.run_dir / LATEST).unlink(missing_ok=True)

    def _record_divergence(self, exc: TrainingDiverged) -> TrainingDiverged:
        """Write the ``failed`` status (where, which terms, the last good checkpoint); the error to raise."""
        latest = self.run_dir / LATEST
        kept = f"the last good checkpoint is {latest}" if latest.is_file() else "no checkpoint was written before"
        index = next((i for i, s in enumerate(self.stages) if s.name == exc.stage), None)
        write_json(self.run_dir / STATUS, {
            "status": "failed", "error": "TrainingDiverged", "message": str(exc), "stage": exc.stage,
            "stage_index": index, "iteration": exc.iteration, "terms": {k: str(v) for k, v in exc.terms.items()},
            "last_good_checkpoint": LATEST if latest.is_file() else None, "config_hash": self.run_hash,
        })
        return TrainingDiverged(f"{exc}; {kept}", exc.stage, exc.iteration, exc.terms)

    def _resume(self) -> tuple[int, int]:
        """Restore the run's last state: a finished run's ``checkpoint_final.pt`` (whatever became of
        ``checkpoint_latest.pt``), else ``checkpoint_latest.pt``; ``(0, 0)`` for a new run."""
        final, latest = self.run_dir / FINAL, self.run_dir / LATEST
        if final.is_file():
            try:
                return self._restore(final)
            except CheckpointError as exc:
                if not latest.is_file():
                    raise
                print(f"warning: {exc}; continuing from {latest}", file=sys.stderr)
        return self._restore(latest) if latest.is_file() else (0, 0)

    def _restore(self, path: Path) -> tuple[int, int]:
        """Load the checkpoint ``path`` of this run into the method, optimisers and scalers; its position."""
        state = load_checkpoint(path, self.config.method, architecture(self.config))
        if state["config_hash"] != self.run_hash:
            raise CheckpointError(f"checkpoint {path} was written under another configuration")
        self.method.load_state_dict(state["method_state"])
        if "optimizers" not in state and int(state["stage_index"]) < len(self.stages):
            raise CheckpointError(f"checkpoint {path} holds weights only (pruned) and cannot resume training")
        if "optimizers" in state:  # a pruned checkpoint of a finished run holds the weights only
            for name, opt in self.optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
                self.ctx.scalers[name].load_state_dict(state["scalers"][name])
        self.ctx.steps = dict(state["optimizer_steps"])
        self.best = dict(state["best"])
        return int(state["stage_index"]), int(state["iteration"])


def _listing(groups: Mapping[str, list[str]], shown: int = 3) -> str:
    """``image float64 -> float32 in 4 case(s) (c0, c1, c2, ...)``, groups joined by ``; ``."""
    return "; ".join(f"{name} in {len(ids)} case(s) ({', '.join(ids[:shown])}{', ...' if len(ids) > shown else ''})"
                     for name, ids in groups.items())


def _weights_only(state: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's state without optimiser and grad-scaler state."""
    return {key: value for key, value in state.items() if key not in ("optimizers", "scalers")}


def _position(row: Mapping[str, str]) -> tuple[int, int]:
    return int(row["stage_index"]), int(row["iteration"])


def _make_optimizer(spec: OptimizerSpec) -> torch.optim.Optimizer:
    if spec.name == "sgd":
        return torch.optim.SGD(spec.params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    if spec.name == "adam":
        return torch.optim.Adam(spec.params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)
    if spec.name == "adamw":
        return torch.optim.AdamW(spec.params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)
    raise ConfigError(f"unknown optimizer {spec.name!r}; expected sgd, adam or adamw")


def _set_determinism(deterministic: bool, device: torch.device) -> None:
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic and device.type == "cuda"
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
