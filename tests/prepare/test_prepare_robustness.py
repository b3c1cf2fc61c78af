"""Bad input names the file; reruns skip finished cases; a crash never leaves a half-written case; the CLI."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
from prepare.rawdata import case_arrays, make_la, make_msd, write_volume

from benchmarks.cli import main
from benchmarks.errors import ConfigError, DataError
from benchmarks.prepare import prepare_dataset
from benchmarks.prepare.recipes import Nnunet


def _prepare(raw: Path, out: Path, *sets: str):
    return prepare_dataset("nnunet", raw, out, list(sets), progress=False)


def _set_pixdim(path: Path, axis: int, value: float) -> None:
    data = bytearray(gzip.decompress(path.read_bytes()))
    struct.pack_into("<f", data, 80 + 4 * axis, value)
    path.write_bytes(gzip.compress(bytes(data)))


@pytest.mark.parametrize("fault, message", [
    ("missing_image", r"imagesTr/case_003_0000\.nii\.gz: file not found"),
    ("unreadable_label", r"labelsTr/case_002\.nii\.gz: unreadable image"),
    ("shape_mismatch", r"case_001_0000\.nii\.gz vs .*case_001\.nii\.gz: image shape \(12, 12, 4\) != label shape"),
    ("spacing_mismatch", r"case_001\.nii\.gz: image spacing .* != label spacing"),
    ("origin_mismatch", r"case_001\.nii\.gz: image origin .* != label origin"),
    ("empty_label", r"labelsTr/case_004\.nii\.gz: label is empty"),
    ("label_values", r"labelsTr/case_005\.nii\.gz: unexpected label values 3 \(expected \[0, 1\]\)"),
    ("zero_spacing", r"imagesTr/case_006_0000\.nii\.gz \(NIfTI pixdim\): voxel spacing must be 3 positive"),
])
def test_bad_input_is_an_error_naming_the_file(raw_nnunet: Path, tmp_path: Path, fault: str, message: str) -> None:
    images, labels = raw_nnunet / "imagesTr", raw_nnunet / "labelsTr"
    _, label = case_arrays(1)
    if fault == "missing_image":
        (images / "case_003_0000.nii.gz").unlink()
    elif fault == "unreadable_label":
        (labels / "case_002.nii.gz").write_bytes(b"not a nifti file at all")
    elif fault == "shape_mismatch":
        write_volume(labels / "case_001.nii.gz", np.zeros((30, 28, 9), np.uint8))
    elif fault == "spacing_mismatch":
        write_volume(labels / "case_001.nii.gz", label, spacing=(0.75, 0.75, 3.0))
    elif fault == "origin_mismatch":
        write_volume(labels / "case_001.nii.gz", label, origin=(-40.0, 12.5, 101.0))
    elif fault == "empty_label":
        write_volume(labels / "case_004.nii.gz", np.zeros_like(label))
    elif fault == "label_values":
        write_volume(labels / "case_005.nii.gz", label * 3)
    elif fault == "zero_spacing":
        _set_pixdim(images / "case_006_0000.nii.gz", 2, 0.0)
    with pytest.raises(DataError, match=message):
        _prepare(raw_nnunet, tmp_path / "out")


def test_zero_spacing_in_nrrd_and_missing_listed_cases(tmp_path: Path) -> None:
    raw = make_la(tmp_path / "la")
    probe = next(p for p in sorted(raw.iterdir()) if p.is_dir())
    text = (probe / "lgemri.nrrd").read_bytes()
    start = text.index(b"space directions: (") + len(b"space directions: (")
    end = text.index(b")", start)
    (probe / "lgemri.nrrd").write_bytes(text[:start] + b"0,0,0" + text[end:])
    with pytest.raises(DataError, match=rf"{probe.name}/lgemri\.nrrd: voxel spacing is zero"):
        prepare_dataset("la", raw, tmp_path / "out", progress=False)
    partial = make_msd(tmp_path / "lung", ["lung_001", "lung_003"])
    with pytest.raises(DataError, match=r"61 listed case\(s\) not found in the raw data: lung_054"):
        prepare_dataset("lung", partial, tmp_path / "out_lung", progress=False)
    other = make_msd(tmp_path / "other", ["lung_002"])
    with pytest.raises(DataError, match=r"not in the committed Task06 lists \(lung_002\)"):
        prepare_dataset("lung", other, tmp_path / "out_other", progress=False)


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'prepare nnunet.colour'; valid keys: channel, clip"):
        _prepare(Path("."), Path("."), "colour=blue")
    with pytest.raises(ConfigError, match="clip.*lower bound 5.0 must be below"):
        _prepare(Path("."), Path("."), "clip=[5, 1]")
    with pytest.raises(ConfigError, match="test_fraction"):
        _prepare(Path("."), Path("."), "test_fraction=1.5")
    with pytest.raises(ConfigError, match="unknown dataset 'brats'"):
        prepare_dataset("brats", ".", ".")


def test_rerun_skips_finished_cases_and_redoes_changed_ones(raw_nnunet: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert len(_prepare(raw_nnunet, out).written) == 8
    again = _prepare(raw_nnunet, out)
    assert again.written == [] and len(again.kept) == 8
    _, label = case_arrays(4)
    label[0, 0, 0] = 1
    write_volume(raw_nnunet / "labelsTr" / "case_004.nii.gz", label)
    assert _prepare(raw_nnunet, out).written == ["case_004"]
    assert _prepare(raw_nnunet, out, "test_fraction=0.5").written == []  # a split option changes only the lists
    assert len((out / "test.list").read_text().split()) == 4
    assert len(_prepare(raw_nnunet, out, "margin=3").written) == 8
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["options"]["margin"] == 3


def test_a_crash_leaves_finished_cases_and_no_partial_file(raw_nnunet: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    real = Nnunet.process
    calls = []

    def crash_on_third(self, case, options):
        calls.append(case.id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, case, options)

    monkeypatch.setattr(Nnunet, "process", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        _prepare(raw_nnunet, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"] and sorted(manifest["cases"]) == sorted(calls[:2])
    assert sorted(p.stem for p in (out / "cases").iterdir()) == sorted(calls[:2])
    assert not (out / "train.list").exists()

    real_create = h5py.Group.create_dataset

    def fail_on_label(self, name, *args, **kwargs):
        if name == "label":
            raise OSError("disk full")
        return real_create(self, name, *args, **kwargs)

    monkeypatch.setattr(Nnunet, "process", real)
    monkeypatch.setattr(h5py.Group, "create_dataset", fail_on_label)
    with pytest.raises(OSError, match="disk full"):
        _prepare(raw_nnunet, out)
    assert sorted(p.name for p in (out / "cases").iterdir()) == sorted(f"{c}.h5" for c in calls[:2])

    monkeypatch.setattr(h5py.Group, "create_dataset", real_create)
    resumed = _prepare(raw_nnunet, out)
    assert sorted(resumed.kept) == sorted(calls[:2]) and len(resumed.written) == 6


def test_cli_prepare(raw_nnunet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["prepare", "nnunet", "--raw", str(raw_nnunet), "--out", str(out), "--set", "test_fraction=0.25",
                 "--no-progress"]) == 0
    assert "nnunet: 8 case(s) written, 0 up to date" in capsys.readouterr().out
    assert len((out / "test.list").read_text().split()) == 2
    assert main(["prepare", "nnunet", "--raw", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "nowhere: raw data folder not found" in capsys.readouterr().err
