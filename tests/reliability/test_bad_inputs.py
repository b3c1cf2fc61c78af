"""The catalogue of bad inputs (training and test cases, configuration): each ends in a one-line ``sslbench`` error
(exit 2) naming the file or key, before a run directory is created; the allowed oddities (volumes smaller than the
patch, empty training label maps, dtype casts) train, and are reported."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from reliability.helpers import ball_case, case_path, tiny_config, train_args, write_dataset

from benchmarks.cli import main
from benchmarks.runtime import architecture, build_method
from benchmarks.train.checkpoint import load_checkpoint, save_checkpoint
from benchmarks.train.trainer import FINAL, LATEST, STATUS, prepare_run_dir


def rewrite(index: int, image: np.ndarray | None, label: np.ndarray | None) -> Callable[[Path], None]:
    """Replace case ``c<index>`` (a labeled training case) by raw arrays, written without validation."""
    def apply(root: Path) -> None:
        path = case_path(root, index)
        path.unlink()
        with h5py.File(path, "w") as f:
            for key, value in (("image", image), ("label", label)):
                if value is not None:
                    f.create_dataset(key, data=value)
    return apply


def corrupt(root: Path) -> None:
    path = case_path(root, 1)
    path.write_bytes(path.read_bytes()[:200])  # a truncated copy, as an interrupted download leaves


def edit_list(name: str, ids: list[str]) -> Callable[[Path], None]:
    return lambda root: (root / name).write_text("".join(f"{i}\n" for i in ids))


IMAGE, LABEL = ball_case(0)
NAN_IMAGE = IMAGE.copy()
NAN_IMAGE[1, 2, 3] = np.nan
INF_IMAGE = IMAGE.copy()
INF_IMAGE[0, 0, 0] = np.inf
BAD_LABEL = LABEL.copy()
BAD_LABEL[0, 0, 0] = 2

#: id -> (break the dataset, extra --set items, extra CLI args, pattern the message must match)
DATA_FAULTS: dict[str, tuple[Callable[[Path], None], list[str], list[str], str]] = {
    "corrupt_hdf5": (corrupt, [], [], r"cases/c1\.h5 \(case c1\): not a readable HDF5 file"),
    "missing_label_key": (rewrite(0, IMAGE, None), [], [], r"cases/c0\.h5 \(case c0\): missing dataset 'label'"),
    "missing_image_key": (rewrite(0, None, LABEL), [], [], r"cases/c0\.h5 \(case c0\): missing dataset 'image'"),
    "wrong_dtype": (rewrite(0, IMAGE.astype(np.complex64), LABEL), [], [],
                    r"cases/c0\.h5 \(case c0\): 'image' has unsupported dtype complex64"),
    "shape_mismatch": (rewrite(0, IMAGE, LABEL[:, :, :8]), [], [],
                       r"cases/c0\.h5 \(case c0\): image shape \(20, 20, 16\) != label shape \(20, 20, 8\)"),
    "label_outside_0_1": (rewrite(0, IMAGE, BAD_LABEL), [], [],
                          r"cases/c0\.h5 \(case c0\): label has 1 voxels outside \{0, 1\} \(values: 2\)"),
    "nan_intensity": (rewrite(0, NAN_IMAGE, LABEL), [], [],
                      r"cases/c0\.h5 \(case c0\): image has non-finite values \(1 NaN, 0 infinite\)"),
    "inf_intensity": (rewrite(0, INF_IMAGE, LABEL), [], [],
                      r"cases/c0\.h5 \(case c0\): image has non-finite values \(0 NaN, 1 infinite\)"),
    "constant_image": (rewrite(0, np.zeros_like(IMAGE), LABEL), [], [],
                       r"cases/c0\.h5 \(case c0\): image is constant \(every voxel 0\)"),
    "broken_test_case": (rewrite(6, IMAGE, BAD_LABEL), [], [],
                         r"cases/c6\.h5 \(case c6\): label has 1 voxels outside \{0, 1\}"),
    "empty_test_label": (rewrite(6, IMAGE, np.zeros_like(LABEL)), [], [],
                         r"cases/c6\.h5 \(case c6\): label is empty"),
    "unreadable_test_case": (lambda root: case_path(root, 6).write_bytes(b"not hdf5"), [], [],
                             r"cases/c6\.h5 \(case c6\): not a readable HDF5 file"),
    "duplicate_case_id": (edit_list("train.list", ["c0", "c1", "c2", "c1", "c3", "c4"]), [], [],
                          r"train\.list: duplicate case ID 'c1' \(entries 2 and 4\)"),
    "case_in_train_and_test": (edit_list("test.list", ["c6", "c3"]), [], [],
                               r"case 'c3' is in both the training lists .*train\.list and the test lists .*test\.list"),
    "missing_case_file": (lambda root: case_path(root, 2).unlink(), [], [],
                          r"1 listed case\(s\) have no file: 'c2': .*cases/c2\.h5"),
    "labels_larger_than_training_set": (lambda root: None, [], ["--labels", "50"],
                                        r"labels='50' asks for 50 labeled cases but the pool has 6"),
    "labels_larger_than_pool_after_validation": (
        lambda root: None, ["selection=heldout", "validation=3"], ["--labels", "4"],
        r"labels='4' asks for 4 labeled cases but the pool has 3 after holding out 3 validation cases"),
}

CONFIG_FAULTS: dict[str, tuple[list[str], list[str], str]] = {
    "unknown_method": ([], ["--method", "vnett"], r"unknown method 'vnett'"),
    "unknown_method_option": (["dropuot=0.5"], [], r"method 'vnet': unknown key 'options\.dropuot'"),
    "unknown_config_key": (["eval.windw=[16,16,16]"], [], r"unknown key 'eval\.windw'"),
    "zero_iterations": (["iterations=0"], [], r"invalid value 0 for 'iterations'; expected a positive integer"),
    "negative_iterations": (["iterations=-5"], [], r"invalid value -5 for 'iterations'"),
    "negative_stage_iterations": (["pretrain_iterations=0"], ["--method", "bcp"],
                                  r"method 'bcp': invalid value 0 for 'options\.pretrain_iterations'; expected a pos"),
    "negative_method_weight": (["lambda=-1"], ["--method", "lefed"],
                               r"method 'lefed': invalid value -1 for 'options\.lambda'; expected a non-negative number"),
    "nan_method_weight": (["lambda=.nan"], ["--method", "lefed"],
                          r"method 'lefed': invalid value nan for 'options\.lambda'; expected a finite number"),
    "infinite_temperature": (["temperature=.inf"], ["--method", "mcnet_plus"],
                             r"invalid value inf for 'options\.temperature'; expected a finite number"),
    "ratio_outside_0_1": (["mask_ratio=1.5"], ["--method", "bcp"],
                          r"invalid value 1\.5 for 'options\.mask_ratio'; expected a number in \(0, 1\)"),
    "nan_learning_rate": (["optimizer.lr=.nan"], [], r"invalid value nan for 'optimizer\.lr'; expected a finite number"),
    "malformed_set_value": (["patch=[32,32,16"], [],
                            r"--set patch: invalid value '\[32,32,16' \(column 10: expected ',' or '\]', but got"),
    "wrong_value_type": (["optimizer.lr=fast"], [], r"invalid value 'fast' for 'optimizer\.lr'; expected a number"),
    "patch_not_multiple_of_16": (["patch=[20,16,16]"], [], r"invalid value \[20, 16, 16\] for 'patch'"),
    "unknown_layout": (["layout=nifti"], [], r"unknown data layout 'nifti'"),
    "labeled_batch_larger_than_labels": (
        ["labeled_bs=5"], [],
        r"stage 'train' of method 'vnet': n_labeled=4 < labeled_bs=5: an epoch would have 0 iterations; change 'labels'"),
    "unlabeled_batch_without_unlabeled_cases": (
        [], ["--method", "uamt", "--labels", "all"],
        r"stage 'train' of method 'uamt': unlabeled_bs=2 but there are no unlabeled cases"),
}


def sslbench(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("fault", list(DATA_FAULTS))
def test_bad_data_is_named_and_leaves_no_run_dir(fault: str, dataset: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    breaker, sets, extra, pattern = DATA_FAULTS[fault]
    breaker(dataset)
    run = tmp_path / "run"
    code, err = sslbench([*train_args(dataset, *sets), *extra, "--out", str(run)], capsys)
    assert code == 2, err
    assert re.search(pattern, err), err
    assert err.strip().splitlines()[-1].startswith("sslbench train: error:") and "Traceback" not in err, err
    assert not run.exists()  # nothing to refuse or resume later


@pytest.mark.parametrize("fault", list(CONFIG_FAULTS))
def test_bad_config_is_named(fault: str, base_dataset: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    sets, extra, pattern = CONFIG_FAULTS[fault]
    code, err = sslbench([*train_args(base_dataset, *sets), *extra, "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and re.search(pattern, err), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, pattern", [
    ("iterations: 3\n\tfilters: 2\n", r"line 2, column 1: found character '\\t' that cannot start any token"),
    ("patch: [32, 32\n", r"line 2, column 1: expected ',' or '\]'"),
    ("- iterations\n", r"expected a mapping at the top level"),
], ids=["tab", "unclosed_list", "not_a_mapping"])
def test_bad_config_file_is_named_with_its_line(text: str, pattern: str, base_dataset: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(text)
    code, err = sslbench([*train_args(base_dataset), "--config", str(config), "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and err.startswith(f"sslbench train: error: config file {config}"), err
    assert re.search(pattern, err) and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("other", [{"method": "lefed"}, {"filters": 4}], ids=["method", "architecture"])
def test_checkpoint_of_another_method_or_architecture(other: dict[str, object], base_dataset: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = tiny_config(base_dataset)
    foreign, foreign_options = tiny_config(base_dataset, *(f"{k}={v}" for k, v in other.items() if k != "method"),
                                           method=str(other.get("method", "vnet")))
    foreign_method = build_method(foreign, foreign_options)
    path = tmp_path / "foreign.pt"
    save_checkpoint(path, {"method": foreign.method, "arch": architecture(foreign), "stage_index": 0, "iteration": 0,
                           "method_state": foreign_method.state_dict()})
    run = tmp_path / "run"
    prepare_run_dir(run, config)
    expected = "belongs to method 'lefed', not 'vnet'" if "method" in other else "has architecture"
    code, err = sslbench(["evaluate", str(run), "--checkpoint", str(path), "--no-progress"], capsys)
    assert code == 2 and str(path) in err and expected in err, err
    # the same file found as a run's latest checkpoint: resuming refuses it too
    (run / "checkpoint_latest.pt").write_bytes(path.read_bytes())
    code, err = sslbench([*train_args(base_dataset), "--out", str(run)], capsys)
    assert code == 2 and "checkpoint_latest.pt" in err and expected in err, err


def test_rerun_of_a_finished_run_with_a_damaged_checkpoint(base_dataset: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A finished run is finished whatever became of checkpoint_latest.pt; a damaged checkpoint_final.pt is written
    again from the latest one; when neither can be resumed from, the error names the file."""
    run = tmp_path / "run"
    args = [*train_args(base_dataset), "--out", str(run)]
    assert main(args) == 0
    good = {name: (run / name).read_bytes() for name in (LATEST, FINAL)}
    weights = load_checkpoint(run / FINAL)["method_state"]

    def damage(*names: str) -> None:
        for name, content in good.items():
            (run / name).write_bytes(content[:300] if name in names else content)

    def final_weights_kept() -> bool:
        return all(torch.equal(weights[k], v) for k, v in load_checkpoint(run / FINAL)["method_state"].items())

    damage(LATEST)
    code, err = sslbench(args, capsys)
    assert code == 0 and "warning" not in err, err
    assert json.loads((run / STATUS).read_text())["status"] == "completed" and final_weights_kept()

    damage(FINAL)
    code, err = sslbench(args, capsys)
    assert code == 0 and f"warning: checkpoint {run / FINAL} is unreadable" in err, err
    assert f"; continuing from {run / LATEST}" in err and final_weights_kept()

    damage(FINAL, LATEST)
    code, err = sslbench(args, capsys)
    assert code == 2 and err.strip().splitlines()[-1].startswith(
        f"sslbench train: error: checkpoint {run / LATEST} is unreadable"), err
    (run / LATEST).unlink()
    code, err = sslbench(args, capsys)
    assert code == 2 and f"sslbench train: error: checkpoint {run / FINAL} is unreadable" in err, err


