"""``sslbench bench``: per method and dataset protocol, every figure of ``reference`` and ``fast`` side by side.

Figures (rows of the printed table, one column per mode and their ratio ``fast / reference``):

- ``train_it_per_s``: iterations per second of the harness (:meth:`Trainer.fit`), median over the measured
  iterations of the method's last stage (after ``warmup`` iterations).
- ``data_wait_s_per_it`` / ``data_wait_fraction``: median seconds blocked on the batch source per
  iteration, and that over the median step time.
- ``harness_overhead``: median harness step / median bare step - 1, the bare step being the same method's
  ``training_step`` on a fixed on-device batch with nothing around it (:func:`measure.bare_seconds`).
- ``peak_gpu_mem_gb``: ``torch.cuda.max_memory_allocated`` over the training (CUDA only), and
  ``runs_per_80gb_card`` the trainings of that peak (plus 0.6 GB of context) one 80 GB card holds.
- ``passes_per_it``: forward work of one iteration in inference forwards of one row (FLOP-counted).
- ``tflop_per_it``: 2 x 3 x thop MACs of one inference forward x ``passes_per_it`` (forward x 3 for
  forward + backward, the issue's convention; it overcounts forwards without backward, e.g. teachers).
- ``achieved_tflop_s`` and ``peak_fraction`` (of the device's dense bf16/fp32 peak; n/a off the table).
- ``eval_s_per_volume``: sliding window + metrics per test volume (``evaluate_cases``).
- ``dice_mean`` / ``dice_std`` (``--learn``): test Dice (%) of short trainings in each mode over several
  seeds (sample std), and ``learns_same`` = 1 when |fast - reference| <= the larger of the two stds.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from ..config import RunConfig, load_config, parse_sets
from ..io import write_csv
from ..runtime import resolve_device
from ..train.trainer import Trainer
from . import measure
from .modes import MODES, device_name, mode_overrides, peak_flops, precision, runs_per_card

#: Row order of the table.
FIGURES = ("train_it_per_s", "data_wait_s_per_it", "data_wait_fraction", "harness_overhead", "peak_gpu_mem_gb",
           "runs_per_80gb_card", "passes_per_it", "tflop_per_it", "achieved_tflop_s", "peak_fraction",
           "eval_s_per_volume", "dice_mean", "dice_std", "learns_same")

#: The methods timed and the method of the Dice check by default (``benchmarks/config/bench.yaml``).
DEFAULTS = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "bench.yaml").read_text())
#: ``--quick``: tiny settings that run end to end in seconds on one CPU core (for tests).
QUICK_SETS = ("filters=4", "patch=[32,32,16]", "eval.window=[32,32,16]", "eval.strides=[32,32,16]")


@dataclass
class BenchSettings:
    """What ``sslbench bench`` runs; see ``benchmarks/README.md`` for the defaults' rationale."""

    methods: Sequence[str] = tuple(DEFAULTS["methods"])
    dataset: str = "synthetic"
    data_root: str | None = None
    modes: Sequence[str] = ("reference", "fast")
    iterations: int = 20
    warmup: int = 3
    bare_iterations: int = 10
    eval_cases: int | None = 4
    sets: Sequence[str] = ()
    compile: str = "off"
    learn: bool = True
    learn_method: str = DEFAULTS["learn_method"]
    learn_seeds: Sequence[int] = (1337, 1338, 1339)
    learn_iterations: int = 300
    learn_sets: Sequence[str] = ("filters=8",)

    @classmethod
    def quick(cls, **changes: Any) -> BenchSettings:
        base = cls(methods=("vnet",), iterations=2, warmup=1, bare_iterations=2, eval_cases=1, sets=QUICK_SETS,
                   learn_method="vnet", learn_seeds=(1337, 1338), learn_iterations=2, learn_sets=QUICK_SETS)
        for key, value in changes.items():
            setattr(base, key, value)
        return base


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out


def bench_config(settings: BenchSettings, method: str, mode: str, sets: Sequence[str], **run: Any) -> tuple[RunConfig, Any]:
    """The run configuration of one benchmark training: dataset protocol, ``sets``, the mode, no validation,
    no intermediate checkpoints, then ``run`` (e.g. ``iterations``, ``seed``)."""
    overrides: dict[str, Any] = {"method": method, "dataset": settings.dataset}
    if settings.data_root:
        overrides["data_root"] = settings.data_root
    overrides = _merge(overrides, parse_sets(list(sets)))
    overrides = _merge(overrides, mode_overrides(mode, settings.compile))
    overrides = _merge(overrides, {"selection": "last", "checkpoint_every": 10**9, **run})
    return load_config(overrides)


