"""Each dataset recipe on its synthetic raw format: spacing, exact crop boxes, clipping, normalisation,
label alignment, manifest, and loading the result with the suite's own loader.

Probe geometry (conftest): raw 30 x 28 x 10 voxels of 0.75 x 0.75 x 2.5 mm, label x 12..17, y 8..13, z 4..6.
On the 1 mm grid (22 x 21 x 25 voxels, nearest neighbour) the label box is x 9..13, y 6..10, z 9..16, and raw
voxel (12, 8, 4), at 9, 6, 10 mm from the origin along the axes, is output voxel (9, 6, 10).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from prepare.rawdata import SPACING, case_arrays, make_pancreas, write_volume

from benchmarks.data.cases import CaseStore, load_case
from benchmarks.data.layouts import get_layout
from benchmarks.errors import DataError
from benchmarks.prepare import prepare_dataset
from benchmarks.prepare.readers import dicom_files, sha256_file
from benchmarks.prepare.recipes import packaged_list

LA_PROBE = packaged_list("la_train.list")[0]


def _h5(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    with h5py.File(path, "r") as f:
        return f["image"][()], f["label"][()], {k: f.attrs[k] for k in f.attrs}


def _manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def test_la_fixed_margins_zscore_of_the_whole_volume(raw_la: Path, tmp_path: Path) -> None:
    out = tmp_path / "LA"
    summary = prepare_dataset("la", raw_la, out, ["margin=2", "target=8"], progress=False)
    assert len(summary.written) == 100
    image, label, attrs = _h5(out / "2018LA_Seg_Training Set" / LA_PROBE / "mri_norm2.h5")
    raw_image, raw_label = case_arrays(0)
    # x: extent 5, p = (8 - 5) // 2 = 1 -> [12 - 3, 17 + 3) ; y: [8 - 3, 13 + 3) ; z kept whole
    expected = ((raw_image - raw_image.mean()) / raw_image.std())[9:20, 5:16, :]
    np.testing.assert_allclose(image, expected, atol=1e-5)
    np.testing.assert_array_equal(label, raw_label[9:20, 5:16, :])
    assert label.dtype == np.uint8 and image.dtype == np.float32
    np.testing.assert_allclose(attrs["spacing"], SPACING)
    entry = _manifest(out)["cases"][LA_PROBE]
    assert entry["crop"]["lo"] == [9, 5, 0] and entry["crop"]["hi"] == [20, 16, 10]
    layout = get_layout("la")
    train, test = layout.read_lists(out)
    assert hashlib.md5((out / "train.list").read_bytes()).hexdigest() == "ded9b3bf69cd44ddeda212e30a9f5b00"
    assert hashlib.md5((out / "test.list").read_bytes()).hexdigest() == "c8b450d0ab549f4c1e8bcecec45f0209"
    store = CaseStore.load(layout, out, train[:3] + test[:2], progress=False)
    assert store[LA_PROBE].shape == (11, 11, 10) and store[LA_PROBE].spacing == pytest.approx(SPACING)


def test_la_random_margins_are_seeded_and_in_range(raw_la: Path, tmp_path: Path) -> None:
    a = prepare_dataset("la", raw_la, tmp_path / "a", ["margins=random", "target=0"], progress=False)
    prepare_dataset("la", raw_la, tmp_path / "b", ["margins=random", "target=0"], progress=False)
    first, second = _manifest(a.root)["cases"], _manifest(tmp_path / "b")["cases"]
    margins = [first[i]["margins"] for i in first]
    assert all(10 <= m <= 19 for pair in margins for side in pair for m in side)
    assert len({json.dumps(m) for m in margins}) > 1
    assert all(first[i]["crop"] == second[i]["crop"] for i in first)
    (m1x, m2x), (m1y, m2y) = first[LA_PROBE]["margins"]
    crop = first[LA_PROBE]["crop"]
    assert crop["lo"] == [max(12 - m1x, 0), max(8 - m1y, 0), 0]
    assert crop["hi"] == [min(17 + m2x, 30), min(13 + m2y, 28), 10]


def test_pancreas_mcnet_fallback_split_resampling_crop_and_zscore(raw_pancreas: Path, tmp_path: Path) -> None:
    out = tmp_path / "Pancreas"
    prepare_dataset("pancreas_mcnet", raw_pancreas, out, ["split=tcia80", "margin=2", "target=8"], progress=False)
    manifest = _manifest(out)
    assert manifest["split"] == "pancreas_mcnet_80" and manifest["complete"]
    train, test = get_layout("pancreas_mcnet").read_lists(out)
    assert len(train) == 61 and len(test) == 19 and "image0070" not in train and "image0025" not in test
    assert train[11] == "image0048"  # the 12th labeled case of the fallback (protocols.md section 3)
    image, label, attrs = _h5(out / "Pancreas_h5" / "image0001_norm.h5")
    # resampled bbox x 9..13, y 6..10: extent 4, p = (8 - 4) // 2 = 2 -> x [5, 17), y [2, 14); z whole (25)
    entry = manifest["cases"]["image0001"]
    assert entry["crop"]["lo"] == [5, 2, 0] and entry["crop"]["hi"] == [17, 14, 25]
    assert image.shape == (12, 12, 25) and entry["shape"] == [12, 12, 25]
    np.testing.assert_allclose(attrs["spacing"], (1, 1, 1))
    assert abs(image.mean()) < 1e-4 and abs(image.std() - 1) < 1e-4
    assert label[9 - 5, 6 - 2, 10] == 1 and label.sum() == 5 * 5 * 8
    nz = np.nonzero(label)
    assert [int(a.min()) for a in nz] == [4, 4, 9] and [int(a.max()) for a in nz] == [8, 8, 16]
    source = entry["sources"]["image"]
    folder = raw_pancreas / "Pancreas-CT" / "PANCREAS_0001"
    digest = hashlib.sha256()
    for f in dicom_files(folder):
        digest.update(f"{f.relative_to(folder).as_posix()}\0{sha256_file(f)}\n".encode())
    assert source["files"] == 10 and source["sha256"] == digest.hexdigest()
    assert entry["sources"]["label"]["sha256"] == sha256_file(raw_pancreas / "TCIA_pancreas_labels-02-05-2017" /
                                                              "label0001.nii.gz")
    assert entry["intensity"]["source"]["min"] == -1000.0  # HU after the DICOM rescale intercept
    store = CaseStore.load(get_layout("pancreas_mcnet"), out, test, progress=False)
    assert len(store) == 19


def test_pancreas_mcnet_official_split_names_the_removed_patients(raw_pancreas: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"image0070, image0025.*split=tcia80"):
        prepare_dataset("pancreas_mcnet", raw_pancreas, tmp_path / "out", progress=False)


@pytest.mark.parametrize("true_z", [False, True])
def test_pancreas_coranet_spacing_quirk_clip_minmax_and_padding(raw_pancreas: Path, tmp_path: Path,
                                                                true_z: bool) -> None:
    out = tmp_path / "coranet"
    prepare_dataset("pancreas_coranet", raw_pancreas, out,
                    ["margin=2", "minimum=20", f"true_z_spacing={str(true_z).lower()}", "slice_order=instance"],
                    progress=False)
    image, label, attrs = _h5(out / "data" / "data0001.h5")
    entry = _manifest(out)["cases"]["data0001"]
    assert image.shape == label.shape == (20, 20, 20)
    assert 0 <= image.min() and image.max() == pytest.approx(1.0)
    if true_z:
        # 1 mm on every axis: z label 9..16 + 2 -> [7, 19), widened to 20 inside 25 slices: [3, 23)
        assert entry["crop"] == {"lo": [2, 0, 3], "hi": [22, 20, 23], "pad_before": [0, 0, 0], "pad_after": [0, 0, 0]}
        np.testing.assert_allclose(attrs["spacing"], (1, 1, 1))
        assert label[9 - 2, 6, 10 - 3] == 1
    else:
        # z resampled as if 0.75 mm thick: floor(10 * 0.75) = 7 slices, shorter than 20: padded 6 + 7
        assert entry["crop"] == {"lo": [2, 0, 0], "hi": [22, 20, 7], "pad_before": [0, 0, 6], "pad_after": [0, 0, 7]}
        np.testing.assert_allclose(attrs["spacing"], (1, 1, 2.5 / 0.75))
        # raw (28, 24, 8) = -72 HU lies on the grid at (21, 18, 6): (-72 + 125) / 400 after clip and min-max
        assert image[21 - 2, 18, 6 + 6] == pytest.approx(53 / 400, abs=1e-5)
        assert label[9 - 2, 6, 3 + 6] == 1  # raw (12, 8, 4): z 4 * 0.75 = 3
        assert image[:, :, :6].max() == 0 and label[:, :, :6].max() == 0
    train, test = get_layout("pancreas_coranet").read_lists(out)
    assert train[:12] == [f"data{i:04d}" for i in range(1, 13)] and len(train) == 62 and len(test) == 18
    load_case(out / "data" / "data0064.h5", "data0064", (1.0, 1.0, 1.0))


def test_lung_official_lists_resampling_alignment_and_zscore(raw_lung: Path, tmp_path: Path) -> None:
    out = tmp_path / "Lung"
    prepare_dataset("lung", raw_lung, out, progress=False)
    probe = packaged_list("lung_train.list")[0]
    image, label, attrs = _h5(out / "cases" / f"{probe}.h5")
    # a flipped X axis: raw voxel (12, 8, 4) is at origin + D (0.75 * 12, 0.75 * 8, 2.5 * 4) mm
    direction = np.diag([-1.0, 1.0, 1.0])
    origin = np.array([-40.0, 12.5, 100.0])
    point = origin + direction @ (np.array(SPACING) * [12, 8, 4])
    index = np.rint(np.linalg.solve(direction, point - origin)).astype(int)
    assert label[tuple(index)] == 1 and tuple(index) == (9, 6, 10)
    assert image.shape == (22, 21, 25)  # smaller than 96: the whole volume, no padding
    assert abs(image.mean()) < 1e-4 and abs(image.std() - 1) < 1e-4
    np.testing.assert_allclose(attrs["spacing"], (1, 1, 1))
    np.testing.assert_allclose(attrs["source_spacing"], SPACING)
    np.testing.assert_allclose(attrs["source_direction"], direction.ravel())
    layout = get_layout("prepared")
    train, test = layout.read_lists(out)
    assert len(train) == 50 and len(test) == 13
    assert hashlib.md5((out / "train.list").read_bytes()).hexdigest() == "5c518420c083065fc84dc0cabc8314dd"
    manifest = _manifest(out)
    assert manifest["options"]["clip"] == [-500.0, 275.0] and manifest["code"]["commit"]
    assert manifest["packages"]["SimpleITK"] and len(manifest["cases"]) == 63
    assert CaseStore.load(layout, out, test, progress=False)[test[0]].image.dtype == np.float32


def test_lung_clipping_without_normalisation(raw_lung: Path, tmp_path: Path) -> None:
    out = tmp_path / "clip"
    prepare_dataset("lung", raw_lung, out, ["normalise=none", "margin=1", "minimum=4"], progress=False)
    probe = packaged_list("lung_train.list")[0]
    image, label, _ = _h5(out / "cases" / f"{probe}.h5")
    raw_image, _ = case_arrays(0)
    assert raw_image.min() < -500 and raw_image.max() > 275
    assert image.min() >= -500 and image.max() == pytest.approx(275.0)
    entry = _manifest(out)["cases"][probe]
    # bbox x 9..13, y 6..10, z 9..16 plus 1 voxel (all >= 4 already)
    assert entry["crop"]["lo"] == [8, 5, 8] and entry["crop"]["hi"] == [15, 12, 18]
    assert image.shape == (7, 7, 10) and label[1:-1, 1:-1, 1:-1].all()


def test_nnunet_v2_seeded_split_and_prepared_layout(raw_nnunet: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    prepare_dataset("nnunet", raw_nnunet, out, ["test_fraction=0.25", "seed=7"], progress=False)
    ids = [f"case_{i:03d}" for i in range(8)]
    order = [ids[i] for i in np.random.RandomState(7).permutation(8)]
    train, test = get_layout("prepared").read_lists(out)
    assert train == order[:6] and test == order[6:]
    manifest = _manifest(out)
    assert manifest["split"] == "nnunet_seed7_test0.25" and manifest["options"]["clip"] is None
    entry = manifest["cases"]["case_000"]
    assert entry["sources"]["image"]["path"].endswith("imagesTr/case_000_0000.nii.gz")
    assert entry["sources"]["image"]["sha256"] == sha256_file(raw_nnunet / "imagesTr" / "case_000_0000.nii.gz")
    assert entry["intensity"]["source"]["min"] == -1000.0 and entry["shape"] == [22, 21, 25]
    assert abs(entry["intensity"]["output"]["mean"]) < 1e-4
    store = CaseStore.load(get_layout("prepared"), out, train, progress=False)
    assert store["case_000"].shape == (22, 21, 25)


def test_nnunet_foreground_values_and_native_spacing(raw_nnunet: Path, tmp_path: Path) -> None:
    meta = json.loads((raw_nnunet / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "organ": 1, "tumour": 2}
    (raw_nnunet / "dataset.json").write_text(json.dumps(meta))
    for i in range(8):
        _, label = case_arrays(i)
        x, y, z = (int(a.min()) for a in np.nonzero(label))
        label[x:x + 2, y:y + 2, z] = 2
        write_volume(raw_nnunet / "labelsTr" / f"case_{i:03d}.nii.gz", label)
    out = tmp_path / "out"
    prepare_dataset("nnunet", raw_nnunet, out, ["foreground=[2]", "spacing=null", "margin=0", "minimum=1"],
                    progress=False)
    image, prepared, attrs = _h5(out / "cases" / "case_000.h5")
    assert prepared.shape == (2, 2, 1) and prepared.all()
    np.testing.assert_allclose(attrs["spacing"], SPACING)
    assert image.shape == prepared.shape
    assert _manifest(out)["cases"]["case_000"]["crop"]["lo"] == [12, 8, 4]  # native grid: the raw indices


def test_pancreas_instance_order_differs_from_file_names(tmp_path: Path) -> None:
    """The slice files are named in reverse instance order: ``slice_order=name`` stacks them upside down."""
    raw = make_pancreas(tmp_path / "raw", ["0001"])
    from benchmarks.prepare.readers import read_dicom_series

    by_instance, _ = read_dicom_series(raw / "Pancreas-CT" / "PANCREAS_0001", "instance")
    by_name, _ = read_dicom_series(raw / "Pancreas-CT" / "PANCREAS_0001", "name")
    image, _ = case_arrays(0)
    np.testing.assert_array_equal(by_instance.array, image)
    np.testing.assert_array_equal(by_name.array, image[:, :, ::-1])