def test_checkpoint_of_another_config_is_refused_by_evaluate(base_dataset: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main([*train_args(base_dataset), "--out", str(run)]) == 0
    state = torch.load(run / FINAL, weights_only=False)
    save_checkpoint(run / FINAL, {**state, "config_hash": "0123456789ab"})
    code, err = sslbench(["evaluate", str(run), "--no-progress"], capsys)
    assert code == 2 and "trained under configuration 0123456789ab" in err and "config.yaml" in err, err


def test_volumes_smaller_than_the_patch_are_padded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_dataset(tmp_path / "small", shape=(12, 14, 8))  # patch and window are 16^3
    run = tmp_path / "run"
    assert main([*train_args(root), "--out", str(run)]) == 0, capsys.readouterr().err
    assert main(["evaluate", str(run), "--no-progress"]) == 0, capsys.readouterr().err
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["n_cases"] == 1 and summary["dice_mean"] is not None


def test_casts_on_loading_are_reported_once_and_recorded(dataset: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    rewrite(0, IMAGE.astype(np.float64), LABEL.astype(np.float32))(dataset)  # a labeled training case
    rewrite(6, IMAGE.astype(np.float64), LABEL)(dataset)  # the test case
    run = tmp_path / "run"
    code, err = sslbench([*train_args(dataset), "--out", str(run)], capsys)
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note: cast on loading")]
    expected = ("note: cast on loading: image float64 -> float32 in 2 case(s) (c0, c6); label float32 -> uint8 "
                f"in 1 case(s) (c0); recorded in {run / 'provenance.json'}")
    assert notes == [expected], err
    recorded = json.loads((run / "provenance.json").read_text())["casts"]
    assert recorded == {"image float64 -> float32": ["c0", "c6"], "label float32 -> uint8": ["c0"]}


def test_empty_label_maps_in_training_data_are_allowed_and_reported(dataset: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rewrite(2, IMAGE, np.zeros_like(LABEL))(dataset)  # a labeled case
    rewrite(5, IMAGE, np.zeros_like(LABEL))(dataset)  # an unlabeled case: its label is never used, not reported
    run = tmp_path / "run"
    code, err = sslbench([*train_args(dataset), "--out", str(run)], capsys)
    assert code == 0, err
    assert "1 training case(s) have an empty label map (no foreground): c2" in err
    assert json.loads((run / "provenance.json").read_text())["empty_label_cases"] == ["c2"]
    # a test case with an empty label map is still an error: it cannot be scored
    rewrite(6, IMAGE, np.zeros_like(LABEL))(dataset)
    code, err = sslbench(["evaluate", str(run), "--no-progress"], capsys)
    assert code == 2 and "cases/c6.h5 (case c6): label is empty" in err, err