def bench_method(settings: BenchSettings, method: str, work: Path) -> dict[str, dict[str, float]]:
    """Figures of ``method`` per mode (:data:`FIGURES` but the Dice rows)."""
    out: dict[str, dict[str, float]] = {}
    passes: float | None = None
    for mode in settings.modes:
        config, options = bench_config(settings, method, mode, settings.sets,
                                       iterations=settings.warmup + settings.iterations)
        device = resolve_device(config.device)
        with precision(mode, device):
            run = measure.train(config, options, work / f"{method}-{mode}", settings.warmup)
            bare = measure.bare_seconds(run, options, settings.bare_iterations)
            eval_s, _ = measure.evaluate(run, settings.eval_cases)
        if passes is None:
            passes = measure.forward_passes(run, options)
        step = measure.median(run.seconds)
        wait = measure.median(run.waits)
        macs = measure.inference_macs(config, options)
        flop_it = 2 * 3 * macs * passes
        peak = peak_flops(device, config.amp)
        peak_gb = run.peak_gpu_bytes / 1e9 if run.peak_gpu_bytes is not None else math.nan
        out[mode] = {
            "train_it_per_s": 1 / step,
            "data_wait_s_per_it": wait,
            "data_wait_fraction": wait / step,
            "harness_overhead": step / measure.median(bare) - 1,
            "peak_gpu_mem_gb": peak_gb,
            "runs_per_80gb_card": runs_per_card(peak_gb) if not math.isnan(peak_gb) else math.nan,
            "passes_per_it": passes,
            "tflop_per_it": flop_it / 1e12,
            "achieved_tflop_s": flop_it / step / 1e12,
            "peak_fraction": flop_it / step / peak if peak else math.nan,
            "eval_s_per_volume": eval_s,
        }
        del run
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def learning_check(settings: BenchSettings, work: Path) -> pd.DataFrame:
    """Test Dice (%) of ``learn_method`` trained ``learn_iterations`` in each mode for each seed of
    ``learn_seeds``: one row per (mode, seed), every test case scored with the mode's evaluation."""
    rows = []
    for mode in settings.modes:
        for seed in settings.learn_seeds:
            config, options = bench_config(settings, settings.learn_method, mode, settings.learn_sets,
                                           iterations=settings.learn_iterations, seed=seed)
            device = resolve_device(config.device)
            with precision(mode, device):
                trainer = Trainer(config, options, work / f"learn-{mode}-{seed}", progress=False)
                trainer.fit()
                _, per_case = measure.evaluate(measure.TrainingRun(trainer, [], [], None), None)
            rows.append({"mode": mode, "seed": seed, "dice": float(per_case["dice"].mean())})
    return pd.DataFrame(rows)


def table(figures: Mapping[str, Mapping[str, float]], modes: Sequence[str]) -> pd.DataFrame:
    """Rows :data:`FIGURES` present, one column per mode, and ``fast / reference`` when both ran."""
    frame = pd.DataFrame({mode: {k: figures[mode].get(k, math.nan) for k in FIGURES} for mode in modes})
    frame = frame.loc[[k for k in FIGURES if frame.loc[k].notna().any()]]
    if {"reference", "fast"} <= set(modes):
        frame["fast / reference"] = frame["fast"] / frame["reference"]
    frame.index.name = "figure"
    return frame


def run_bench(settings: BenchSettings, out_dir: Path) -> pd.DataFrame:
    """Run every measurement, print one Markdown table per method, write ``out_dir/bench.csv`` (long format:
    method, dataset, device, date, figure, mode, value) and ``out_dir/bench.md``; returns the long table."""
    for mode in settings.modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected {', '.join(MODES)}")
    device = resolve_device(load_config({"dataset": settings.dataset})[0].device)
    date = dt.date.today().isoformat()
    header = f"device: {device_name(device)}; torch {torch.__version__}; date {date}"
    long_rows, sections = [], [header, ""]
    with tempfile.TemporaryDirectory(prefix="sslbench-bench-") as tmp, warnings.catch_warnings():
        # The reference mode's 4 loader workers are the official setting, also on smaller machines.
        warnings.filterwarnings("ignore", message="This DataLoader will create")
        work = Path(tmp)
        learned = learning_check(settings, work) if settings.learn else None
        for method in settings.methods:
            figures = bench_method(settings, method, work)
            if learned is not None and method == settings.learn_method:
                for mode, group in learned.groupby("mode"):
                    figures[mode]["dice_mean"] = float(group["dice"].mean())
                    figures[mode]["dice_std"] = float(group["dice"].std(ddof=1)) if len(group) > 1 else math.nan
                if {"reference", "fast"} <= set(figures):
                    gap = abs(figures["fast"]["dice_mean"] - figures["reference"]["dice_mean"])
                    spread = np.nanmax([figures[m]["dice_std"] for m in ("reference", "fast")])
                    for mode in ("reference", "fast"):
                        figures[mode]["learns_same"] = float(gap <= spread)
            frame = table(figures, settings.modes)
            title = (f"### {method} on {settings.dataset} ({settings.iterations} measured iterations after "
                     f"{settings.warmup} warm-up)")
            sections += [title, "", frame.to_markdown(floatfmt=".4g"), ""]
            if learned is not None and method == settings.learn_method:
                per_seed = learned.pivot(index="seed", columns="mode", values="dice")
                sections += [f"test Dice (%) per seed after {settings.learn_iterations} iterations:", "",
                             per_seed.to_markdown(floatfmt=".2f"), ""]
            for figure, row in frame.drop(columns=[c for c in frame if c not in settings.modes]).iterrows():
                for mode, value in row.items():
                    long_rows.append({"method": method, "dataset": settings.dataset, "device": device_name(device),
                                      "date": date, "figure": figure, "mode": mode, "value": value})
    text = "\n".join(sections)
    print(text)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.md").write_text(text + "\n")
    result = pd.DataFrame(long_rows)
    write_csv(out_dir / "bench.csv", result)
    return result

