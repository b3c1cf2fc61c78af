import h5py
import numpy as np
import pytest

from benchmarks.data.cases import CaseStore, load_case, write_case
from benchmarks.data.layouts import get_layout
from benchmarks.errors import DataError

SPACING = (1.0, 1.0, 1.0)


def load(path, **kwargs):
    return load_case(path, "case7", SPACING, **kwargs)


def test_valid_case_loads_read_only(tmp_path, blob_case):
    image, label = blob_case()
    case = load(write_case(tmp_path / "c.h5", image, label))
    assert case.id == "case7" and case.path == tmp_path / "c.h5" and case.spacing == SPACING
    assert case.image.dtype == np.float32 and case.label.dtype == np.uint8
    assert np.array_equal(case.image, image) and np.array_equal(case.label, label)
    assert not case.image.flags.writeable and not case.label.flags.writeable
    assert not list(tmp_path.glob(".*tmp"))


def test_spacing_attribute_overrides_default(tmp_path, blob_case):
    case = load(write_case(tmp_path / "c.h5", *blob_case(), spacing=(0.7, 0.7, 2.5)))
    assert case.spacing == (0.7, 0.7, 2.5)
    with pytest.raises(DataError, match="attribute 'spacing' must be 3 positive"):
        load(write_case(tmp_path / "d.h5", *blob_case(), spacing=(1.0, 0.0, 1.0)))


def test_casts_float_and_bool_labels_and_int_images(tmp_path, blob_case):
    image, label = blob_case()
    case = load(write_case(tmp_path / "f.h5", image.astype(np.float64), label.astype(np.float32)))
    assert case.image.dtype == np.float32 and case.label.dtype == np.uint8
    assert np.array_equal(case.label, label)
    assert case.casts == ("image float64 -> float32", "label float32 -> uint8")
    case = load(write_case(tmp_path / "b.h5", (image * 100).astype(np.int16), label.astype(bool)))
    assert case.image.dtype == np.float32 and np.array_equal(case.label, label)
    assert case.casts == ("image int16 -> float32", "label bool -> uint8")
    assert load(write_case(tmp_path / "n.h5", image, label)).casts == ()


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.h5 \(case case7\): file not found"):
        load(tmp_path / "nope.h5")


def test_corrupt_file(tmp_path):
    (tmp_path / "bad.h5").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataError, match=r"bad\.h5 \(case case7\): not a readable HDF5 file"):
        load(tmp_path / "bad.h5")


def test_truncated_file(tmp_path, blob_case):
    path = write_case(tmp_path / "t.h5", *blob_case((40, 40, 40)))
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(DataError, match=r"t\.h5 \(case case7\)"):
        load(path)


@pytest.mark.parametrize("key", ["image", "label"])
def test_missing_key(tmp_path, key, blob_case):
    image, label = blob_case()
    path = write_case(tmp_path / "k.h5", None if key == "image" else image, None if key == "label" else label)
    with pytest.raises(DataError, match=rf"k\.h5 \(case case7\): missing dataset '{key}'"):
        load(path)


def test_group_instead_of_dataset(tmp_path, blob_case):
    image, _ = blob_case()
    path = write_case(tmp_path / "g.h5", image, None)
    with h5py.File(path, "a") as handle:
        handle.create_group("label")
    with pytest.raises(DataError, match="'label' is a Group, not a dataset"):
        load(path)


@pytest.mark.parametrize(
    ("image", "label", "message"),
    [
        (np.zeros((4, 4)), np.zeros((4, 4)), r"'image' must be a 3-D array \(X, Y, Z\), got shape \(4, 4\)"),
        (np.zeros((4, 4, 4, 1)), np.zeros((4, 4, 4)), "'image' must be a 3-D array"),
        (np.zeros((4, 0, 4)), np.zeros((4, 0, 4)), r"'image' has an axis of size 0 \(shape \(4, 0, 4\)\)"),
        (np.zeros((4, 4, 4)), np.ones((4, 4, 5)), r"image shape \(4, 4, 4\) != label shape \(4, 4, 5\)"),
        (np.full((2, 2, 2), b"a"), np.ones((2, 2, 2)), r"'image' has unsupported dtype \|S1"),
    ],
)
def test_bad_arrays(tmp_path, image, label, message):
    with pytest.raises(DataError, match=message):
        load(write_case(tmp_path / "a.h5", image, label))


