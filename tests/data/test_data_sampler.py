import numpy as np
import pytest

from benchmarks.data.sampler import TwoStreamSchedule
from benchmarks.errors import ConfigError


@pytest.mark.parametrize(("n_labeled", "length"), [(8, 4), (16, 8), (6, 3), (12, 6), (10, 5), (15, 7), (2, 1)])
def test_epoch_length(n_labeled, length):
    assert TwoStreamSchedule(n_labeled, 40, seed=1).epoch_length == length


def test_each_labeled_index_once_per_epoch():
    schedule = TwoStreamSchedule(8, 72, seed=1337)
    epochs = []
    for epoch in range(5):
        labeled = [i for t in range(4 * epoch, 4 * epoch + 4) for i in schedule.indices(t)[0]]
        assert sorted(labeled) == list(range(8))
        epochs.append(labeled)
    assert len({tuple(e) for e in epochs}) == 5  # a fresh permutation each epoch


def test_odd_labeled_count_drops_one_per_epoch():
    schedule = TwoStreamSchedule(15, 35, seed=0)
    left_out = set()
    for epoch in range(20):
        labeled = [i for t in range(7 * epoch, 7 * epoch + 7) for i in schedule.indices(t)[0]]
        assert len(set(labeled)) == 14
        left_out |= set(range(15)) - set(labeled)
    assert len(left_out) > 1


def test_unlabeled_without_replacement_and_restarted_each_epoch():
    schedule = TwoStreamSchedule(16, 72, seed=5)  # 8 batches x 2 = 16 of 72 per epoch
    first = [[i for t in range(8 * e, 8 * e + 8) for i in schedule.indices(t)[1]] for e in range(3)]
    for drawn in first:
        assert len(set(drawn)) == 16 and all(0 <= i < 72 for i in drawn)
    assert first[0] != first[1] != first[2]
    # More unlabeled draws than cases: consecutive blocks of n_unlabeled are permutations.
    schedule = TwoStreamSchedule(16, 5, labeled_bs=2, unlabeled_bs=3, seed=5)
    drawn = [i for t in range(8) for i in schedule.indices(t)[1]]
    assert len(drawn) == 24
    for block in range(4):
        assert sorted(drawn[5 * block : 5 * block + 5]) == list(range(5))


def test_deterministic_and_random_access():
    sequential = TwoStreamSchedule(8, 72, seed=1337, stream="main")
    expected = [sequential.indices(t) for t in range(40)]
    for t in [39, 0, 17, 17, 3, 38]:
        assert TwoStreamSchedule(8, 72, seed=1337, stream="main").indices(t) == expected[t]
        assert sequential.indices(t) == expected[t]
    assert all(len(lab) == 2 and len(unl) == 2 for lab, unl in expected)
    others = [
        TwoStreamSchedule(8, 72, seed=1338, stream="main"),
        TwoStreamSchedule(8, 72, seed=1337, stream="pretrain"),
    ]
    for other in others:
        assert [other.indices(t) for t in range(40)] != expected


def test_supervised_only():
    schedule = TwoStreamSchedule(80, 0, labeled_bs=4, unlabeled_bs=0, seed=0)
    assert schedule.epoch_length == 20 and schedule.batch_size == 4
    lab, unl = schedule.indices(123)
    assert len(lab) == 4 and unl == []
    plan = schedule.epoch_plan(0)
    assert plan[1].shape == (20, 0) and not plan[0].flags.writeable
    assert np.array_equal(np.sort(plan[0], axis=None), np.arange(80))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_labeled": 1, "n_unlabeled": 4}, "n_labeled=1 < labeled_bs=2"),
        ({"n_labeled": 4, "n_unlabeled": 0}, "unlabeled_bs=2 but there are no unlabeled cases"),
        ({"n_labeled": 4, "n_unlabeled": 4, "labeled_bs": 0}, "labeled_bs must be a positive int"),
        ({"n_labeled": 4, "n_unlabeled": 4, "unlabeled_bs": -1}, "unlabeled_bs must be a non-negative int"),
    ],
)
def test_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TwoStreamSchedule(**kwargs, seed=0)
    with pytest.raises(ValueError, match="iteration must be >= 0"):
        TwoStreamSchedule(4, 4, seed=0).indices(-1)
