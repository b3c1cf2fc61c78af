"""``sslbench``: the suite's command line (methods, synth, prepare, pack, unpack, train, evaluate, complexity, predict,
features, tables, figures, bench).

Every command imports what it needs when it runs, so ``sslbench --help`` loads neither torch nor pandas.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import SSLBenchError

#: The docstring's first paragraph as plain text (no reStructuredText literals).
DESCRIPTION = " ".join(__doc__.split("\n\n")[0].replace("``", "").split())

DEFAULT_RUNS = Path("results/runs")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SSLBenchError as exc:
        print(f"sslbench {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _overrides(args: argparse.Namespace) -> dict:
    from .config import parse_sets

    overrides = parse_sets(args.set or [])
    for key in ("method", "dataset", "labels", "seed", "data_root"):
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    return overrides


def cmd_methods(args: argparse.Namespace) -> int:
    import methods

    for name in methods.available_methods():
        cls = methods.get_method(name)
        print(f"{name:12s} {cls.paper}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from .data.synthetic import generate_synthetic

    root = generate_synthetic(args.out, n_train=args.train, n_test=args.test, seed=args.seed)
    print(root)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .prepare import prepare_dataset

    summary = prepare_dataset(args.dataset, args.raw, args.out, args.set or [], None if args.progress else False,
                              args.name)
    print(f"{args.dataset}: {len(summary.written)} case(s) written, {len(summary.kept)} up to date -> {summary.root}")
    if summary.dataset_file:
        print(f"dataset file {summary.dataset_file}: train with --dataset {summary.dataset_file}, or name it in a "
              "suite's datasets")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from .data.pack import pack_dataset

    part_size = None if args.part_size is None else int(args.part_size * 2**20)
    s = pack_dataset(args.root, args.out, layout=args.layout, cases=args.cases, part_size=part_size,
                     jobs=args.jobs, progress=None if args.progress else False)
    skipped = f"; skipped (over 1 MiB): {', '.join(s.skipped)}" if s.skipped else ""
    print(f"{s.layout}: {s.cases} case(s), {s.files} file(s), {s.source_bytes / 2**20:.1f} MiB -> {s.path}: "
          f"{len(s.part_sizes)} part(s), {s.size / 2**20:.1f} MiB{skipped}")
    return 0


def cmd_unpack(args: argparse.Namespace) -> int:
    from .data.pack import unpack_dataset

    s = unpack_dataset(args.pack, args.out, jobs=args.jobs, progress=None if args.progress else False)
    print(f"{s.cases} case(s), {s.files} file(s) verified -> {s.root}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .config import config_hash, load_config, run_dir_name
    from .train.trainer import Trainer

    if args.progress_every < 0:
        raise SSLBenchError(f"--progress-every {args.progress_every:g}: give a number of seconds >= 0")
    config, options = load_config(_overrides(args), args.config)
    run_dir = Path(args.out) if args.out else Path(args.runs_root) / run_dir_name(config)
    print(f"run {run_dir} (config {config_hash(config)})", file=sys.stderr)
    final = Trainer(config, options, run_dir, progress=None if args.progress else False,
                    progress_every_s=args.progress_every).fit()
    print(final.parent)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate.run import evaluate_run

    summary = evaluate_run(args.run_dir, args.checkpoint, _overrides(args), args.out, None if args.progress else False)
    if summary["status"] == "failed":
        print(f"not scored: training failed ({summary['failure'].get('message')}); "
              "the summary records the run as failed", file=sys.stderr)
        return 0
    keys = ("dice", "jaccard", "asd", "hd95")
    print("  ".join(f"{k} {summary[f'{k}_mean']:.2f}±{summary[f'{k}_std'] or 0:.2f}" for k in keys)
          + f"  (n={summary['n_cases']}, empty={summary['n_empty']})")
    return 0


def cmd_complexity(args: argparse.Namespace) -> int:
    from .config import load_config
    from .report.complexity import complexity

    config, options = load_config(_overrides(args))
    result = complexity(config, options, tuple(args.patch))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:13s} {value:,}")
    return 0


def _suite(args: argparse.Namespace):
    from .report.suites import load_suite

    return load_suite(args.suite, data_root=args.data_root, skip_missing=args.skip_missing, only=args.datasets)


def cmd_predict(args: argparse.Namespace) -> int:
    from .report.predict import first_test_cases, predict_cases, select_cases

    cases = list(args.case or [])
    if args.select_from:
        selected = select_cases(args.select_from, args.n_cases) or first_test_cases(args.run_dir, args.n_cases)
        cases += [c for c in selected if c not in cases]
    if not cases:
        raise SSLBenchError("give --case ID or --select-from PER_CASE.csv")
    print(predict_cases(args.run_dir, cases, args.out))
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from .report.features import snapshot_features

    print(snapshot_features(args.run_dir, args.out, args.case))
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    from .report.tables import build_tables

    for path in build_tables(_suite(args), args.out, args.root):
        print(path)
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from .report.figures import build_figures

    for path in build_figures(_suite(args), args.out, args.root, args.complexity):
        print(path)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.run import BenchSettings, run_bench

    given = {
        "methods": args.method, "dataset": args.dataset, "data_root": args.data_root, "modes": args.modes,
        "iterations": args.iterations, "warmup": args.warmup, "bare_iterations": args.bare_iterations,
        "eval_cases": args.eval_cases,
        "compile": args.compile, "learn_method": args.learn_method, "learn_seeds": args.learn_seeds,
        "learn_iterations": args.learn_iterations,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if args.set:
        given["sets"] = (*(BenchSettings.quick().sets if args.quick else ()), *args.set)
    if args.no_learn:
        given["learn"] = False
    if args.eval_cases == 0:
        given["eval_cases"] = None
    settings = BenchSettings.quick(**given) if args.quick else BenchSettings(**given)
    run_bench(settings, Path(args.out or f"results/bench/{settings.dataset}"))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sslbench", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("methods", help="list the registered methods and their papers")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("synth", help="write the embedded synthetic dataset")
    p.add_argument("--out", default="data/synthetic", help="dataset root (default: %(default)s)")
    p.add_argument("--train", type=int, default=40, help="training cases (default: %(default)s)")
    p.add_argument("--test", type=int, default=20, help="test cases (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default: %(default)s)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("prepare", help="turn a public raw dataset into the suite's h5 layout (resumable)",
                       description="Datasets: la (2018 challenge nrrd), pancreas_mcnet and pancreas_coranet (NIH "
                                   "Pancreas-CT DICOM + TCIA labels), lung (MSD Task06), nnunet (any nnU-Net raw "
                                   "dataset). Options are listed in benchmarks/prepare (an unknown key names them).")
    p.add_argument("dataset", help="la, pancreas_mcnet, pancreas_coranet, lung or nnunet")
    p.add_argument("--raw", required=True, help="folder of the downloaded raw data")
    p.add_argument("--out", required=True, help="dataset root to write (cases, lists, manifest.json)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="recipe option, e.g. margins=random")
    p.add_argument("--name", help="nnunet: the dataset's name in its dataset.yaml (default: the --out folder's name)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("pack", help="pack a dataset root into a lossless, checksummed archive (parts of <= N MiB)")
    p.add_argument("root", help="dataset root (case files and split lists)")
    p.add_argument("--out", required=True, help="pack folder to write (manifest.json, part-NNNN.bin)")
    p.add_argument("--layout", help="la, pancreas_mcnet, pancreas_coranet or prepared (default: detected)")
    p.add_argument("--cases", nargs="+", metavar="ID", help="pack only these cases; the lists keep only them")
    p.add_argument("--part-size", dest="part_size", type=float, metavar="MIB",
                   help="largest part in MiB (default: one part)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default: %(default)s)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser("unpack", help="rebuild a dataset root from a pack, verifying every part and array")
    p.add_argument("pack", help="pack folder written by 'sslbench pack'")
    p.add_argument("--out", required=True, help="dataset root to write")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default: %(default)s)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=cmd_unpack)

    def run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--method", help="registered method name (default: vnet)")
        p.add_argument("--dataset", help="a built-in dataset (a file stem of benchmarks/config/datasets) or the "
                                          "path of a dataset YAML (e.g. written by sslbench prepare nnunet)")
        p.add_argument("--labels", help="labeled cases: a count (8), a percentage (10%%) or all")
        p.add_argument("--seed", type=int, help="run seed (default: 1337)")
        p.add_argument("--data-root", dest="data_root", help="dataset root directory")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config key or method option")

    p = sub.add_parser("train", help="train a method; resumes an interrupted run")
    run_options(p)
    p.add_argument("--config", help="YAML file of settings (below --set)")
    p.add_argument("--out", help="run directory (default: <runs-root>/<dataset>/<method>/labels<N>/seed<k>)")
    p.add_argument("--runs-root", default=str(DEFAULT_RUNS), help="root of run directories (default: %(default)s)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress (default: a bar on a terminal, else a plain line every --progress-every seconds)")
    p.add_argument("--progress-every", dest="progress_every", type=float, default=30.0, metavar="SECONDS",
                   help="seconds between plain progress lines when stderr is not a terminal (default: %(default)s)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a run's checkpoint on its test cases")
    p.add_argument("run_dir", help="run directory written by 'sslbench train'")
    p.add_argument("--checkpoint", default="auto", help="auto, best, final, test_best or a path (default: %(default)s)")
    p.add_argument("--data-root", dest="data_root", help="dataset root, if moved since training")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override eval.* or device")
    p.add_argument("--out", help="output directory (default: <run>/eval)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("complexity", help="parameters and MACs of a method's networks")
    run_options(p)
    p.add_argument("--patch", type=int, nargs=3, default=(96, 96, 96), metavar=("X", "Y", "Z"),
                   help="input size for MACs (default: 96 96 96, the paper's Fig. 7)")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.set_defaults(func=cmd_complexity)

    p = sub.add_parser("predict", help="save a run's predictions of a few test cases (.npz, for Fig. 3)")
    p.add_argument("run_dir", help="run directory written by 'sslbench train'")
    p.add_argument("--case", action="append", help="test case ID (repeatable)")
    p.add_argument("--select-from", help="per_case.csv: take its median- and lowest-Dice cases")
    p.add_argument("--n-cases", type=int, default=2, help="cases taken from --select-from (default: %(default)s)")
    p.add_argument("--out", required=True, help="output .npz")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("features", help="feature maps of a run's weight snapshots on one test case (.npz, for Fig. 6)")
    p.add_argument("run_dir", help="run directory trained with --set 'snapshots=[...]'")
    p.add_argument("--case", help="test case ID (default: the first of the test list)")
    p.add_argument("--out", required=True, help="output .npz")
    p.set_defaults(func=cmd_features)

    def suite_options(p: argparse.ArgumentParser, out: str) -> None:
        p.add_argument("--suite", default="demo", help="suite name or YAML file (default: %(default)s)")
        p.add_argument("--data-root", dest="data_root", default="data", help="root of real datasets (default: data)")
        p.add_argument("--skip-missing", action="store_true", help="skip suite datasets that are not present")
        p.add_argument("--datasets", nargs="+", help="restrict to these datasets")
        p.add_argument("--root", default=".", help="directory holding results/ (default: .)")
        p.add_argument("--out", default=out, help="output directory (default: %(default)s)")

    p = sub.add_parser("tables", help="Tables I-VI of a suite (CSV, Markdown, LaTeX) from stored results")
    suite_options(p, "results/tables/demo")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("figures", help="the suite's figures (PNG, PDF, CSV) from stored results")
    suite_options(p, "figures/demo")
    p.add_argument("--complexity", default="results/complexity", help="complexity JSONs (default: %(default)s)")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("bench", help="training/evaluation speed, reference vs fast mode (benchmarks/README.md)")
    p.add_argument("--method", nargs="+", help="methods to time (default: benchmarks/config/bench.yaml)")
    p.add_argument("--dataset", help="dataset protocol (default: synthetic)")
    p.add_argument("--data-root", dest="data_root", help="dataset root directory")
    p.add_argument("--modes", nargs="+", choices=("reference", "fast"), help="default: reference fast")
    p.add_argument("--iterations", type=int, help="measured training iterations per mode (default: 20)")
    p.add_argument("--warmup", type=int, help="untimed first iterations (default: 3)")
    p.add_argument("--bare-iterations", dest="bare_iterations", type=int,
                   help="steps of the bare loop the harness is compared with (default: 10)")
    p.add_argument("--eval-cases", type=int, help="test volumes timed, 0 for all (default: 4)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config key of every run")
    p.add_argument("--compile", choices=("off", "default", "reduce-overhead", "max-autotune"),
                   help="torch.compile mode of the fast mode (default: off)")
    p.add_argument("--no-learn", action="store_true", help="skip the Dice check (fast vs reference over seeds)")
    p.add_argument("--learn-method", help="method of the Dice check (default: benchmarks/config/bench.yaml)")
    p.add_argument("--learn-seeds", type=int, nargs="+", help="seeds of the Dice check (default: 1337 1338 1339)")
    p.add_argument("--learn-iterations", type=int, help="training iterations of the Dice check (default: 300)")
    p.add_argument("--quick", action="store_true", help="tiny settings, seconds on a CPU (tests)")
    p.add_argument("--out", help="folder of bench.csv and bench.md (default: results/bench/<dataset>)")
    p.set_defaults(func=cmd_bench)
    return parser


if __name__ == "__main__":
    sys.exit(main())