@pytest.mark.parametrize(("value", "shown"), [(2, "2"), (255, "255"), (-1, "-1"), (0.5, "0.5"), (np.nan, "nan")])
def test_label_values_outside_0_1(tmp_path, value, shown, blob_case):
    image, label = blob_case()
    label = label.astype(np.float32 if isinstance(value, float) else np.int16)
    label[0, 0, :3] = value
    with pytest.raises(DataError, match=rf"label has 3 voxels outside \{{0, 1\}} \(values: {shown}\)"):
        load(write_case(tmp_path / "l.h5", image, label))


@pytest.mark.parametrize(
    ("value", "counts"), [(np.nan, "2 NaN, 0 infinite"), (np.inf, "0 NaN, 2 infinite"), (-np.inf, "0 NaN, 2 infinite")]
)
def test_non_finite_image(tmp_path, value, counts, blob_case):
    image, label = blob_case()
    image[1, 1, 1:3] = value
    with pytest.raises(DataError, match=rf"n\.h5 \(case case7\): image has non-finite values \({counts}\)"):
        load(write_case(tmp_path / "n.h5", image, label))


def test_float64_overflow_is_non_finite(tmp_path, blob_case):
    image, label = blob_case()
    image = image.astype(np.float64)
    image[0, 0, 0] = 1e300
    with pytest.raises(DataError, match="non-finite"):
        load(write_case(tmp_path / "o.h5", image, label))


def test_empty_label(tmp_path, blob_case):
    image, label = blob_case()
    path = write_case(tmp_path / "e.h5", image, np.zeros_like(label))
    with pytest.raises(DataError, match=r"e\.h5 \(case case7\): label is empty"):
        load(path)
    assert not load(path, require_foreground=False).label.any()


def test_store_loads_in_list_order(tmp_path, make_prepared):
    root = make_prepared(tmp_path, ["b", "a", "c"], ["d"])
    layout = get_layout("prepared")
    store = CaseStore.load(layout, root, layout.train_ids(root), progress=False)
    assert store.ids == ("b", "a", "c") and list(store) == ["b", "a", "c"] and len(store) == 3
    assert store["a"].id == "a" and "d" not in store
    with pytest.raises(KeyError, match="'d' is not loaded"):
        store["d"]
    pairs = store.arrays(["c", "b"])
    assert pairs[0][0] is store["c"].image and pairs[1][1] is store["b"].label


def test_store_list_errors(tmp_path, make_prepared):
    root = make_prepared(tmp_path, ["a", "b"], ["c"])
    layout = get_layout("prepared")
    with pytest.raises(DataError, match="train.list: no case IDs to load"):
        CaseStore.load(layout, root, [], source="train.list")
    with pytest.raises(DataError, match="train.list: duplicate case ID 'a'"):
        CaseStore.load(layout, root, ["a", "b", "a"], source="train.list")
    with pytest.raises(DataError, match=r"train.list: 1 listed case\(s\) have no file: 'zz': .*cases/zz\.h5"):
        CaseStore.load(layout, root, ["a", "zz"], source="train.list")


def test_store_propagates_case_errors(tmp_path, blob_case, make_prepared):
    root = make_prepared(tmp_path, ["a", "b"], ["c"])
    image, label = blob_case()
    write_case(root / "cases" / "b.h5", image, label * 3)
    with pytest.raises(DataError, match=r"cases/b\.h5 \(case b\): label has"):
        CaseStore.load(get_layout("prepared"), root, ["a", "b"], progress=False)
