import pytest

from benchmarks.data.splits import Split, label_count, make_split
from benchmarks.errors import ConfigError, DataError

TRAIN = [f"t{i:02d}" for i in range(20)]
TEST = ["x1", "x2"]


@pytest.mark.parametrize(
    ("labels", "n_train", "expected"),
    [
        ("10%", 80, 8),
        ("20%", 80, 16),
        ("10%", 62, 6),
        ("20%", 62, 12),
        ("20%", 50, 10),
        ("30%", 50, 15),
        ("5%", 80, 4),
        (" 12.5 % ", 80, 10),
        (8, 80, 8),
        ("8", 80, 8),
    ],
)
def test_label_count(labels, n_train, expected):
    assert label_count(labels, n_train) == expected


@pytest.mark.parametrize("labels", ["0%", "150%", "-5%", "abc", "8.5", 2.0, True, None])
def test_label_count_rejects(labels):
    with pytest.raises(ConfigError, match="labels"):
        label_count(labels, 80)


def test_first_n_labeled():
    split = make_split(TRAIN, TEST, 4)
    assert split == Split(tuple(TRAIN[:4]), tuple(TRAIN[4:]), (), tuple(TEST))


def test_validation_is_taken_from_the_end_and_never_labeled():
    split = make_split(TRAIN, TEST, "10%", validation=3)
    assert split.labeled == tuple(TRAIN[:2])
    assert split.unlabeled == tuple(TRAIN[2:17])
    assert split.validation == tuple(TRAIN[17:])
    assert make_split(TRAIN, TEST, "all", validation=3).labeled == tuple(TRAIN[:17])
    assert make_split(TRAIN, TEST, "all").unlabeled == ()


@pytest.mark.parametrize(
    ("labels", "validation", "message"),
    [
        (0, 0, "gives 0 labeled cases"),
        (-2, 0, "gives -2 labeled cases"),
        (21, 0, "asks for 21 labeled cases but the pool has 20"),
        (18, 3, "asks for 18 labeled cases but the pool has 17 after holding out 3 validation cases"),
        ("100%", 3, "pool has 17 after holding out 3"),
        (2, 20, "validation=20 leaves no training cases"),
        (2, -1, "validation must be a non-negative int"),
        (None, 0, "labels is required"),
    ],
)
def test_bad_counts(labels, validation, message):
    with pytest.raises(ConfigError, match=message):
        make_split(TRAIN, TEST, labels, validation)


def test_bad_lists():
    with pytest.raises(DataError, match="training list: duplicate case ID 't01'"):
        make_split([*TRAIN, "t01"], TEST, 2)
    with pytest.raises(DataError, match="test list: duplicate case ID 'x1'"):
        make_split(TRAIN, ["x1", "x1"], 2)
    with pytest.raises(DataError, match="case 't05' is in both the training and the test list"):
        make_split(TRAIN, ["x1", "t05"], 2)
    with pytest.raises(DataError, match="training list is empty"):
        make_split([], TEST, 2)


def test_split_files_override_convention(tmp_path):
    (tmp_path / "lab.txt").write_text("t05\nt01\n")
    (tmp_path / "unlab.txt").write_text("t02\nt03\n")
    split = make_split(TRAIN, TEST, None, labeled_file=tmp_path / "lab.txt")
    assert split.labeled == ("t05", "t01")
    assert split.unlabeled == tuple(t for t in TRAIN if t not in {"t05", "t01"})
    split = make_split(
        TRAIN, TEST, 2, validation=2, labeled_file=tmp_path / "lab.txt", unlabeled_file=tmp_path / "unlab.txt"
    )
    assert (split.labeled, split.unlabeled, split.validation) == (("t05", "t01"), ("t02", "t03"), ("t18", "t19"))


def test_split_file_errors(tmp_path):
    (tmp_path / "lab.txt").write_text("t05\nzz\n")
    with pytest.raises(DataError, match=r"lab\.txt: case 'zz' is not in the training list"):
        make_split(TRAIN, TEST, None, labeled_file=tmp_path / "lab.txt")
    (tmp_path / "lab.txt").write_text("t05\nt19\n")
    with pytest.raises(DataError, match=r"lab\.txt: case 't19' is a held-out validation case"):
        make_split(TRAIN, TEST, None, validation=1, labeled_file=tmp_path / "lab.txt")
    (tmp_path / "unlab.txt").write_text("t02\nt05\n")
    with pytest.raises(DataError, match=r"unlab\.txt: case 't05' is also in the labeled file"):
        make_split(TRAIN, TEST, None, labeled_file=tmp_path / "lab.txt", unlabeled_file=tmp_path / "unlab.txt")
    with pytest.raises(ConfigError, match=r"labels=3 means 3 cases but .*lab\.txt lists 2"):
        make_split(TRAIN, TEST, 3, labeled_file=tmp_path / "lab.txt")
    with pytest.raises(ConfigError, match="unlabeled_file requires labeled_file"):
        make_split(TRAIN, TEST, 2, unlabeled_file=tmp_path / "unlab.txt")
    (tmp_path / "dup.txt").write_text("t01\nt01\n")
    with pytest.raises(DataError, match=r"dup\.txt: duplicate case ID 't01'"):
        make_split(TRAIN, TEST, None, labeled_file=tmp_path / "dup.txt")
