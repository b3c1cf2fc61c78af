from pathlib import Path

import pytest

from benchmarks.config.dataset import layouts
from benchmarks.data.layouts import get_layout, read_id_list, write_id_list
from benchmarks.errors import ConfigError, DataError


def test_known_layouts_and_unknown_name():
    assert set(layouts()) == {"la", "pancreas_mcnet", "pancreas_coranet", "prepared"}
    with pytest.raises(ConfigError, match="known layouts: la, pancreas_coranet, pancreas_mcnet, prepared"):
        get_layout("LA")


@pytest.mark.parametrize(
    ("name", "case_id", "relative", "spacing"),
    [
        ("la", "06SR5RBREL16DQ6M8LWS", "2018LA_Seg_Training Set/06SR5RBREL16DQ6M8LWS/mri_norm2.h5", 0.625),
        ("pancreas_mcnet", "image0057", "Pancreas_h5/image0057_norm.h5", 1.0),
        ("pancreas_coranet", "data0001", "data/data0001.h5", 1.0),
        ("prepared", "lung_001", "cases/lung_001.h5", 1.0),
    ],
)
def test_case_paths(name, case_id, relative, spacing):
    layout = get_layout(name)
    assert layout.case_path("/r", case_id) == Path("/r") / relative
    assert layout.spacing == (spacing,) * 3


def test_list_reading_keeps_order_and_ignores_blank_lines(tmp_path):
    (tmp_path / "a.list").write_text("c\n\n  b \na\n\n")
    assert read_id_list(tmp_path / "a.list") == ["c", "b", "a"]


def test_list_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing\.list: list file not found"):
        read_id_list(tmp_path / "missing.list")
    (tmp_path / "empty.list").write_text("\n \n")
    with pytest.raises(DataError, match=r"empty\.list: list file contains no case IDs"):
        read_id_list(tmp_path / "empty.list")
    (tmp_path / "dup.list").write_text("a\nb\na\n")
    with pytest.raises(DataError, match=r"dup\.list: duplicate case ID 'a' \(entries 1 and 3\)"):
        read_id_list(tmp_path / "dup.list")


def test_write_id_list_roundtrip(tmp_path):
    write_id_list(tmp_path / "x.list", ["b", "a"])
    assert (tmp_path / "x.list").read_text() == "b\na\n"
    assert not list(tmp_path.glob(".*tmp"))


def test_coranet_training_list_is_lab_then_unlab(tmp_path):
    (tmp_path / "train_lab.txt").write_text("data0002\ndata0001\n")
    (tmp_path / "train_unlab.txt").write_text("data0013\n")
    (tmp_path / "test.txt").write_text("data0064\n")
    train, test = get_layout("pancreas_coranet").read_lists(tmp_path)
    assert train == ["data0002", "data0001", "data0013"]
    assert test == ["data0064"]
    (tmp_path / "train_unlab.txt").write_text("data0013\ndata0001\n")
    with pytest.raises(DataError, match=r"train_lab\.txt \+ .*train_unlab\.txt: duplicate case ID 'data0001'"):
        get_layout("pancreas_coranet").train_ids(tmp_path)


def test_case_in_train_and_test_lists(tmp_path):
    (tmp_path / "train.list").write_text("a\nb\n")
    (tmp_path / "test.list").write_text("c\nb\n")
    with pytest.raises(
        DataError, match=r"case 'b' is in both the training lists .*train\.list and the test lists .*test\.list"
    ):
        get_layout("prepared").read_lists(tmp_path)
